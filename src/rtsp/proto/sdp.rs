//! The session description a camera answers DESCRIBE with, mapped to corecast tracks.
//!
//! The text is read by [`crate::sdp`] (leniently and within bounds); this module keeps
//! what a client needs to play: the session-level `a=control`, and per media section the
//! media type, port, protocol, first payload type, its `a=rtpmap` and `a=fmtp`, and
//! `a=control`. [`Media::track`] turns a section into a [`Track`] and the
//! [`DepackConfig`] of its RTP payload, or says why corecast skips it (ONVIF metadata,
//! MJPEG, ...) so the stream can go on with the other tracks.

use crate::media::aac::AudioSpecificConfig;
use crate::media::h264::{self, parse_sps};
use crate::media::h265;
use crate::media::{Codec, Track, TrackId};
use crate::rtp::depack::DepackConfig;
use crate::sdp::{self, MediaSection};
use bytes::Bytes;

pub use crate::sdp::{MAX_LINE, MAX_MEDIA, RtpMap};

/// Most parameter sets kept from one `sprop-*` list.
const MAX_PARAM_SETS: usize = 16;
/// Longest decoded parameter set or AAC config.
const MAX_PARAM_SET_LEN: usize = 1024;

/// Why a DESCRIBE body cannot be read as SDP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// No body at all.
    #[error("camera's DESCRIBE answer has an empty session description")]
    Empty,
    /// The first line is not `v=`.
    #[error("camera's DESCRIBE answer is not SDP (it starts with {0:?})")]
    NotSdp(String),
    /// A line over [`MAX_LINE`] bytes.
    #[error("camera's SDP line {line} is longer than {MAX_LINE} bytes")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
    },
    /// More than [`MAX_MEDIA`] `m=` sections.
    #[error("camera's SDP has more than {MAX_MEDIA} media sections")]
    TooManyMedia,
}

impl From<sdp::SdpError> for SdpError {
    fn from(e: sdp::SdpError) -> Self {
        match e {
            sdp::SdpError::Empty => SdpError::Empty,
            sdp::SdpError::NotSdp(start) => SdpError::NotSdp(start),
            sdp::SdpError::LineTooLong { line } => SdpError::LineTooLong { line },
            sdp::SdpError::TooManyMedia => SdpError::TooManyMedia,
        }
    }
}

/// A parsed session description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sdp {
    /// Session-level `a=control` (aggregate control URL, `*`, or relative).
    pub control: Option<String>,
    /// The media sections in order.
    pub media: Vec<Media>,
}

/// One `m=` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Media {
    /// Media type: `video`, `audio`, `application`, ...
    pub media: String,
    /// Port (0 in most RTSP descriptions; the transport is negotiated by SETUP).
    pub port: u16,
    /// Transport protocol, `RTP/AVP` for cameras.
    pub protocol: String,
    /// The first payload type of the `m=` line, if it is a number below 128.
    pub payload_type: Option<u8>,
    /// `a=rtpmap` of that payload type (the first one that parses).
    pub rtpmap: Option<RtpMap>,
    /// `a=fmtp` parameters of that payload type (the first non-empty list), keys
    /// lower-cased, values trimmed.
    pub fmtp: Vec<(String, String)>,
    /// Media-level `a=control`.
    pub control: Option<String>,
}

impl Sdp {
    /// Parses a DESCRIBE body. Bytes that are not UTF-8 (a camera name in a local
    /// encoding) are replaced, not refused.
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        let session = sdp::parse(body)?;
        Ok(Sdp {
            control: session.control,
            media: session.media.into_iter().map(Media::from_section).collect(),
        })
    }
}

/// A track the camera offers that corecast can play.
#[derive(Debug, Clone, PartialEq)]
pub struct SetupTrack {
    /// Position of its media section in the SDP.
    pub index: usize,
    /// The track; its id is its position among the usable tracks.
    pub track: Track,
    /// How its RTP payloads are read.
    pub depack: DepackConfig,
    /// Absolute control URL (`SETUP` goes there).
    pub control: String,
    /// RTP payload type.
    pub payload_type: u8,
}

impl Sdp {
    /// Maps every media section: the usable ones as tracks with ids in order and control
    /// URLs resolved against `base` (see [`url::join`](super::url::join)), and why each
    /// other one is skipped.
    pub fn setup_tracks(&self, base: &str) -> (Vec<SetupTrack>, Vec<String>) {
        let (mut tracks, mut skipped) = (Vec::new(), Vec::new());
        for (index, m) in self.media.iter().enumerate() {
            let id = TrackId(u8::try_from(tracks.len()).unwrap_or(u8::MAX));
            match m.track(id) {
                Ok((track, depack)) => tracks.push(SetupTrack {
                    index,
                    track,
                    depack,
                    control: super::url::join(base, m.control.as_deref().unwrap_or("")),
                    payload_type: m.payload_type.unwrap_or_default(),
                }),
                Err(why) => skipped.push(why),
            }
        }
        (tracks, skipped)
    }
}

