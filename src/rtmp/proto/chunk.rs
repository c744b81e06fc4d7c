//! The RTMP chunk stream (RTMP 1.0 spec section 5.3) and protocol control messages
//! (sections 5.4 and 6.2).
//!
//! [`ChunkReader`] reassembles messages from interleaved chunk streams; [`ChunkWriter`] and
//! [`encode_message`] chunk outgoing messages. Writing always uses a type-0 header for the
//! first chunk of a message and type-3 headers for its continuations, so the bytes of a
//! message depend only on `(csid, type, stream id, timestamp, body, chunk size)` and never
//! on what was sent before: a media message can be chunked once and the same [`Bytes`]
//! written to every player that uses the same chunk size.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::BTreeMap;

/// Smallest chunk stream id (0 and 1 select the 2- and 3-byte basic headers).
pub const CSID_MIN: u32 = 0x02;
/// Largest chunk stream id (3-byte basic header: 64 + 0xFFFF).
pub const CSID_MAX: u32 = 0x1_003F;
/// Chunk stream id of protocol control and user control messages.
pub const CSID_PROTOCOL_CONTROL: u32 = 0x02;
/// Chunk size in force until a Set Chunk Size message changes it.
pub const DEFAULT_CHUNK_SIZE: u32 = 0x80;
/// Largest chunk size (the first bit of Set Chunk Size must be zero).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Default limit on one message's length.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 0x80_0000;
/// Largest length the 24-bit message length field can describe.
pub const MAX_MESSAGE_LEN_FIELD: usize = 0xFF_FFFF;
/// Timestamp field value announcing a 4-byte extended timestamp.
pub const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

/// Message type: Set Chunk Size.
pub const MSG_SET_CHUNK_SIZE: u8 = 0x01;
/// Message type: Abort Message.
pub const MSG_ABORT: u8 = 0x02;
/// Message type: Acknowledgement.
pub const MSG_ACKNOWLEDGEMENT: u8 = 0x03;
/// Message type: User Control Message.
pub const MSG_USER_CONTROL: u8 = 0x04;
/// Message type: Window Acknowledgement Size.
pub const MSG_WINDOW_ACK_SIZE: u8 = 0x05;
/// Message type: Set Peer Bandwidth.
pub const MSG_SET_PEER_BANDWIDTH: u8 = 0x06;
/// Message type: audio (an FLV audio tag body).
pub const MSG_AUDIO: u8 = 0x08;
/// Message type: video (an FLV video tag body).
pub const MSG_VIDEO: u8 = 0x09;
/// Message type: AMF3 data message.
pub const MSG_DATA_AMF3: u8 = 0x0F;
/// Message type: AMF3 shared object message.
pub const MSG_SHARED_OBJECT_AMF3: u8 = 0x10;
/// Message type: AMF3 command message.
pub const MSG_COMMAND_AMF3: u8 = 0x11;
/// Message type: AMF0 data message.
pub const MSG_DATA_AMF0: u8 = 0x12;
/// Message type: AMF0 shared object message.
pub const MSG_SHARED_OBJECT_AMF0: u8 = 0x13;
/// Message type: AMF0 command message.
pub const MSG_COMMAND_AMF0: u8 = 0x14;
/// Message type: aggregate message.
pub const MSG_AGGREGATE: u8 = 0x16;

/// User control event: Stream Begin.
pub const UC_STREAM_BEGIN: u16 = 0x00;
/// User control event: Stream EOF.
pub const UC_STREAM_EOF: u16 = 0x01;
/// User control event: Stream Dry.
pub const UC_STREAM_DRY: u16 = 0x02;
/// User control event: Set Buffer Length.
pub const UC_SET_BUFFER_LENGTH: u16 = 0x03;
/// User control event: Stream Is Recorded.
pub const UC_STREAM_IS_RECORDED: u16 = 0x04;
/// User control event: Ping Request.
pub const UC_PING_REQUEST: u16 = 0x06;
/// User control event: Ping Response.
pub const UC_PING_RESPONSE: u16 = 0x07;

/// Set Peer Bandwidth limit type: hard.
pub const LIMIT_HARD: u8 = 0x00;
/// Set Peer Bandwidth limit type: soft.
pub const LIMIT_SOFT: u8 = 0x01;
/// Set Peer Bandwidth limit type: dynamic.
pub const LIMIT_DYNAMIC: u8 = 0x02;

