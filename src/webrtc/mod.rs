//! WebRTC egress: per-shard str0m peers behind one UDP socket.