impl Media {
    /// Keeps what a camera track needs of a section: its first payload type (below
    /// 128), that type's first `a=rtpmap` that parses and first non-empty `a=fmtp`.
    fn from_section(section: MediaSection) -> Media {
        let payload_type = section
            .formats
            .first()
            .and_then(|p| p.parse().ok())
            .filter(|p| *p < 128);
        let rtpmap = payload_type.and_then(|pt| section.rtpmap(pt).cloned());
        let fmtp = payload_type
            .and_then(|pt| {
                section
                    .fmtps
                    .iter()
                    .find(|f| f.payload_type == pt && !f.params.is_empty())
            })
            .map(|f| f.params.clone())
            .unwrap_or_default();
        Media {
            media: section.media,
            port: section.port,
            protocol: section.protocol,
            payload_type,
            rtpmap,
            fmtp,
            control: section.control,
        }
    }

    /// The value of `fmtp` parameter `key` (lower-case).
    pub fn fmtp(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The payload's encoding: the `a=rtpmap`, else the static RTP/AVP assignment of the
    /// payload type (RFC 3551 table 4 and 5).
    pub fn encoding(&self) -> Option<RtpMap> {
        match &self.rtpmap {
            Some(m) => Some(m.clone()),
            None => sdp::static_rtpmap(self.payload_type?),
        }
    }

    /// Maps the section to a track with id `id` and the configuration of its
    /// depacketizer; `Err` says, for the operator, why corecast skips it
    /// (`application/vnd.onvif.metadata: not a media codec`).
    pub fn track(&self, id: TrackId) -> Result<(Track, DepackConfig), String> {
        let kind = if self.media.is_empty() {
            "media"
        } else {
            self.media.as_str()
        };
        let Some(pt) = self.payload_type else {
            return Err(format!("{kind}: m= line without a payload type"));
        };
        let Some(map) = self.encoding() else {
            return Err(format!("{kind}: payload type {pt} without a=rtpmap"));
        };
        let label = format!("{kind}/{}", map.encoding);
        if !self.protocol.to_ascii_uppercase().starts_with("RTP/") {
            return Err(format!("{label}: transport {:?} is not RTP", self.protocol));
        }
        let video = kind.eq_ignore_ascii_case("video");
        let audio = kind.eq_ignore_ascii_case("audio");
        if !video && !audio {
            return Err(format!("{label}: not a media codec"));
        }
        if map.clock_rate == 0 {
            return Err(format!("{label}: clock rate 0"));
        }
        let enc = map.encoding.to_ascii_uppercase();
        match enc.as_str() {
            "H264" if video => Ok((self.h264_track(id, &map), DepackConfig::H264)),
            "H265" if video => Ok((self.h265_track(id, &map), DepackConfig::H265)),
            "MPEG4-GENERIC" if audio => self.aac_track(id, &map, &label),
            "OPUS" if audio => {
                let mut t = Track::new(id, Codec::Opus, map.clock_rate);
                t.channels = Some(map.channels.unwrap_or(2));
                Ok((t, DepackConfig::Opus))
            }
            "PCMA" | "PCMU" if audio => {
                let pcma = enc == "PCMA";
                let codec = if pcma { Codec::Pcma } else { Codec::Pcmu };
                let mut t = Track::new(id, codec, map.clock_rate);
                t.channels = Some(map.channels.unwrap_or(1));
                let depack = if pcma {
                    DepackConfig::Pcma
                } else {
                    DepackConfig::Pcmu
                };
                Ok((t, depack))
            }
            _ => Err(format!("{label}: codec not supported")),
        }
    }

    /// H.264 (RFC 6184): parameter sets from `sprop-parameter-sets` when its SPS parses
    /// (otherwise the depacketizer finds them in band), size and profile from the SPS,
    /// else the profile from `profile-level-id`.
    fn h264_track(&self, id: TrackId, map: &RtpMap) -> Track {
        let mut t = Track::new(id, Codec::H264, map.clock_rate);
        let sets = self
            .fmtp("sprop-parameter-sets")
            .map(decode_param_sets)
            .unwrap_or_default();
        let of_type = |ty| {
            sets.iter()
                .filter(|n| h264::nal_type(n) == Some(ty))
                .cloned()
                .collect::<Vec<Bytes>>()
        };
        let (sps, pps) = (of_type(h264::nal::SPS), of_type(h264::nal::PPS));
        if let Some(parsed) = sps.first().and_then(|s| parse_sps(s).ok()) {
            t.width = Some(parsed.width);
            t.height = Some(parsed.height);
            t.profile = Some(parsed.profile_name().to_string());
            t.fps = parsed.fps;
            t.params.sps = sps;
            t.params.pps = pps;
        } else if let Some(name) = self.fmtp("profile-level-id").and_then(h264_profile_name) {
            t.profile = Some(name.to_string());
        }
        t
    }

    /// H.265 (RFC 7798): `sprop-vps`, `sprop-sps`, `sprop-pps`; size and profile from
    /// the SPS, else the profile from `profile-id`.
    fn h265_track(&self, id: TrackId, map: &RtpMap) -> Track {
        let mut t = Track::new(id, Codec::H265, map.clock_rate);
        let sets = |key, ty| -> Vec<Bytes> {
            self.fmtp(key)
                .map(decode_param_sets)
                .unwrap_or_default()
                .into_iter()
                .filter(|n| h265::nal_type(n) == Some(ty))
                .collect()
        };
        t.params.vps = sets("sprop-vps", h265::nal::VPS);
        t.params.sps = sets("sprop-sps", h265::nal::SPS);
        t.params.pps = sets("sprop-pps", h265::nal::PPS);
        t.profile = match self.fmtp("profile-id") {
            Some("1") => Some("Main".to_string()),
            Some("2") => Some("Main 10".to_string()),
            Some("3") => Some("Main Still Picture".to_string()),
            Some("4") => Some("Range Extensions".to_string()),
            _ => None,
        };
        h265::apply_sps(&mut t);
        t
    }

    /// AAC in `mpeg4-generic` (RFC 3640), modes AAC-hbr and AAC-lbr.
    fn aac_track(
        &self,
        id: TrackId,
        map: &RtpMap,
        label: &str,
    ) -> Result<(Track, DepackConfig), String> {
        let defaults = match self.fmtp("mode") {
            Some(m) if m.eq_ignore_ascii_case("AAC-hbr") => (13, 3, 3),
            Some(m) if m.eq_ignore_ascii_case("AAC-lbr") => (6, 2, 2),
            Some(m) => return Err(format!("{label}: mode={m} not supported")),
            None => return Err(format!("{label}: no mode= (AAC-hbr or AAC-lbr) in a=fmtp")),
        };
        let field =
            |key: &str, default: u8, range: std::ops::RangeInclusive<u8>| match self.fmtp(key) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u8>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| format!("{label}: {key}={v} out of range")),
            };
        let depack = DepackConfig::Aac {
            size_length: field("sizelength", defaults.0, 1..=16)?,
            index_length: field("indexlength", defaults.1, 0..=8)?,
            index_delta_length: field("indexdeltalength", defaults.2, 0..=8)?,
        };
        let mut t = Track::new(id, Codec::Aac, map.clock_rate);
        let config = match self.fmtp("config") {
            Some(hex) => {
                let bytes =
                    decode_hex(hex).ok_or_else(|| format!("{label}: config={hex} is not hex"))?;
                let asc = AudioSpecificConfig::parse(&bytes)
                    .map_err(|e| format!("{label}: config={hex}: {e}"))?;
                t.profile = Some(asc.object_type_name().to_string());
                t.channels = map.channels.or(Some(asc.channels).filter(|c| *c > 0));
                bytes
            }
            None => {
                // RFC 3640 requires config=; without it assume AAC-LC at the rtpmap's rate.
                let channels = map.channels.unwrap_or(1);
                t.profile = Some("LC".to_string());
                t.channels = Some(channels);
                AudioSpecificConfig {
                    object_type: 2,
                    sample_rate: map.clock_rate,
                    channels,
                }
                .to_bytes()
            }
        };
        t.channels = t.channels.or(Some(1));
        t.params.audio_config = Some(Bytes::from(config));
        Ok((t, depack))
    }
}

