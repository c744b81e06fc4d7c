//! FLV container and tag bodies (Adobe Flash Video File Format Specification v10.1,
//! annex E). RTMP audio/video messages are exactly these tag bodies, so [`parse_video`],
//! [`parse_audio`] and [`Demuxer`] serve both the file source and RTMP ingest.

use super::aac::{AacError, AudioSpecificConfig};
use super::h264::{self, AvcConfig, H264Error};
use super::{Codec, Frame, MediaKind, Track, TrackId};
use bytes::{BufMut, Bytes, BytesMut};

/// `"FLV"`, the file signature.
const SIGNATURE: [u8; 3] = *b"FLV";
/// Length of the file header.
const HEADER_LEN: usize = 9;
/// Largest accepted `DataOffset` (the header is 9 bytes in version 1).
const MAX_DATA_OFFSET: u32 = 0x400;
/// Length of a tag header.
const TAG_HEADER_LEN: usize = 11;
/// Length of a `PreviousTagSize` field.
const PREV_TAG_SIZE_LEN: usize = 4;
/// Largest body a tag's 24-bit `DataSize` can describe.
pub const MAX_DATA_SIZE: usize = 0xFF_FFFF;
/// Filter bit of the first tag header byte (encrypted / pre-processed tag).
const FILTER_FLAG: u8 = 0x20;
/// `IsExHeader` bit of an Enhanced-RTMP video tag's first byte.
const EX_HEADER_FLAG: u8 = 0x80;

/// Video `CodecID` of AVC / H.264.
pub const CODEC_AVC: u8 = 0x07;
/// Video `FrameType` of a keyframe.
pub const FRAME_TYPE_KEY: u8 = 0x01;
/// Video `FrameType` of an inter frame.
pub const FRAME_TYPE_INTER: u8 = 0x02;
/// `AVCPacketType` of an AVC sequence header (decoder configuration record).
pub const AVC_SEQUENCE_HEADER: u8 = 0x00;
/// `AVCPacketType` of AVC NAL units.
pub const AVC_NALU: u8 = 0x01;
/// `AVCPacketType` of an AVC end of sequence.
pub const AVC_END_OF_SEQUENCE: u8 = 0x02;
/// Audio `SoundFormat` of AAC.
pub const SOUND_FORMAT_AAC: u8 = 0x0A;
/// `AACPacketType` of an AAC sequence header (AudioSpecificConfig).
pub const AAC_SEQUENCE_HEADER: u8 = 0x00;
/// `AACPacketType` of a raw AAC frame.
pub const AAC_RAW: u8 = 0x01;

/// Track of the video produced by [`Demuxer`].
pub const VIDEO_TRACK: TrackId = TrackId(0);
/// Track of the audio produced by [`Demuxer`].
pub const AUDIO_TRACK: TrackId = TrackId(1);