/// Chunk stream ids below this are kept in a directly indexed table.
const DIRECT_CSIDS: u32 = 0x140;

/// Most chunk streams one connection may open. Encoders and players use a handful (ffmpeg,
/// OBS and librtmp stay below 10; nginx-rtmp allows 32); each open one holds its header
/// state, so a peer walking all 65,599 ids is refused instead of costing megabytes.
pub const MAX_CHUNK_STREAMS: usize = 64;

/// Bytes reserved at once for a message that spans chunks: the buffer grows with what
/// arrives, never to the length the header merely announces.
const PARTIAL_RESERVE: usize = 16 * 1024;

/// Errors from the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// A chunk size outside 1..=0x7FFF_FFFF.
    #[error("invalid chunk size {size}, expected 1..=0x7FFFFFFF")]
    InvalidChunkSize {
        /// The rejected size.
        size: u32,
    },
    /// A type 1/2/3 header on a chunk stream with no previous header to inherit.
    #[error("chunk header type {fmt} on csid {csid}, which has no previous type-0 header")]
    UnknownChunkStream {
        /// The chunk stream id.
        csid: u32,
        /// The header type (1, 2 or 3).
        fmt: u8,
    },
    /// A message longer than the configured limit.
    #[error("message of {len} bytes (type {type_id:#04x}, csid {csid}) exceeds the limit of {max}")]
    MessageTooLarge {
        /// The chunk stream id.
        csid: u32,
        /// The message type.
        type_id: u8,
        /// The announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The peer opened more chunk streams than [`MAX_CHUNK_STREAMS`].
    #[error("chunk stream {csid} would exceed the {max} chunk streams a connection may open")]
    TooManyChunkStreams {
        /// The chunk stream id that would have been opened.
        csid: u32,
        /// The limit.
        max: usize,
    },
    /// Too many bytes announced by messages being reassembled at once.
    #[error("{pending} bytes of interleaved partial messages (csid {csid}) exceed {max}")]
    TooMuchPending {
        /// The chunk stream that went over.
        csid: u32,
        /// Total announced length of incomplete messages.
        pending: usize,
        /// The limit.
        max: usize,
    },
    /// A protocol control message with a body too short for its type.
    #[error("control message type {type_id:#04x} with {len}-byte body, expected {expected}")]
    BadControlMessage {
        /// The message type.
        type_id: u8,
        /// The body length received.
        len: usize,
        /// What the body should hold.
        expected: &'static str,
    },
}

/// One RTMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The chunk stream it travelled on.
    pub csid: u32,
    /// Milliseconds; absolute (after accumulating deltas), wrapping at 2^32.
    pub timestamp: u32,
    /// Message type id (`MSG_*`).
    pub type_id: u8,
    /// Message stream id (0 for NetConnection / control traffic).
    pub stream_id: u32,
    /// The payload.
    pub body: Bytes,
}

/// Header state of one incoming chunk stream.
#[derive(Debug, Default)]
struct StreamState {
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// Timestamp delta to apply to a type-3 header that starts a new message.
    delta: u32,
    /// Length of the current message.
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last type 0/1/2 header carried an extended timestamp.
    extended: bool,
    /// The raw (extended) timestamp field of that header, expected again on type-3 chunks.
    ext_field: u32,
    /// Body of the message being reassembled, if any.
    partial: Option<BytesMut>,
}

/// What one chunk produced.
enum Step {
    NeedMore,
    Partial,
    Message(Message),
}

/// Reassembles messages from the incoming chunk stream.
#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: usize,
    max_message_len: usize,
    direct: Vec<Option<StreamState>>,
    others: BTreeMap<u32, StreamState>,
    /// Sum of the announced lengths of incomplete messages.
    pending: usize,
    /// Chunk streams opened (at most [`MAX_CHUNK_STREAMS`]).
    open: usize,
    bytes_read: u64,
}