/// Profile name from an H.264 `profile-level-id` (`42e01f`: profile_idc, constraint
/// flags, level_idc).
fn h264_profile_name(pli: &str) -> Option<&'static str> {
    let b = decode_hex(pli).filter(|b| b.len() == 3)?;
    let (profile, flags) = (*b.first()?, *b.get(1)?);
    Some(match profile {
        66 if flags & 0x40 != 0 => "Constrained Baseline",
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        _ => return None,
    })
}

/// A comma-separated list of base64 NAL units; undecodable or empty entries are dropped.
fn decode_param_sets(list: &str) -> Vec<Bytes> {
    list.split(',')
        .filter_map(|s| base64_decode(s.trim(), MAX_PARAM_SET_LEN))
        .filter(|b| !b.is_empty())
        .take(MAX_PARAM_SETS)
        .map(Bytes::from)
        .collect()
}

/// Hex digits to bytes (even count, at most [`MAX_PARAM_SET_LEN`] bytes).
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim().as_bytes();
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 2 * MAX_PARAM_SET_LEN {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16);
    s.chunks(2)
        .map(|p| match p {
            [hi, lo] => Some((digit(*hi)? * 16 + digit(*lo)?) as u8),
            _ => None,
        })
        .collect()
}

/// Decodes base64 (RFC 4648, standard or URL-safe alphabet, padding optional), at most
/// `max` output bytes; `None` for anything else.
pub fn base64_decode(s: &str, max: usize) -> Option<Vec<u8>> {
    let data = s.trim_end_matches('=').as_bytes();
    if s.len() - data.len() > 2 || data.len() % 4 == 1 || data.len() / 4 * 3 > max {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    for chunk in data.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(bytes.get(1..chunk.len()).unwrap_or_default());
    }
    (out.len() <= max).then_some(out)
}

#[cfg(test)]
mod tests;