/// Errors from FLV parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlvError {
    /// The file does not start with `FLV`.
    #[error("not an FLV file")]
    BadSignature,
    /// A file version other than 1.
    #[error("unsupported FLV version {0}")]
    UnsupportedVersion(u8),
    /// A header `DataOffset` below 9 or implausibly large.
    #[error("invalid FLV data offset {0}")]
    BadDataOffset(u32),
    /// A tag body larger than the configured maximum.
    #[error("FLV tag of {size} bytes exceeds the limit of {max}")]
    TagTooLarge {
        /// `DataSize` of the tag.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A tag with the filter bit set (encrypted), which is not supported.
    #[error("encrypted FLV tags are not supported")]
    Encrypted,
    /// A body too large for the 24-bit `DataSize` field.
    #[error("tag body of {0} bytes does not fit FLV")]
    BodyTooLarge(usize),
    /// An empty audio or video tag body.
    #[error("empty tag body")]
    EmptyBody,
    /// A tag body shorter than its header.
    #[error("truncated tag body")]
    Truncated,
    /// An `AVCPacketType` other than 0, 1 or 2.
    #[error("unknown AVC packet type {0}")]
    UnknownAvcPacketType(u8),
    /// An `AACPacketType` other than 0 or 1.
    #[error("unknown AAC packet type {0}")]
    UnknownAacPacketType(u8),
    /// A bad AVC decoder configuration or SPS.
    #[error("H.264: {0}")]
    H264(#[from] H264Error),
    /// A bad AAC AudioSpecificConfig.
    #[error("AAC: {0}")]
    Aac(#[from] AacError),
}

/// The FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    /// `TypeFlagsAudio`.
    pub has_audio: bool,
    /// `TypeFlagsVideo`.
    pub has_video: bool,
    /// Length of the header; the first `PreviousTagSize` follows it.
    pub data_offset: u32,
}

impl FlvHeader {
    /// Parses the header; `Ok(None)` if `buf` is too short to tell.
    pub fn parse(buf: &[u8]) -> Result<Option<FlvHeader>, FlvError> {
        let seen = buf.len().min(SIGNATURE.len());
        if buf.get(..seen) != SIGNATURE.get(..seen) {
            return Err(FlvError::BadSignature);
        }
        let Some(&[_, _, _, version, flags, o0, o1, o2, o3]) = buf.first_chunk::<HEADER_LEN>()
        else {
            return Ok(None);
        };
        if version != 1 {
            return Err(FlvError::UnsupportedVersion(version));
        }
        let data_offset = u32::from_be_bytes([o0, o1, o2, o3]);
        if data_offset < HEADER_LEN as u32 || data_offset > MAX_DATA_OFFSET {
            return Err(FlvError::BadDataOffset(data_offset));
        }
        Ok(Some(FlvHeader {
            has_audio: flags & 0x04 != 0,
            has_video: flags & 0x01 != 0,
            data_offset,
        }))
    }

    /// Offset of the first tag: after the header and `PreviousTagSize0`.
    pub fn first_tag_offset(&self) -> usize {
        self.data_offset as usize + PREV_TAG_SIZE_LEN
    }
}

/// The type of an FLV tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TagType {
    /// Audio (0x08).
    Audio,
    /// Video (0x09).
    Video,
    /// Script data, e.g. `onMetaData` (0x12).
    Script,
    /// Any other type; readers skip it.
    Other(u8),
}

impl From<u8> for TagType {
    fn from(v: u8) -> Self {
        match v {
            0x08 => TagType::Audio,
            0x09 => TagType::Video,
            0x12 => TagType::Script,
            other => TagType::Other(other),
        }
    }
}

impl From<TagType> for u8 {
    fn from(t: TagType) -> u8 {
        match t {
            TagType::Audio => 0x08,
            TagType::Video => 0x09,
            TagType::Script => 0x12,
            TagType::Other(v) => v,
        }
    }
}

/// One FLV tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// Tag type.
    pub tag_type: TagType,
    /// Milliseconds, including the extended (upper) byte.
    pub timestamp: u32,
    /// The tag body (a zero-copy slice of the input).
    pub data: Bytes,
}

/// Reads the tag at `pos` in `buf`. Returns the tag and the position after its
/// `PreviousTagSize`, or `Ok(None)` if `buf` ends before that. `PreviousTagSize` and
/// `StreamID` are not checked.
pub fn read_tag(
    buf: &Bytes,
    pos: usize,
    max_tag_size: usize,
) -> Result<Option<(FlvTag, usize)>, FlvError> {
    let Some(rest) = buf.get(pos..) else {
        return Ok(None);
    };
    let Some(&[b0, s0, s1, s2, t0, t1, t2, t3, ..]) = rest.first_chunk::<TAG_HEADER_LEN>() else {
        return Ok(None);
    };
    if b0 & FILTER_FLAG != 0 {
        return Err(FlvError::Encrypted);
    }
    let size = u32::from_be_bytes([0, s0, s1, s2]) as usize;
    if size > max_tag_size {
        return Err(FlvError::TagTooLarge {
            size,
            max: max_tag_size,
        });
    }
    // size < 2^24, so none of these sums overflow.
    let total = TAG_HEADER_LEN + size + PREV_TAG_SIZE_LEN;
    if rest.len() < total {
        return Ok(None);
    }
    let start = pos + TAG_HEADER_LEN;
    let tag = FlvTag {
        tag_type: TagType::from(b0 & 0x1F),
        timestamp: u32::from_be_bytes([t3, t0, t1, t2]),
        data: buf.slice(start..start + size),
    };
    Ok(Some((tag, pos + total)))
}