fn be24(b: &[u8]) -> u32 {
    b.iter()
        .take(3)
        .fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

impl ChunkReader {
    /// A reader with the default chunk size (128) and the given message length limit
    /// (capped at 0xFF_FFFF, the largest the header can announce; 8 MiB is a good default).
    pub fn new(max_message_len: usize) -> Self {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE as usize,
            max_message_len: max_message_len.min(MAX_MESSAGE_LEN_FIELD),
            direct: Vec::new(),
            others: BTreeMap::new(),
            pending: 0,
            open: 0,
            bytes_read: 0,
        }
    }

    /// Changes the message length limit for messages that start from now on (a session
    /// raises it once a publisher is accepted).
    pub fn set_max_message_len(&mut self, n: usize) {
        self.max_message_len = n.min(MAX_MESSAGE_LEN_FIELD);
    }

    /// Applies the peer's Set Chunk Size to subsequent chunks.
    pub fn set_chunk_size(&mut self, n: u32) -> Result<(), ChunkError> {
        if !(1..=MAX_CHUNK_SIZE).contains(&n) {
            return Err(ChunkError::InvalidChunkSize { size: n });
        }
        self.chunk_size = usize::try_from(n).unwrap_or(usize::MAX);
        Ok(())
    }

    /// The incoming chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        u32::try_from(self.chunk_size).unwrap_or(MAX_CHUNK_SIZE)
    }

    /// Drops the partially received message on `csid` (Abort Message).
    pub fn abort(&mut self, csid: u32) {
        let dropped = self
            .state_mut(csid)
            .and_then(|s| s.partial.take().map(|_| s.length as usize));
        if let Some(len) = dropped {
            self.pending = self.pending.saturating_sub(len);
        }
    }

    /// Total bytes consumed from the input (chunk headers included), for acknowledgements.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    fn state(&self, csid: u32) -> Option<&StreamState> {
        if csid < DIRECT_CSIDS {
            self.direct.get(csid as usize).and_then(Option::as_ref)
        } else {
            self.others.get(&csid)
        }
    }

    fn state_mut(&mut self, csid: u32) -> Option<&mut StreamState> {
        if csid < DIRECT_CSIDS {
            self.direct.get_mut(csid as usize).and_then(Option::as_mut)
        } else {
            self.others.get_mut(&csid)
        }
    }

    /// The state of `csid`, opened if new and the connection may open another.
    fn state_entry(&mut self, csid: u32) -> Result<&mut StreamState, ChunkError> {
        if self.state(csid).is_none() {
            if self.open >= MAX_CHUNK_STREAMS {
                return Err(ChunkError::TooManyChunkStreams {
                    csid,
                    max: MAX_CHUNK_STREAMS,
                });
            }
            self.open += 1;
        }
        Ok(if csid < DIRECT_CSIDS {
            let i = csid as usize;
            if self.direct.len() <= i {
                self.direct.resize_with(i + 1, || None);
            }
            self.direct[i].get_or_insert_with(StreamState::default)
        } else {
            self.others.entry(csid).or_default()
        })
    }

    /// Reads the next complete message from `buf`, consuming the chunks it uses.
    ///
    /// Returns `Ok(None)` when `buf` holds no further complete chunk; call in a loop.
    /// Incomplete chunks are left in `buf` untouched. A message that arrives as a single
    /// chunk is sliced out of `buf` without copying.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, ChunkError> {
        loop {
            match self.read_chunk(buf)? {
                Step::NeedMore => return Ok(None),
                Step::Partial => {}
                Step::Message(m) => return Ok(Some(m)),
            }
        }
    }

    /// Parses and consumes one chunk if `buf` holds all of it.
    fn read_chunk(&mut self, buf: &mut BytesMut) -> Result<Step, ChunkError> {
        let Some(h) = self.parse_header(buf)? else {
            return Ok(Step::NeedMore);
        };
        match (h.fmt, h.in_progress) {
            // Continuation of the message being reassembled.
            (3, Some(have)) => Ok(self.continue_message(buf, &h, have)),
            _ => self.start_message(buf, &h),
        }
    }

    /// The header of the chunk at the front of `b` (basic, message and extended timestamp
    /// parts, with omitted fields inherited), or `None` if it is not all there yet.
    fn parse_header(&self, b: &[u8]) -> Result<Option<ChunkHeader>, ChunkError> {
        let Some(&b0) = b.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        let (csid, mut pos) = match b0 & 0x3F {
            0 => match b.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + (u32::from(b2) << 8), 3),
                _ => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let header_len = match fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        let Some(h) = b.get(pos..pos + header_len) else {
            return Ok(None);
        };
        pos += header_len;
        let prev = self.state(csid);
        let Some(prev) = prev.or(if fmt == 0 { Some(&EMPTY_STATE) } else { None }) else {
            return Err(ChunkError::UnknownChunkStream { csid, fmt });
        };

        // Header fields, inherited from the previous header where the type omits them.
        let ts_field = if fmt < 3 { be24(h) } else { 0 };
        let (length, type_id) = match h.get(3..7) {
            Some(lt) if fmt < 2 => (be24(lt), lt[3]),
            _ => (prev.length, prev.type_id),
        };
        let stream_id = match h.get(7..11) {
            Some(s) if fmt == 0 => u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
            _ => prev.stream_id,
        };

        // Extended timestamp.
        let (extended, field) = if fmt < 3 {
            if ts_field == EXTENDED_TIMESTAMP {
                let Some(ext) = b.get(pos..).and_then(be32) else {
                    return Ok(None);
                };
                pos += 4;
                (true, ext)
            } else {
                (false, ts_field)
            }
        } else if prev.extended {
            // Present per the spec; some encoders omit it on continuation chunks. Accept it
            // when it repeats the stored value (as nginx-rtmp and SRS do).
            let Some(ext) = b.get(pos..).and_then(be32) else {
                return Ok(None);
            };
            if ext == prev.ext_field {
                pos += 4;
            }
            (true, prev.ext_field)
        } else {
            (false, prev.ext_field)
        };
        Ok(Some(ChunkHeader {
            fmt,
            csid,
            len: pos,
            length,
            type_id,
            stream_id,
            extended,
            field,
            in_progress: prev.partial.as_ref().map(BytesMut::len),
            prev_length: prev.length,
            prev_timestamp: prev.timestamp,
            prev_delta: prev.delta,
        }))
    }

    /// Adds a continuation chunk (type 3) to the message being reassembled, `have` bytes so
    /// far.
    fn continue_message(&mut self, buf: &mut BytesMut, h: &ChunkHeader, have: usize) -> Step {
        let remaining = (h.prev_length as usize).saturating_sub(have);
        let piece = remaining.min(self.chunk_size);
        if buf.len() < h.len + piece {
            return Step::NeedMore;
        }
        buf.advance(h.len);
        self.bytes_read += (h.len + piece) as u64;
        let data = buf.split_to(piece);
        let Some(st) = self.state_mut(h.csid) else {
            return Step::Partial;
        };
        let Some(partial) = st.partial.as_mut() else {
            return Step::Partial;
        };
        partial.extend_from_slice(&data);
        if partial.len() < st.length as usize {
            return Step::Partial;
        }
        let body = st.partial.take().unwrap_or_default().freeze();
        let msg = Message {
            csid: h.csid,
            timestamp: st.timestamp,
            type_id: st.type_id,
            stream_id: st.stream_id,
            body,
        };
        self.pending = self.pending.saturating_sub(msg.body.len());
        Step::Message(msg)
    }

    /// Starts a new message with the chunk whose header is `h`.
    fn start_message(&mut self, buf: &mut BytesMut, h: &ChunkHeader) -> Result<Step, ChunkError> {
        let (timestamp, delta) = match h.fmt {
            0 => (h.field, h.field),
            1 | 2 => (h.prev_timestamp.wrapping_add(h.field), h.field),
            _ => (h.prev_timestamp.wrapping_add(h.prev_delta), h.prev_delta),
        };
        let len = h.length as usize;
        if len > self.max_message_len {
            return Err(ChunkError::MessageTooLarge {
                csid: h.csid,
                type_id: h.type_id,
                len,
                max: self.max_message_len,
            });
        }
        let piece = len.min(self.chunk_size);
        if buf.len() < h.len + piece {
            return Ok(Step::NeedMore);
        }
        // A new header in the middle of a message replaces it (as ffmpeg does).
        let replaced = h.in_progress.map_or(0, |_| h.prev_length as usize);
        let pending_after = self.pending.saturating_sub(replaced);
        let pending_limit = self.max_message_len.saturating_mul(2);
        if piece < len && pending_after.saturating_add(len) > pending_limit {
            return Err(ChunkError::TooMuchPending {
                csid: h.csid,
                pending: pending_after.saturating_add(len),
                max: pending_limit,
            });
        }

        self.state_entry(h.csid)?;
        buf.advance(h.len);
        self.bytes_read += (h.len + piece) as u64;
        self.pending = pending_after;
        let st = self.state_entry(h.csid)?;
        st.timestamp = timestamp;
        st.delta = delta;
        st.length = h.length;
        st.type_id = h.type_id;
        st.stream_id = h.stream_id;
        st.extended = h.extended;
        st.ext_field = h.field;
        if piece == len {
            st.partial = None;
            let body = buf.split_to(len).freeze();
            return Ok(Step::Message(Message {
                csid: h.csid,
                timestamp,
                type_id: h.type_id,
                stream_id: h.stream_id,
                body,
            }));
        }
        let mut partial = BytesMut::with_capacity(len.min(PARTIAL_RESERVE.max(piece)));
        partial.extend_from_slice(buf.split_to(piece).as_ref());
        st.partial = Some(partial);
        self.pending += len;
        Ok(Step::Partial)
    }
}

