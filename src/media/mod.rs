//! The media model: frames, tracks, codecs and parameter sets. Pure data, no I/O.
//!
//! A [`Frame`] is one access unit of one track. Video payloads are H.264/H.265 NAL units in
//! AVCC form (each NAL unit prefixed by its 4-byte big-endian length); audio payloads are
//! the codec's raw frame (an AAC raw data block, an Opus packet, G.711 samples). Times are
//! in the track's clock ([`Track::clock_rate`]): 90 kHz for video, the sample rate for audio.

pub mod aac;
pub mod bits;
pub mod clip;
pub mod flv;
pub mod fmp4;
pub mod gop;
pub mod h264;
pub mod h265;
pub mod timeline;
pub mod transcode;

use bytes::Bytes;
use std::sync::Arc;

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Pictures.
    Video,
    /// Sound.
    Audio,
}

/// The codec of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
    /// AAC (MPEG-4 audio).
    Aac,
    /// Opus.
    Opus,
    /// G.711 A-law.
    Pcma,
    /// G.711 µ-law.
    Pcmu,
    /// Audio in a codec corecast does not parse; passed through to RTMP players as FLV
    /// `SoundFormat` id.
    FlvAudio(u8),
}

impl Codec {
    /// The kind of media this codec carries.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::H264 | Codec::H265 => MediaKind::Video,
            _ => MediaKind::Audio,
        }
    }

    /// Lower-case name as shown in the API (`h264`, `aac`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Aac => "aac",
            Codec::Opus => "opus",
            Codec::Pcma => "pcma",
            Codec::Pcmu => "pcmu",
            Codec::FlvAudio(_) => "flv-audio",
        }
    }
}

/// Index of a track within its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackId(pub u8);

/// Description of one track: codec, clock and the codec's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// Index within the stream.
    pub id: TrackId,
    /// Codec.
    pub codec: Codec,
    /// Ticks per second of `Frame::pts`/`Frame::dts`.
    pub clock_rate: u32,
    /// Video: width and height in pixels, once known from the parameter sets.
    pub width: Option<u32>,
    /// Video: height in pixels.
    pub height: Option<u32>,
    /// Video: frames per second from the bitstream or metadata, if known.
    pub fps: Option<f64>,
    /// Audio: channels.
    pub channels: Option<u8>,
    /// Codec profile as a human-readable string (e.g. `Main`, `Constrained Baseline`).
    pub profile: Option<String>,
    /// Codec configuration: for H.264 the SPS and PPS NAL units; for AAC the
    /// AudioSpecificConfig bytes.
    pub params: ParamSets,
    /// Made by the server from this track of the stream (Opus for browsers from AAC).
    pub transcoded_from: Option<TrackId>,
}

impl Track {
    /// Fills size, profile and level from the track's parameter sets (new in-band ones,
    /// say); leaves them as they were when the sets do not parse.
    pub fn apply_params(&mut self) {
        match self.codec {
            Codec::H264 => {
                if let Ok(cfg) =
                    h264::AvcConfig::from_parameter_sets(&self.params.sps, &self.params.pps)
                {
                    let _ = h264::apply_avc_config(self, &cfg);
                }
            }
            Codec::H265 => h265::apply_sps(self),
            _ => {}
        }
    }

    /// A track with no parameters known yet.
    pub fn new(id: TrackId, codec: Codec, clock_rate: u32) -> Self {
        Track {
            id,
            codec,
            clock_rate,
            width: None,
            height: None,
            fps: None,
            channels: None,
            profile: None,
            params: ParamSets::default(),
            transcoded_from: None,
        }
    }

    /// The kind of media of this track.
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }
}

/// Codec configuration carried out of band: parameter sets for video, decoder
/// configuration for audio.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamSets {
    /// H.265 VPS NAL units.
    pub vps: Vec<Bytes>,
    /// SPS NAL units (without start code or length prefix).
    pub sps: Vec<Bytes>,
    /// PPS NAL units.
    pub pps: Vec<Bytes>,
    /// Audio decoder configuration (AAC AudioSpecificConfig).
    pub audio_config: Option<Bytes>,
}

/// The tracks of a stream, shared immutably between its sinks and shards. Replaced as a
/// whole when a track's parameters change.
pub type TrackSet = Arc<[Track]>;

/// One access unit of one track.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The track this frame belongs to.
    pub track: TrackId,
    /// Video or audio.
    pub kind: MediaKind,
    /// A frame a decoder can start from (IDR for video; every audio frame).
    pub keyframe: bool,
    /// Decode time in the track clock.
    pub dts: i64,
    /// Presentation time in the track clock (`pts >= dts` with B-frames).
    pub pts: i64,
    /// Payload: AVCC NAL units for video, the raw frame for audio.
    pub data: Bytes,
}

impl Frame {
    /// Whether a viewer that lost frames may resume here: a video keyframe, or any audio
    /// frame of a stream without video (`stream_has_video` false).
    pub fn is_resume_point(&self, stream_has_video: bool) -> bool {
        self.keyframe && (self.kind == MediaKind::Video || !stream_has_video)
    }
}

/// Iterates the NAL units of an AVCC payload (4-byte big-endian length prefixes). Yields
/// zero-copy slices; stops at the first truncated unit.
pub fn avcc_nal_units(data: &Bytes) -> impl Iterator<Item = Bytes> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let rest = data.get(pos..)?;
        let len_bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let start = pos + 4;
        let end = start.checked_add(len)?;
        if end > data.len() {
            return None;
        }
        pos = end;
        Some(data.slice(start..end))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avcc_iterates_units_without_copying() {
        let data = Bytes::from_static(&[0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0, 0, 0, 9, 1]);
        let units: Vec<Bytes> = avcc_nal_units(&data).collect();
        assert_eq!(units.len(), 2);
        assert_eq!(&units[0][..], &[0x67, 0x42]);
        assert_eq!(&units[1][..], &[0x68]);
        // The slice points into the original buffer.
        assert_eq!(units[0].as_ptr(), data[4..].as_ptr());
    }
}