/// Appends the file header and `PreviousTagSize0`.
pub fn write_header(out: &mut Vec<u8>, has_audio: bool, has_video: bool) {
    let flags = if has_audio { 0x04 } else { 0 } | if has_video { 0x01 } else { 0 };
    out.extend_from_slice(&SIGNATURE);
    out.extend_from_slice(&[0x01, flags]);
    out.extend_from_slice(&(HEADER_LEN as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Appends a tag (header, body, `PreviousTagSize`). Only the low 5 bits of `tag_type`
/// are used. Fails, writing nothing, if the body exceeds [`MAX_DATA_SIZE`].
pub fn write_tag(
    out: &mut Vec<u8>,
    tag_type: u8,
    timestamp: u32,
    body: &[u8],
) -> Result<(), FlvError> {
    if body.len() > MAX_DATA_SIZE {
        return Err(FlvError::BodyTooLarge(body.len()));
    }
    let [_, s0, s1, s2] = (body.len() as u32).to_be_bytes();
    let [t3, t0, t1, t2] = timestamp.to_be_bytes();
    out.reserve(TAG_HEADER_LEN + body.len() + PREV_TAG_SIZE_LEN);
    out.extend_from_slice(&[tag_type & 0x1F, s0, s1, s2, t0, t1, t2, t3, 0, 0, 0]);
    out.extend_from_slice(body);
    out.extend_from_slice(&((TAG_HEADER_LEN + body.len()) as u32).to_be_bytes());
    Ok(())
}

/// The payload of a video tag.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VideoPacket {
    /// An AVCDecoderConfigurationRecord.
    AvcSequenceHeader(Bytes),
    /// AVCC NAL units.
    AvcNalus {
        /// Composition time offset in ms (`pts - dts`), 24-bit signed.
        cts: i32,
        /// The NAL units, length prefixed.
        data: Bytes,
    },
    /// End of the AVC sequence.
    AvcEndOfSequence,
    /// Another codec: the bytes after the first.
    Other(Bytes),
}

/// A parsed video tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTag {
    /// `FrameType` (1 keyframe, 2 inter frame, ...).
    pub frame_type: u8,
    /// `CodecID` (7 = AVC); for Enhanced-RTMP bodies, the low nibble (`PacketType`).
    pub codec_id: u8,
    /// The payload.
    pub packet: VideoPacket,
}

/// Parses a video tag body. Enhanced-RTMP bodies (`IsExHeader` set) are returned as
/// [`VideoPacket::Other`].
pub fn parse_video(body: &Bytes) -> Result<VideoTag, FlvError> {
    let &b0 = body.first().ok_or(FlvError::EmptyBody)?;
    let frame_type = (b0 >> 4) & 0x07;
    let codec_id = b0 & 0x0F;
    if b0 & EX_HEADER_FLAG != 0 || codec_id != CODEC_AVC {
        return Ok(VideoTag {
            frame_type,
            codec_id,
            packet: VideoPacket::Other(body.slice(1..)),
        });
    }
    let Some(&[_, packet_type, c0, c1, c2]) = body.first_chunk::<5>() else {
        return Err(FlvError::Truncated);
    };
    // Sign-extend the 24-bit composition time.
    let cts = i32::from_be_bytes([c0, c1, c2, 0]) >> 8;
    let data = body.slice(5..);
    let packet = match packet_type {
        AVC_SEQUENCE_HEADER => VideoPacket::AvcSequenceHeader(data),
        AVC_NALU => VideoPacket::AvcNalus { cts, data },
        AVC_END_OF_SEQUENCE => VideoPacket::AvcEndOfSequence,
        other => return Err(FlvError::UnknownAvcPacketType(other)),
    };
    Ok(VideoTag {
        frame_type,
        codec_id,
        packet,
    })
}

/// The payload of an audio tag.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudioPacket {
    /// An AudioSpecificConfig.
    AacSequenceHeader(Bytes),
    /// A raw AAC frame.
    AacRaw(Bytes),
    /// Another sound format: the bytes after the first.
    Other(Bytes),
}