/// One parsed chunk header, with the fields its type omits taken from the chunk stream.
struct ChunkHeader {
    /// Header type (0-3).
    fmt: u8,
    csid: u32,
    /// Bytes of the whole header (basic, message, extended timestamp).
    len: usize,
    /// Message length.
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether an extended timestamp is in force.
    extended: bool,
    /// The timestamp (type 0) or delta (types 1, 2) field, extended if so.
    field: u32,
    /// Bytes already reassembled of the message in progress on this chunk stream.
    in_progress: Option<usize>,
    prev_length: u32,
    prev_timestamp: u32,
    prev_delta: u32,
}

/// Header state a type-0 chunk on a new chunk stream "inherits" (nothing).
static EMPTY_STATE: StreamState = StreamState {
    timestamp: 0,
    delta: 0,
    length: 0,
    type_id: 0,
    stream_id: 0,
    extended: false,
    ext_field: 0,
    partial: None,
};

/// Chunks outgoing messages: a type-0 header per message, type-3 headers on continuations.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    chunk_size: u32,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkWriter {
    /// A writer using the default chunk size (128).
    pub fn new() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// Changes the outgoing chunk size; send Set Chunk Size to the peer first.
    pub fn set_chunk_size(&mut self, n: u32) -> Result<(), ChunkError> {
        if !(1..=MAX_CHUNK_SIZE).contains(&n) {
            return Err(ChunkError::InvalidChunkSize { size: n });
        }
        self.chunk_size = n;
        Ok(())
    }

    /// The outgoing chunk size in force.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends the chunks of `msg` to `out`; identical to [`encode_message`] with this
    /// writer's chunk size.
    pub fn write(&mut self, msg: &Message, out: &mut BytesMut) {
        encode_message(
            msg.csid,
            msg.type_id,
            msg.stream_id,
            msg.timestamp,
            &msg.body,
            self.chunk_size as usize,
            out,
        );
    }
}

