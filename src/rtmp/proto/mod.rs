//! The RTMP protocol core, sans-IO: handshake, chunk stream, AMF0 and the server session.
//!
//! Nothing here touches a socket or a clock. The connection driver feeds received bytes
//! and the time to a [`ServerSession`] and drains [`ServerSession::poll_output`] until it
//! returns [`Output::Timeout`]: it writes out [`Output::Transmit`] bytes and reacts to
//! [`Event`]s (reporting the hub's answer to publish/play requests, forwarding media).

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
    Access, AccessTable, CSID_AUDIO, CSID_COMMAND, CSID_DATA, CSID_VIDEO, CloseReason, Event,
    Input, MEDIA_STREAM_ID, Output, ServerSession, SessionConfig, SessionError, encode_media,
    encode_media_parts,
};