/// A parsed audio tag body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTag {
    /// `SoundFormat` (2 MP3, 10 AAC, ...).
    pub sound_format: u8,
    /// `SoundRate`: 0 5.5 kHz, 1 11 kHz, 2 22 kHz, 3 44 kHz.
    pub rate_index: u8,
    /// `SoundSize`: 0 8-bit, 1 16-bit samples.
    pub sample_size: u8,
    /// `SoundType`: stereo.
    pub stereo: bool,
    /// The payload.
    pub packet: AudioPacket,
}

/// Parses an audio tag body.
pub fn parse_audio(body: &Bytes) -> Result<AudioTag, FlvError> {
    let &b0 = body.first().ok_or(FlvError::EmptyBody)?;
    let sound_format = b0 >> 4;
    let packet = if sound_format == SOUND_FORMAT_AAC {
        let &packet_type = body.get(1).ok_or(FlvError::Truncated)?;
        let data = body.slice(2..);
        match packet_type {
            AAC_SEQUENCE_HEADER => AudioPacket::AacSequenceHeader(data),
            AAC_RAW => AudioPacket::AacRaw(data),
            other => return Err(FlvError::UnknownAacPacketType(other)),
        }
    } else {
        AudioPacket::Other(body.slice(1..))
    };
    Ok(AudioTag {
        sound_format,
        rate_index: (b0 >> 2) & 0x03,
        sample_size: (b0 >> 1) & 0x01,
        stereo: b0 & 0x01 != 0,
        packet,
    })
}

/// The 5-byte header of an AVC video tag body. `cts` (ms) is clamped to 24 bits.
pub fn video_tag_header(keyframe: bool, avc_packet_type: u8, cts: i32) -> [u8; 5] {
    let first = if keyframe { 0x17 } else { 0x27 };
    let [_, c0, c1, c2] = cts.clamp(-0x80_0000, 0x7F_FFFF).to_be_bytes();
    [first, avc_packet_type, c0, c1, c2]
}

/// The 2-byte header of an AAC audio tag body (AAC, 44 kHz, 16-bit, stereo, as the spec
/// requires for AAC).
pub fn aac_tag_header(aac_packet_type: u8) -> [u8; 2] {
    [0xAF, aac_packet_type]
}

/// What [`Demuxer`] made of a tag body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DemuxOutput {
    /// A track appeared or its parameters changed; see [`Demuxer::tracks`].
    TracksChanged,
    /// A frame.
    Frame(Frame),
}

/// Turns FLV/RTMP audio and video tag bodies into tracks and frames. Video (H.264) is
/// [`VIDEO_TRACK`] with a 90 kHz clock; audio is [`AUDIO_TRACK`], AAC in its sample rate
/// G.711 as [`Codec::Pcma`]/[`Codec::Pcmu`] (raw samples, 8 kHz clock), or any other
/// sound format passed through as [`Codec::FlvAudio`] with a 1 kHz clock.
#[derive(Debug, Clone, Default)]
pub struct Demuxer {
    video: Option<Track>,
    /// The raw AVCDecoderConfigurationRecord of `video`.
    video_config: Option<Bytes>,
    /// NAL unit length prefix size of `video`.
    nal_length_size: u8,
    audio: Option<Track>,
}