fn put_basic_header(fmt: u8, csid: u32, out: &mut BytesMut) {
    let fmt = fmt << 6;
    match csid {
        0..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => {
            out.put_u8(fmt);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let id = csid.saturating_sub(64);
            out.put_u8(fmt | 0x01);
            out.put_u8(id as u8);
            out.put_u8((id >> 8) as u8);
        }
    }
}

/// Appends `body` as a chunked message to `out`: a type-0 chunk, then type-3 chunks of at
/// most `chunk_size` payload bytes, repeating the extended timestamp on each continuation
/// when `timestamp >= 0xFF_FFFF`.
///
/// The output depends only on the arguments (no per-connection header compression), so one
/// encoding can be shared by every connection with the same outgoing chunk size, and it is
/// byte-identical to [`ChunkWriter::write`]. `csid` is clamped to 2..=65599, a zero
/// `chunk_size` is treated as 1, and a body beyond the 24-bit length field (0xFF_FFFF) is
/// truncated; the session never produces either.
pub fn encode_message(
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    body: &[u8],
    chunk_size: usize,
    out: &mut BytesMut,
) {
    encode_message_parts(
        csid,
        type_id,
        stream_id,
        timestamp,
        &[body],
        chunk_size,
        out,
    );
}

/// [`encode_message`] for a body given in parts (a tag header and a shared payload, say),
/// chunked as if the parts were one buffer, so the body is never assembled first.
pub fn encode_message_parts(
    csid: u32,
    type_id: u8,
    stream_id: u32,
    timestamp: u32,
    parts: &[&[u8]],
    chunk_size: usize,
    out: &mut BytesMut,
) {
    let csid = csid.clamp(CSID_MIN, CSID_MAX);
    let chunk_size = chunk_size.max(1);
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let len = total.min(MAX_MESSAGE_LEN_FIELD);
    let extended = timestamp >= EXTENDED_TIMESTAMP;
    let ext_len = if extended { 4 } else { 0 };
    let continuations = len.saturating_sub(1) / chunk_size;
    out.reserve(len + 3 + 11 + ext_len + continuations * (3 + ext_len));

    put_basic_header(0, csid, out);
    out.put_uint(u64::from(timestamp.min(EXTENDED_TIMESTAMP)), 3);
    out.put_uint(len as u64, 3);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }
    // Copy `len` bytes across the parts, starting a continuation chunk every
    // `chunk_size` bytes.
    let mut left = len;
    let mut in_chunk = 0;
    for part in parts {
        let mut part = *part;
        while !part.is_empty() && left > 0 {
            if in_chunk == chunk_size {
                put_basic_header(3, csid, out);
                if extended {
                    out.put_u32(timestamp);
                }
                in_chunk = 0;
            }
            let n = part.len().min(chunk_size - in_chunk).min(left);
            out.put_slice(&part[..n]);
            part = &part[n..];
            in_chunk += n;
            left -= n;
        }
    }
}

