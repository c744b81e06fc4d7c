//! The RTMP protocol core, sans-IO: handshake, chunk stream, AMF0 and the server session.
//!
//! Nothing here touches a socket or a clock. The connection driver feeds received bytes to
//! a [`ServerSession`], writes out what [`ServerSession::take_output`] returns, and reacts
//! to [`SessionEvent`]s (accepting or rejecting publish/play requests, forwarding media).

pub mod amf0;
pub mod chunk;
pub mod handshake;
pub mod session;

pub use amf0::{Amf0Error, Amf0Value};
pub use chunk::{
    ChunkError, ChunkReader, ChunkWriter, ControlMessage, Message, UserControlEvent,
    encode_message, encode_message_parts,
};
pub use handshake::{Handshake, HandshakeError, HandshakeProgress};
pub use session::{
    CSID_AUDIO, CSID_COMMAND, CSID_DATA, CSID_VIDEO, MEDIA_STREAM_ID, ServerSession, SessionConfig,
    SessionError, SessionEvent, encode_media, encode_media_parts,
};