impl Demuxer {
    /// A demuxer with no tracks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current tracks, video first.
    pub fn tracks(&self) -> Vec<Track> {
        self.video.iter().chain(&self.audio).cloned().collect()
    }

    /// Handles an audio or video tag body (`kind`; other kinds give `Ok(None)`) with its
    /// timestamp in ms: [`Demuxer::video`] or [`Demuxer::audio`].
    pub fn tag(
        &mut self,
        kind: TagType,
        timestamp_ms: i64,
        body: &Bytes,
    ) -> Result<Option<DemuxOutput>, FlvError> {
        match kind {
            TagType::Video => self.video(timestamp_ms, body),
            TagType::Audio => self.audio(timestamp_ms, body),
            _ => Ok(None),
        }
    }

    /// Handles a video tag body with its timestamp in ms. NAL units before the first
    /// sequence header, non-AVC codecs and end-of-sequence give `Ok(None)`. NAL units with
    /// 1-, 2- or 3-byte length prefixes are rewritten to 4-byte AVCC (a copy).
    pub fn video(
        &mut self,
        timestamp_ms: i64,
        body: &Bytes,
    ) -> Result<Option<DemuxOutput>, FlvError> {
        let tag = parse_video(body)?;
        match tag.packet {
            VideoPacket::AvcSequenceHeader(record) => {
                if self.video_config.as_ref() == Some(&record) {
                    return Ok(None);
                }
                let cfg = AvcConfig::parse(&record)?;
                let mut track = self
                    .video
                    .clone()
                    .unwrap_or_else(|| Track::new(VIDEO_TRACK, Codec::H264, 90_000));
                h264::apply_avc_config(&mut track, &cfg)?;
                self.video = Some(track);
                self.video_config = Some(record);
                self.nal_length_size = cfg.nal_length_size;
                Ok(Some(DemuxOutput::TracksChanged))
            }
            VideoPacket::AvcNalus { cts, data } => {
                if self.video.is_none() || data.is_empty() {
                    return Ok(None);
                }
                let data = to_avcc4(&data, self.nal_length_size).ok_or(H264Error::Truncated)?;
                let keyframe = tag.frame_type == FRAME_TYPE_KEY || h264::avcc_has_idr(&data);
                Ok(Some(DemuxOutput::Frame(Frame {
                    track: VIDEO_TRACK,
                    kind: MediaKind::Video,
                    keyframe,
                    dts: timestamp_ms.saturating_mul(90),
                    pts: timestamp_ms
                        .saturating_add(i64::from(cts))
                        .saturating_mul(90),
                    data,
                })))
            }
            VideoPacket::AvcEndOfSequence => Ok(None),
            VideoPacket::Other(_) => {
                tracing::debug!(codec_id = tag.codec_id, "ignoring non-AVC FLV video");
                Ok(None)
            }
        }
    }