/// User control events (message type 0x04), RTMP 1.0 section 6.2.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserControlEvent {
    /// Stream Begin (0x00): the stream with this id is ready.
    StreamBegin(u32),
    /// Stream EOF (0x01): playback of the stream is over.
    StreamEof(u32),
    /// Stream Dry (0x02): no more data for now.
    StreamDry(u32),
    /// Set Buffer Length (0x03), from a player.
    SetBufferLength {
        /// The message stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// Stream Is Recorded (0x04).
    StreamIsRecorded(u32),
    /// Ping Request (0x06) with the sender's timestamp.
    PingRequest(u32),
    /// Ping Response (0x07) echoing a Ping Request timestamp.
    PingResponse(u32),
    /// Any other event, kept raw.
    Other {
        /// The event type.
        event_type: u16,
        /// The event data.
        data: Bytes,
    },
}

/// Protocol control messages (types 0x01-0x06).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlMessage {
    /// 0x01 Set Chunk Size.
    SetChunkSize(u32),
    /// 0x02 Abort Message for a chunk stream id.
    Abort {
        /// The chunk stream whose partial message to drop.
        csid: u32,
    },
    /// 0x03 Acknowledgement of the bytes received so far.
    Acknowledgement {
        /// Bytes received (wrapping at 2^32).
        sequence: u32,
    },
    /// 0x04 User Control Message.
    UserControl(UserControlEvent),
    /// 0x05 Window Acknowledgement Size.
    WindowAckSize(u32),
    /// 0x06 Set Peer Bandwidth.
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// Limit type (`LIMIT_HARD`, `LIMIT_SOFT`, `LIMIT_DYNAMIC`).
        limit: u8,
    },
}

