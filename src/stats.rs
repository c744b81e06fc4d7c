//! Per-shard counters, written by their shard and read by any shard for `/metrics` and
//! the API. Relaxed atomics: each counter is exact; a snapshot across counters is not.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fm])* pub $field: AtomicU64,)*
        }

        impl $name {
            /// Every counter with its name, for exporting.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Counters of one shard.
    ShardStats {
        /// Open TCP connections (HTTP, WebSocket, RTMP).
        connections,
        /// Connections accepted since start.
        connections_total,
        /// Connections refused because the shard was at its limit.
        connections_refused,
        /// HTTP requests answered.
        http_requests,
        /// Bytes received from clients and sources.
        bytes_in,
        /// Bytes sent to clients.
        bytes_out,
        /// Media frames received from sources owned by this shard.
        frames_in,
        /// Frames dropped for slow viewers on this shard.
        frames_dropped,
        /// Frames not sent to another shard because its channel was full.
        mesh_frames_dropped,
        /// Streams owned by this shard.
        streams,
        /// Relays (streams owned elsewhere with viewers here).
        relays,
        /// Viewers attached on this shard.
        viewers,
        /// UDP datagrams received on the shard's WebRTC port.
        udp_datagrams_in,
        /// UDP datagrams sent from the shard's WebRTC port.
        udp_datagrams_out,
        /// UDP datagrams not sent (socket buffer full or send error).
        udp_send_dropped,
        /// Send system calls made for WebRTC datagrams.
        udp_send_calls,
        /// WebRTC sessions open on this shard.
        webrtc_sessions,
        /// WebRTC sessions created since start.
        webrtc_sessions_total,
        /// WebRTC offers refused because the shard was at webrtc.max_sessions.
        webrtc_refused,
        /// RTP packets written to WebRTC viewers.
        rtp_packets_out,
        /// GOP re-sends answering WebRTC viewers' keyframe requests (PLI/FIR).
        webrtc_gop_resends,
        /// RTSP sources on this shard that are connected and delivering media.
        rtsp_sessions,
        /// RTSP connection attempts (first connects and reconnects).
        rtsp_connects,
        /// Open TCP connections to RTSP cameras.
        rtsp_connections,
        /// RTP packets received from RTSP cameras.
        rtsp_packets_in,
        /// RTP packets from RTSP cameras lost in transit (sequence gaps).
        rtsp_packets_lost,
    }
}

/// Adds to a counter.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Subtracts from a gauge, saturating at zero.
pub fn sub(c: &AtomicU64, n: u64) {
    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