    /// Handles an audio tag body with its timestamp in ms. AAC frames before the first
    /// sequence header give `Ok(None)`. For other sound formats the first body (and any
    /// that changes format or channels) only announces the track and is dropped.
    pub fn audio(
        &mut self,
        timestamp_ms: i64,
        body: &Bytes,
    ) -> Result<Option<DemuxOutput>, FlvError> {
        let tag = parse_audio(body)?;
        match tag.packet {
            AudioPacket::AacSequenceHeader(config) => {
                if let Some(t) = &self.audio
                    && t.codec == Codec::Aac
                    && t.params.audio_config.as_ref() == Some(&config)
                {
                    return Ok(None);
                }
                let asc = AudioSpecificConfig::parse(&config)?;
                let mut track = Track::new(AUDIO_TRACK, Codec::Aac, asc.sample_rate);
                track.channels = Some(asc.channels).filter(|c| *c != 0);
                track.profile = Some(asc.object_type_name().to_string());
                track.params.audio_config = Some(config);
                self.audio = Some(track);
                Ok(Some(DemuxOutput::TracksChanged))
            }
            AudioPacket::AacRaw(data) => {
                let rate = match &self.audio {
                    Some(t) if t.codec == Codec::Aac => i64::from(t.clock_rate),
                    _ => return Ok(None),
                };
                if data.is_empty() {
                    return Ok(None);
                }
                let ts = timestamp_ms.saturating_mul(rate) / 1000;
                Ok(Some(DemuxOutput::Frame(audio_frame(ts, data))))
            }
            AudioPacket::Other(_) if matches!(tag.sound_format, 7 | 8) => {
                // G.711 (8 kHz mono in FLV): raw samples after the 1-byte header, so
                // WebRTC viewers get them as they are.
                let codec = if tag.sound_format == 7 {
                    Codec::Pcma
                } else {
                    Codec::Pcmu
                };
                if !matches!(&self.audio, Some(t) if t.codec == codec) {
                    let mut track = Track::new(AUDIO_TRACK, codec, 8000);
                    track.channels = Some(1);
                    self.audio = Some(track);
                    return Ok(Some(DemuxOutput::TracksChanged));
                }
                let samples = body.slice(1..);
                if samples.is_empty() {
                    return Ok(None);
                }
                let ts = timestamp_ms.saturating_mul(8);
                Ok(Some(DemuxOutput::Frame(audio_frame(ts, samples))))
            }
            AudioPacket::Other(_) => {
                let codec = Codec::FlvAudio(tag.sound_format);
                let channels = Some(if tag.stereo { 2 } else { 1 });
                let known =
                    matches!(&self.audio, Some(t) if t.codec == codec && t.channels == channels);
                if !known {
                    let mut track = Track::new(AUDIO_TRACK, codec, 1000);
                    track.channels = channels;
                    self.audio = Some(track);
                    return Ok(Some(DemuxOutput::TracksChanged));
                }
                Ok(Some(DemuxOutput::Frame(audio_frame(
                    timestamp_ms,
                    body.clone(),
                ))))
            }
        }
    }
}

/// An audio frame on [`AUDIO_TRACK`].
fn audio_frame(ts: i64, data: Bytes) -> Frame {
    Frame {
        track: AUDIO_TRACK,
        kind: MediaKind::Audio,
        keyframe: true,
        dts: ts,
        pts: ts,
        data,
    }
}

/// Rewrites NAL units with `size`-byte length prefixes to 4-byte prefixes; zero-copy when
/// `size` is already 4. `None` if a unit is truncated.
fn to_avcc4(data: &Bytes, size: u8) -> Option<Bytes> {
    if size == 4 {
        return Some(data.clone());
    }
    let size = usize::from(size);
    let mut out = BytesMut::with_capacity(data.len().saturating_add(0x40));
    let mut pos = 0usize;
    while pos < data.len() {
        let prefix = data.get(pos..pos.checked_add(size)?)?;
        let len = prefix
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        let start = pos + size;
        let end = start.checked_add(len)?;
        out.put_u32(u32::try_from(len).ok()?);
        out.put_slice(data.get(start..end)?);
        pos = end;
    }
    Some(out.freeze())
}

/// A tag body ready to send: FLV tag type (audio 0x08, video 0x09), timestamp in ms, and
/// the body as a short header plus the payload it shares with the frame (no copy; write
/// both parts, see [`MuxedTag::parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuxedTag {
    /// [`TagType`] byte: 0x08 audio, 0x09 video.
    pub tag_type: u8,
    /// Decode time in milliseconds (wrapping, as FLV and RTMP carry it).
    pub timestamp: u32,
    head: [u8; 5],
    head_len: u8,
    /// The body after the header (the frame's payload, shared).
    pub payload: Bytes,
}