impl ControlMessage {
    /// Parses a protocol control message; `Ok(None)` if `type_id` is not one.
    ///
    /// Bodies longer than needed are tolerated.
    pub fn parse(type_id: u8, body: &Bytes) -> Result<Option<Self>, ChunkError> {
        let short = |expected| ChunkError::BadControlMessage {
            type_id,
            len: body.len(),
            expected,
        };
        let u32_at =
            |at: usize, expected| body.get(at..).and_then(be32).ok_or_else(|| short(expected));
        Ok(Some(match type_id {
            MSG_SET_CHUNK_SIZE => {
                ControlMessage::SetChunkSize(u32_at(0, "a 4-byte chunk size")? & MAX_CHUNK_SIZE)
            }
            MSG_ABORT => ControlMessage::Abort {
                csid: u32_at(0, "a 4-byte chunk stream id")?,
            },
            MSG_ACKNOWLEDGEMENT => ControlMessage::Acknowledgement {
                sequence: u32_at(0, "a 4-byte sequence number")?,
            },
            MSG_USER_CONTROL => {
                let Some(&[hi, lo]) = body.get(..2) else {
                    return Err(short("a 2-byte event type"));
                };
                let event_type = u16::from_be_bytes([hi, lo]);
                let arg = |expected| u32_at(2, expected);
                ControlMessage::UserControl(match event_type {
                    UC_STREAM_BEGIN => UserControlEvent::StreamBegin(arg("a stream id")?),
                    UC_STREAM_EOF => UserControlEvent::StreamEof(arg("a stream id")?),
                    UC_STREAM_DRY => UserControlEvent::StreamDry(arg("a stream id")?),
                    UC_SET_BUFFER_LENGTH => UserControlEvent::SetBufferLength {
                        stream_id: arg("a stream id and buffer length")?,
                        buffer_ms: u32_at(6, "a stream id and buffer length")?,
                    },
                    UC_STREAM_IS_RECORDED => {
                        UserControlEvent::StreamIsRecorded(arg("a stream id")?)
                    }
                    UC_PING_REQUEST => UserControlEvent::PingRequest(arg("a timestamp")?),
                    UC_PING_RESPONSE => UserControlEvent::PingResponse(arg("a timestamp")?),
                    event_type => UserControlEvent::Other {
                        event_type,
                        data: body.slice(2..),
                    },
                })
            }
            MSG_WINDOW_ACK_SIZE => ControlMessage::WindowAckSize(u32_at(0, "a 4-byte window")?),
            MSG_SET_PEER_BANDWIDTH => ControlMessage::SetPeerBandwidth {
                size: u32_at(0, "a 4-byte window and a limit type")?,
                limit: *body
                    .get(4)
                    .ok_or_else(|| short("a 4-byte window and a limit type"))?,
            },
            _ => return Ok(None),
        }))
    }

    /// The message type id.
    pub fn type_id(&self) -> u8 {
        match self {
            ControlMessage::SetChunkSize(_) => MSG_SET_CHUNK_SIZE,
            ControlMessage::Abort { .. } => MSG_ABORT,
            ControlMessage::Acknowledgement { .. } => MSG_ACKNOWLEDGEMENT,
            ControlMessage::UserControl(_) => MSG_USER_CONTROL,
            ControlMessage::WindowAckSize(_) => MSG_WINDOW_ACK_SIZE,
            ControlMessage::SetPeerBandwidth { .. } => MSG_SET_PEER_BANDWIDTH,
        }
    }

    /// The message body.
    pub fn body(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(10);
        match self {
            ControlMessage::SetChunkSize(n) => b.put_u32(n & MAX_CHUNK_SIZE),
            ControlMessage::Abort { csid } => b.put_u32(*csid),
            ControlMessage::Acknowledgement { sequence } => b.put_u32(*sequence),
            ControlMessage::WindowAckSize(n) => b.put_u32(*n),
            ControlMessage::SetPeerBandwidth { size, limit } => {
                b.put_u32(*size);
                b.put_u8(*limit);
            }
            ControlMessage::UserControl(ev) => {
                let (ty, a) = match ev {
                    UserControlEvent::StreamBegin(id) => (UC_STREAM_BEGIN, *id),
                    UserControlEvent::StreamEof(id) => (UC_STREAM_EOF, *id),
                    UserControlEvent::StreamDry(id) => (UC_STREAM_DRY, *id),
                    UserControlEvent::SetBufferLength {
                        stream_id,
                        buffer_ms,
                    } => {
                        b.put_u16(UC_SET_BUFFER_LENGTH);
                        b.put_u32(*stream_id);
                        b.put_u32(*buffer_ms);
                        return b.freeze();
                    }
                    UserControlEvent::StreamIsRecorded(id) => (UC_STREAM_IS_RECORDED, *id),
                    UserControlEvent::PingRequest(t) => (UC_PING_REQUEST, *t),
                    UserControlEvent::PingResponse(t) => (UC_PING_RESPONSE, *t),
                    UserControlEvent::Other { event_type, data } => {
                        b.put_u16(*event_type);
                        b.put_slice(data);
                        return b.freeze();
                    }
                };
                b.put_u16(ty);
                b.put_u32(a);
            }
        }
        b.freeze()
    }

    /// The message to send: chunk stream 2, message stream 0, timestamp 0.
    pub fn to_message(&self) -> Message {
        Message {
            csid: CSID_PROTOCOL_CONTROL,
            timestamp: 0,
            type_id: self.type_id(),
            stream_id: 0,
            body: self.body(),
        }
    }
}

#[cfg(test)]
mod tests;