impl MuxedTag {
    fn new(tag_type: u8, timestamp: u32, head: &[u8], payload: Bytes) -> Self {
        let mut h = [0u8; 5];
        let n = head.len().min(5);
        h[..n].copy_from_slice(&head[..n]);
        MuxedTag {
            tag_type,
            timestamp,
            head: h,
            head_len: n as u8,
            payload,
        }
    }

    /// The tag header bytes (5 for AVC, 2 for AAC, none for pass-through audio).
    pub fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    /// The body as its two parts, header then payload.
    pub fn parts(&self) -> [&[u8]; 2] {
        [self.head(), &self.payload]
    }

    /// Body length in bytes.
    pub fn len(&self) -> usize {
        usize::from(self.head_len) + self.payload.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body in one buffer (a copy; for rare paths and tests).
    pub fn to_vec(&self) -> Vec<u8> {
        [self.head(), &self.payload[..]].concat()
    }
}

/// Milliseconds of a time in a track clock, wrapped to 32 bits as FLV and RTMP carry it.
pub fn to_millis(t: i64, clock_rate: u32) -> u32 {
    // Rounded, so that a time made from whole milliseconds (as the demuxer makes them,
    // rounding down) maps back to the same millisecond for any clock of 2 kHz or more.
    let rate = i64::from(clock_rate.max(1));
    (t.saturating_mul(1000)
        .saturating_add(rate / 2)
        .div_euclid(rate)) as u32
}

/// The sequence headers a player needs before frames of `track`: the AVC decoder
/// configuration record or the AAC AudioSpecificConfig. `None` for tracks that have none
/// (other audio codecs) or whose parameters are not known yet.
pub fn mux_sequence_header(track: &Track) -> Option<MuxedTag> {
    match track.codec {
        Codec::H264 => {
            let cfg = AvcConfig::from_parameter_sets(&track.params.sps, &track.params.pps).ok()?;
            let head = video_tag_header(true, AVC_SEQUENCE_HEADER, 0);
            Some(MuxedTag::new(0x09, 0, &head, cfg.to_bytes()))
        }
        Codec::Aac => {
            let asc = track.params.audio_config.clone()?;
            Some(MuxedTag::new(
                0x08,
                0,
                &aac_tag_header(AAC_SEQUENCE_HEADER),
                asc,
            ))
        }
        _ => None,
    }
}

/// A frame as an FLV tag body: H.264 gets the 5-byte AVC header with the composition time
/// (pts - dts), AAC the 2-byte header, and pass-through audio (`Codec::FlvAudio`) is
/// already a whole tag body. The payload is shared with the frame, not copied. `None` for
/// codecs FLV cannot carry (H.265, Opus).
pub fn mux_frame(track: &Track, frame: &Frame) -> Option<MuxedTag> {
    let timestamp = to_millis(frame.dts, track.clock_rate);
    let data = frame.data.clone();
    match track.codec {
        Codec::H264 => {
            let cts_ms =
                (frame.pts - frame.dts).saturating_mul(1000) / i64::from(track.clock_rate.max(1));
            let cts = i32::try_from(cts_ms).unwrap_or(0);
            let head = video_tag_header(frame.keyframe, AVC_NALU, cts);
            Some(MuxedTag::new(0x09, timestamp, &head, data))
        }
        Codec::Aac => Some(MuxedTag::new(
            0x08,
            timestamp,
            &aac_tag_header(AAC_RAW),
            data,
        )),
        Codec::FlvAudio(_) => Some(MuxedTag::new(0x08, timestamp, &[], data)),
        // SoundFormat 7/8, 16-bit flag and mono as ffmpeg writes them; the rate field
        // is ignored for G.711 (always 8 kHz).
        Codec::Pcma => Some(MuxedTag::new(0x08, timestamp, &[0x72], data)),
        Codec::Pcmu => Some(MuxedTag::new(0x08, timestamp, &[0x82], data)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
