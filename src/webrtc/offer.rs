//! What a viewer's SDP offer can receive, and which of a stream's tracks to send it.
//!
//! Pure: SDP text and tracks in, a [`Selection`] out. str0m negotiates the answer; this
//! module decides beforehand which payload type of the offer each track uses, so the
//! answer carries the browser's own payload type and `fmtp` for the stream's codec (for
//! H.264: packetization-mode 1 and the profile closest to the stream's).

use crate::media::{Codec, MediaKind, Track, TrackId};
use crate::sdp::{self, Direction, MediaSection, SdpError};
use std::fmt;

/// Most `m=` sections read from one offer.
pub use crate::sdp::MAX_MEDIA;
/// Most payload types read per `m=` section.
pub const MAX_CODECS: usize = sdp::MAX_FORMATS;
/// Most `fmtp` parameters kept per payload type.
const MAX_FMTP_PARAMS: usize = 32;
/// Static payload type of G.711 µ-law (RFC 3551).
const STATIC_PCMU: u8 = 0;
/// Static payload type of G.711 A-law (RFC 3551).
const STATIC_PCMA: u8 = 8;

/// Why an offer cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// The text is not an SDP offer (no `v=0`, no `m=` line, a broken `m=` line).
    #[error("not an SDP offer: {0}")]
    Malformed(&'static str),
    /// More `m=` sections than [`MAX_MEDIA`].
    #[error("offer has more than {MAX_MEDIA} media sections")]
    TooManyMedia,
}

/// One payload type the offer lists for a media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCodec {
    /// RTP payload type.
    pub pt: u8,
    /// Encoding name, upper case (`H264`, `OPUS`, `PCMU`).
    pub name: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Audio channels, if given.
    pub channels: Option<u8>,
    /// The `a=fmtp` parameters, in order.
    pub fmtp: Vec<(String, String)>,
    /// Payload type of the RTX stream for this one (`apt=` of an `rtx` entry).
    pub rtx: Option<u8>,
}

impl OfferedCodec {
    /// An `fmtp` parameter's value.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.fmtp
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// H.264 `profile-level-id` as a number (`0x42e01f`).
    pub fn profile_level_id(&self) -> Option<u32> {
        u32::from_str_radix(self.param("profile-level-id")?, 16).ok()
    }
}

/// One `m=` section of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedMedia {
    /// Audio or video; `None` for application (data channel) sections.
    pub kind: Option<MediaKind>,
    /// Whether the offerer wants to receive here (`recvonly` or `sendrecv`).
    pub receives: bool,
    /// Whether the offerer sends here (`sendonly` or `sendrecv`): a WHIP publisher.
    pub sends: bool,
    /// The section's `a=mid`.
    pub mid: Option<String>,
    /// Payload types in `m=` order (RTX, RED, FEC entries excluded).
    pub codecs: Vec<OfferedCodec>,
}

/// Reads the media sections of an SDP offer (with [`crate::sdp`]). Tolerant of unknown
/// lines; bounded in sections and payload types. Errors: no `v=0` first, no `m=` line,
/// an `m=` line without media type, port or protocol, or an audio/video `m=` line with a
/// payload type that is not a number.
pub fn parse_offer(text: &str) -> Result<Vec<OfferedMedia>, OfferError> {
    let session = sdp::parse(text.as_bytes()).map_err(|e| match e {
        SdpError::TooManyMedia => OfferError::TooManyMedia,
        SdpError::LineTooLong { .. } => OfferError::Malformed("line too long"),
        _ => OfferError::Malformed("does not start with v=0"),
    })?;
    if session.version != "0" {
        return Err(OfferError::Malformed("does not start with v=0"));
    }
    if session.media.is_empty() {
        return Err(OfferError::Malformed("no m= line"));
    }
    let session_dir = session.direction.unwrap_or(Direction::SendRecv);
    session
        .media
        .iter()
        .map(|m| offered_media(m, session_dir))
        .collect()
}

/// One section of the offer: its payload types in `m=` order with their `rtpmap` (or the
/// static G.711 assignment) and `fmtp`, RTX entries folded into the types they repair,
/// RED and FEC entries left out.
fn offered_media(m: &MediaSection, session_dir: Direction) -> Result<OfferedMedia, OfferError> {
    let kind = match m.media.as_str() {
        "video" => Some(MediaKind::Video),
        "audio" => Some(MediaKind::Audio),
        "" => return Err(OfferError::Malformed("empty m= line")),
        _ => None,
    };
    if m.protocol.is_empty() {
        return Err(OfferError::Malformed("short m= line"));
    }
    let pts = if kind.is_some() {
        m.formats
            .iter()
            .map(|p| p.parse::<u8>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| OfferError::Malformed("bad payload type in m= line"))?
    } else {
        Vec::new()
    };
    let mut codecs: Vec<OfferedCodec> = Vec::new();
    let mut rtx: Vec<(u8, u8)> = Vec::new();
    for pt in pts {
        // Browsers map every type; the static fallback covers the G.711 types a minimal
        // offer may leave unmapped.
        let map = m
            .rtpmap(pt)
            .cloned()
            .or_else(|| sdp::static_rtpmap(pt).filter(|_| matches!(pt, STATIC_PCMU | STATIC_PCMA)));
        let Some(map) = map else {
            continue;
        };
        let name = map.encoding.to_ascii_uppercase();
        let fmtp: Vec<(String, String)> = m
            .fmtp(pt)
            .map(|f| f.params.iter().take(MAX_FMTP_PARAMS).cloned().collect())
            .unwrap_or_default();
        if name == "RTX" {
            if let Some(apt) = fmtp
                .iter()
                .find(|(k, _)| k == "apt")
                .and_then(|(_, v)| v.parse().ok())
            {
                rtx.push((pt, apt));
            }
            continue;
        }
        if matches!(name.as_str(), "RED" | "ULPFEC" | "FLEXFEC-03") {
            continue;
        }
        codecs.push(OfferedCodec {
            pt,
            name,
            clock_rate: map.clock_rate,
            channels: map.channels,
            fmtp,
            rtx: None,
        });
    }
    for (rtx_pt, apt) in rtx {
        if let Some(c) = codecs.iter_mut().find(|c| c.pt == apt) {
            c.rtx = Some(rtx_pt);
        }
    }
    Ok(OfferedMedia {
        kind,
        receives: m.direction.unwrap_or(session_dir).receives(),
        sends: m.direction.unwrap_or(session_dir).sends(),
        mid: m.mid.clone(),
        codecs,
    })
}

/// One track to send and the offered payload type it goes out with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The stream's track.
    pub track: TrackId,
    /// Its codec.
    pub codec: Codec,
    /// Index of the offer's `m=` section.
    pub media: usize,
    /// The offered payload type and its parameters.
    pub offered: OfferedCodec,
}

/// What to send a viewer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Tracks to send, at most one per media kind.
    pub send: Vec<Choice>,
    /// Audio sections to accept with this payload type although nothing is sent on
    /// them (the stream's audio is not a WebRTC codec, or it has none), so the answer
    /// keeps the offer's shape.
    pub idle_audio: Option<(usize, OfferedCodec)>,
}

/// No track of the stream can be sent to this offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCommonCodec {
    /// The stream's codecs.
    pub stream: Vec<&'static str>,
    /// The codecs the offer can receive.
    pub offered: Vec<String>,
}

impl fmt::Display for NoCommonCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no common codec: the stream has {}; the offer accepts {}",
            if self.stream.is_empty() {
                "no tracks yet".to_string()
            } else {
                self.stream.join(", ")
            },
            if self.offered.is_empty() {
                "nothing".to_string()
            } else {
                self.offered.join(", ")
            }
        )
    }
}

/// The codecs this server can send, as offers name them (what [`select`] may pick).
pub const SENDABLE: [&str; 5] = ["H264", "H265", "OPUS", "PCMU", "PCMA"];

/// Whether some section of the offer receives audio or video in a codec of
/// [`SENDABLE`] (H.264 with packetization-mode 1): without one, no stream can be sent
/// to it, whatever its tracks.
pub fn usable(offer: &[OfferedMedia]) -> bool {
    offer.iter().any(|m| {
        m.receives
            && m.kind.is_some()
            && m.codecs.iter().any(|c| match c.name.as_str() {
                "H264" => c.param("packetization-mode") == Some("1"),
                "OPUS" => c.clock_rate == 48_000,
                n => SENDABLE.contains(&n),
            })
    })
}

/// Picks, for each of the stream's tracks, the offered payload type to send it with.
///
/// Video: H.264 only with packetization-mode 1, preferring the stream's own profile
/// (`profile_idc` from its SPS), then the nearest profile whose decoder decodes it (a
/// High stream goes to High 4:4:4 Predictive when the offer has no High, as Chromium
/// without hardware decoders offers), then High, then the offer's first; H.265 when both sides have it.
/// Audio: Opus, PCMU and PCMA pass through when offered. A stream whose tracks all lack
/// a match is an error naming both sides' codecs.
pub fn select(offer: &[OfferedMedia], tracks: &[Track]) -> Result<Selection, NoCommonCodec> {
    let mut sel = Selection::default();
    let mut used = [false; MAX_MEDIA];
    for track in tracks {
        let found = offer.iter().enumerate().find_map(|(i, m)| {
            if used[i] || !m.receives || m.kind != Some(track.kind()) {
                return None;
            }
            best_codec(m, track).map(|c| (i, c))
        });
        if let Some((i, offered)) = found {
            if sel.send.iter().any(|c| c.codec.kind() == track.kind()) {
                continue;
            }
            used[i] = true;
            sel.send.push(Choice {
                track: track.id,
                codec: track.codec,
                media: i,
                offered,
            });
        }
    }
    if sel.send.is_empty() {
        let mut offered: Vec<String> = Vec::new();
        for m in offer.iter().filter(|m| m.receives) {
            for c in &m.codecs {
                let n = c.name.to_ascii_lowercase();
                if !offered.contains(&n) {
                    offered.push(n);
                }
            }
        }
        return Err(NoCommonCodec {
            stream: tracks.iter().map(|t| t.codec.name()).collect(),
            offered,
        });
    }
    if !sel.send.iter().any(|c| c.codec.kind() == MediaKind::Audio) {
        sel.idle_audio = offer.iter().enumerate().find_map(|(i, m)| {
            if used[i] || !m.receives || m.kind != Some(MediaKind::Audio) {
                return None;
            }
            ["OPUS", "PCMU", "PCMA"].iter().find_map(|want| {
                m.codecs
                    .iter()
                    .find(|c| c.name == *want)
                    .map(|c| (i, c.clone()))
            })
        });
    }
    Ok(sel)
}

/// One section a publisher (WHIP) sends on, and the offered payload type taken there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take {
    /// Index of the offer's `m=` section.
    pub media: usize,
    /// The codec taken.
    pub codec: Codec,
    /// The offered payload type and its parameters.
    pub offered: OfferedCodec,
}

/// Nothing a publisher's offer sends is a codec this server takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NothingTaken {
    /// The codecs the offer sends.
    pub offered: Vec<String>,
}

impl fmt::Display for NothingTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no common codec: this server takes H.264 (packetization-mode=1), H.265, Opus, \
             PCMU or PCMA; the offer sends {}",
            if self.offered.is_empty() {
                "nothing".to_string()
            } else {
                self.offered.join(", ")
            }
        )
    }
}

/// Picks what to take from a publisher's offer: at most one video section (H.264 with
/// packetization-mode 1, constrained baseline or High first, else the first offered;
/// else H.265) and one audio section (Opus, else PCMU, else PCMA), among the sections
/// that send.
pub fn select_ingest(offer: &[OfferedMedia]) -> Result<Vec<Take>, NothingTaken> {
    let mut take: Vec<Take> = Vec::new();
    for (i, m) in offer.iter().enumerate() {
        let Some(kind) = m.kind.filter(|_| m.sends) else {
            continue;
        };
        if take.iter().any(|t| t.codec.kind() == kind) {
            continue;
        }
        let picked = match kind {
            MediaKind::Video => ingest_video(m),
            MediaKind::Audio => ingest_audio(m),
        };
        if let Some((codec, offered)) = picked {
            take.push(Take {
                media: i,
                codec,
                offered,
            });
        }
    }
    if take.is_empty() {
        let mut offered: Vec<String> = Vec::new();
        for c in offer.iter().filter(|m| m.sends).flat_map(|m| &m.codecs) {
            let n = c.name.to_ascii_lowercase();
            if !offered.contains(&n) {
                offered.push(n);
            }
        }
        return Err(NothingTaken { offered });
    }
    Ok(take)
}

fn ingest_video(m: &OfferedMedia) -> Option<(Codec, OfferedCodec)> {
    let h264 = m
        .codecs
        .iter()
        .filter(|c| c.name == "H264" && c.param("packetization-mode") == Some("1"));
    // Constrained baseline (profile_idc 66 with constraint_set1) and High decode
    // everywhere; keep the offer's order among equals.
    let rank = |c: &&OfferedCodec| match c.profile_level_id() {
        Some(p) if p >> 16 == 0x64 || (p >> 16 == 0x42 && p & 0x4000 != 0) => 0,
        _ => 1,
    };
    if let Some(c) = h264.min_by_key(rank) {
        return Some((Codec::H264, c.clone()));
    }
    let c = m.codecs.iter().find(|c| c.name == "H265")?;
    Some((Codec::H265, c.clone()))
}

fn ingest_audio(m: &OfferedMedia) -> Option<(Codec, OfferedCodec)> {
    let find = |name: &str, rate: u32| {
        m.codecs
            .iter()
            .find(|c| c.name == name && c.clock_rate == rate)
    };
    if let Some(c) = find("OPUS", 48_000) {
        return Some((Codec::Opus, c.clone()));
    }
    if let Some(c) = find("PCMU", 8000) {
        return Some((Codec::Pcmu, c.clone()));
    }
    find("PCMA", 8000).map(|c| (Codec::Pcma, c.clone()))
}

/// H.264 `profile_idc` values in the order of what their decoders can decode: a decoder
/// of each profile decodes the bitstreams of every profile before it (ITU-T H.264 A.2:
/// constrained baseline, Main, High, High 10, High 4:2:2, High 4:4:4 Predictive).
const H264_DECODES_PREVIOUS: [u8; 6] = [0x42, 0x4d, 0x64, 0x6e, 0x7a, 0xf4];

/// How well an offered H.264 `profile_idc` suits a stream of `stream` (higher is
/// better): the stream's own profile; else a profile whose decoder decodes it, the
/// nearest first; else any other (a browser's software decoder takes any profile).
fn h264_fit(stream: Option<u8>, offered: Option<u8>) -> u8 {
    const OWN: u8 = u8::MAX;
    match (stream, offered) {
        (Some(s), Some(o)) if s == o => OWN,
        (Some(s), Some(o)) => {
            let pos = |p: u8| H264_DECODES_PREVIOUS.iter().position(|x| *x == p);
            match (pos(s), pos(o)) {
                // Nearer supersets rank higher, all below the stream's own profile.
                (Some(si), Some(oi)) if oi > si => OWN - 1 - (oi - si) as u8,
                _ => u8::from(o == 0x64),
            }
        }
        // Some other or no profile (no SPS yet): High decodes what encoders make.
        (_, Some(0x64)) => 1,
        _ => 0,
    }
}

fn best_codec(m: &OfferedMedia, track: &Track) -> Option<OfferedCodec> {
    let named = |name: &'static str| m.codecs.iter().filter(move |c| c.name == name);
    match track.codec {
        Codec::H264 => {
            let want = track.params.sps.first().and_then(|s| s.get(1)).copied();
            // The best fit, the offer's order among equals: `max_by_key` keeps the last
            // of equals, so the position is reversed. (Not the payload type: browsers
            // number their later entries from the lower dynamic range, 35..63.)
            named("H264")
                .enumerate()
                .filter(|(_, c)| c.param("packetization-mode") == Some("1"))
                .max_by_key(|(i, c)| {
                    let idc = c.profile_level_id().map(|p| (p >> 16) as u8);
                    (h264_fit(want, idc), std::cmp::Reverse(*i))
                })
                .map(|(_, c)| c.clone())
        }
        Codec::H265 => named("H265").next().cloned(),
        Codec::Opus => named("OPUS").find(|c| c.clock_rate == 48_000).cloned(),
        Codec::Pcmu => named("PCMU").find(|c| c.clock_rate == 8000).cloned(),
        Codec::Pcma => named("PCMA").find(|c| c.clock_rate == 8000).cloned(),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    /// The shape of a Chrome recvonly offer (trimmed: ICE/DTLS lines kept short).
    pub(crate) const CHROME_OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
a=msid-semantic: WMS\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101 112 113 116 117 118\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\n\
a=ice-pwd:0123456789abcdef01234567\r\n\
a=fingerprint:sha-256 00:11\r\n\
a=setup:actpass\r\n\
a=mid:0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
a=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
a=rtpmap:103 rtx/90000\r\n\
a=fmtp:103 apt=102\r\n\
a=rtpmap:104 H264/90000\r\n\
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
a=rtpmap:106 H264/90000\r\n\
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:107 rtx/90000\r\n\
a=fmtp:107 apt=106\r\n\
a=rtpmap:108 H264/90000\r\n\
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
a=rtpmap:127 H264/90000\r\n\
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
a=rtpmap:125 rtx/90000\r\n\
a=fmtp:125 apt=127\r\n\
a=rtpmap:112 H264/90000\r\n\
a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
a=rtpmap:113 rtx/90000\r\n\
a=fmtp:113 apt=112\r\n\
a=rtpmap:116 red/90000\r\n\
a=rtpmap:118 ulpfec/90000\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\n\
c=IN IP4 0.0.0.0\r\n\
a=mid:1\r\n\
a=recvonly\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:63 red/48000/2\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:13 CN/8000\r\n\
a=rtpmap:110 telephone-event/48000\r\n\
a=rtpmap:126 telephone-event/8000\r\n";

    fn h264(profile_idc: u8) -> Track {
        let mut t = Track::new(TrackId(0), Codec::H264, 1000);
        t.params.sps = vec![Bytes::from(vec![0x67, profile_idc, 0, 0x1f])];
        t
    }

    #[test]
    fn reads_chrome_offer() {
        let m = parse_offer(CHROME_OFFER).expect("parses");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].kind, Some(MediaKind::Video));
        assert!(m[0].receives);
        let c102 = m[0].codecs.iter().find(|c| c.pt == 102).expect("102");
        assert_eq!(c102.name, "H264");
        assert_eq!(c102.rtx, Some(103));
        assert_eq!(c102.profile_level_id(), Some(0x42001f));
        assert!(
            m[0].codecs
                .iter()
                .all(|c| c.name != "RTX" && c.name != "RED")
        );
        let opus = &m[1].codecs[0];
        assert_eq!(
            (opus.pt, opus.clock_rate, opus.channels),
            (111, 48000, Some(2))
        );
        assert_eq!(opus.param("useinbandfec"), Some("1"));
    }

    #[test]
    fn h264_prefers_the_streams_profile_then_high() {
        let offer = parse_offer(CHROME_OFFER).expect("parses");
        let main = select(&offer, &[h264(0x4d)]).expect("match");
        assert_eq!(main.send[0].offered.pt, 127);
        let high = select(&offer, &[h264(0x64)]).expect("match");
        assert_eq!(high.send[0].offered.pt, 112);
        // Extended profile (88) is not offered: High is the best superset.
        let other = select(&offer, &[h264(88)]).expect("match");
        assert_eq!(other.send[0].offered.pt, 112);
        // Packetization mode 0 entries are never chosen.
        let only_pm0 = CHROME_OFFER.replace("packetization-mode=1", "packetization-mode=0");
        let offer = parse_offer(&only_pm0).expect("parses");
        assert!(select(&offer, &[h264(0x42)]).is_err());
    }

    /// Chromium 148 (Debian, headless, no hardware decoders): a recvonly video and
    /// audio offer as its `createOffer` wrote it. Its H.264 entries with
    /// packetization-mode 1 are 103 (42001f), 109 (42e01f), 117 (4d001f) and 41
    /// (f4001f): no High (64....) at all.
    pub(crate) const CHROMIUM_148_OFFER: &str =
        include_str!("../../tests/data/chromium148_headless_recvonly_offer.sdp");

    /// [`CHROMIUM_148_OFFER`] with a High entry (pt 123, 64001f, RTX 122) after the
    /// others, as a Chromium with a hardware H.264 decoder adds one.
    pub(crate) fn chromium_offer_with_high() -> String {
        CHROMIUM_148_OFFER
            .replacen(" 119 120 121 49\r\n", " 119 120 121 49 123 122\r\n", 1)
            .replacen(
                "a=rtpmap:45 AV1/90000\r\n",
                "a=rtpmap:123 H264/90000\r\n\
                 a=fmtp:123 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
                 a=rtpmap:122 rtx/90000\r\na=fmtp:122 apt=123\r\n\
                 a=rtpmap:45 AV1/90000\r\n",
                1,
            )
    }

    fn h264_pick(sdp: &str, profile_idc: u8) -> (u8, Option<u32>) {
        let offer = parse_offer(sdp).expect("parses");
        let sel = select(&offer, &[h264(profile_idc)]).expect("match");
        let c = &sel.send[0].offered;
        (c.pt, c.profile_level_id())
    }

    #[test]
    fn chromium_offer_high_stream_goes_to_high_else_the_nearest_profile_that_decodes_it() {
        let offer = parse_offer(CHROMIUM_148_OFFER).expect("parses");
        let mode1: Vec<_> = offer[0]
            .codecs
            .iter()
            .filter(|c| c.name == "H264" && c.param("packetization-mode") == Some("1"))
            .map(|c| (c.pt, c.profile_level_id(), c.rtx))
            .collect();
        assert_eq!(
            mode1,
            [
                (103, Some(0x42001f), Some(104)),
                (109, Some(0x42e01f), Some(114)),
                (117, Some(0x4d001f), Some(118)),
                (41, Some(0xf4001f), Some(42)),
            ]
        );
        // No High offered: High 4:4:4 Predictive decodes High; Main or baseline do not.
        assert_eq!(h264_pick(CHROMIUM_148_OFFER, 0x64), (41, Some(0xf4001f)));
        assert_eq!(h264_pick(CHROMIUM_148_OFFER, 0x4d), (117, Some(0x4d001f)));
        assert_eq!(h264_pick(CHROMIUM_148_OFFER, 0x42), (103, Some(0x42001f)));
        // With a High entry, a High stream gets it, though f4001f comes first and has
        // the lower payload type.
        let with_high = chromium_offer_with_high();
        assert_eq!(h264_pick(&with_high, 0x64), (123, Some(0x64001f)));
        let offer = parse_offer(&with_high).expect("parses");
        let sel = select(&offer, &[h264(0x64)]).expect("match");
        assert_eq!(sel.send[0].offered.rtx, Some(122));
        // Main goes to High (nearer) rather than High 4:4:4.
        assert_eq!(h264_pick(&with_high, 0x4d), (117, Some(0x4d001f)));
        let no_main = with_high.replace("profile-level-id=4d001f", "profile-level-id=42001f");
        assert_eq!(h264_pick(&no_main, 0x4d), (123, Some(0x64001f)));
    }

    #[test]
    fn h264_equals_are_taken_in_offer_order_not_by_lowest_payload_type() {
        // A High stream, neither High nor a superset offered: the first entry, although
        // the second has the lower payload type (which the old rule picked).
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 127 35\r\na=mid:0\r\na=recvonly\r\n\
a=rtpmap:127 H264/90000\r\na=fmtp:127 packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtpmap:35 H264/90000\r\na=fmtp:35 packetization-mode=1;profile-level-id=42001f\r\n";
        assert_eq!(h264_pick(sdp, 0x64), (127, Some(0x42e01f)));
        assert_eq!(h264_fit(Some(0x64), Some(0x64)), u8::MAX);
        assert!(h264_fit(Some(0x64), Some(0x6e)) > h264_fit(Some(0x64), Some(0xf4)));
        assert!(h264_fit(Some(0x64), Some(0xf4)) > h264_fit(Some(0x64), Some(0x4d)));
        assert_eq!(h264_fit(None, Some(0x64)), 1);
        assert_eq!(h264_fit(None, Some(0x42)), 0);
    }

    #[test]
    fn audio_pass_through_and_idle_audio() {
        let offer = parse_offer(CHROME_OFFER).expect("parses");
        let pcma = Track::new(TrackId(1), Codec::Pcma, 8000);
        let s = select(&offer, &[h264(0x4d), pcma]).expect("match");
        assert_eq!(s.send.len(), 2);
        assert_eq!((s.send[1].offered.pt, s.send[1].media), (8, 1));
        assert_eq!(s.idle_audio, None);
        // AAC cannot go to a browser: video only, the audio section kept idle on Opus.
        let aac = Track::new(TrackId(1), Codec::Aac, 44100);
        let s = select(&offer, &[h264(0x4d), aac]).expect("match");
        assert_eq!(s.send.len(), 1);
        assert_eq!(
            s.idle_audio.as_ref().map(|(i, c)| (*i, c.pt)),
            Some((1, 111))
        );
    }

    #[test]
    fn no_common_codec_names_both_sides() {
        let vp8_only =
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n";
        let offer = parse_offer(vp8_only).expect("parses");
        let aac = Track::new(TrackId(1), Codec::Aac, 44100);
        let e = select(&offer, &[h264(0x4d), aac]).expect_err("no match");
        assert_eq!(
            e.to_string(),
            "no common codec: the stream has h264, aac; the offer accepts vp8"
        );
    }

    #[test]
    fn sendonly_sections_are_not_used() {
        let sdp = CHROME_OFFER.replace("a=recvonly", "a=sendonly");
        let offer = parse_offer(&sdp).expect("parses");
        assert!(select(&offer, &[h264(0x4d)]).is_err());
    }

    #[test]
    fn usable_offers_receive_a_sendable_codec() {
        let sec = |m: &str, dir: &str, map: &str| {
            format!(
                "v=0\r\nm={m} 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na={dir}\r\na=rtpmap:96 {map}\r\n"
            )
        };
        let ok = |sdp: String| usable(&parse_offer(&sdp).expect("parses"));
        assert!(ok(sec("video", "recvonly", "H265/90000")));
        assert!(ok(sec("audio", "sendrecv", "opus/48000/2")));
        assert!(!ok(sec("video", "sendonly", "H265/90000")), "sends only");
        assert!(
            !ok(sec("video", "recvonly", "VP8/90000")),
            "no codec of ours"
        );
        assert!(
            !ok(sec("video", "recvonly", "H264/90000")),
            "H.264 needs mode 1"
        );
        let h264 = sec("video", "recvonly", "H264/90000") + "a=fmtp:96 packetization-mode=1\r\n";
        assert!(ok(h264));
        let data = "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n";
        assert!(!ok(data.to_string()), "a data channel only");
    }

    #[test]
    fn malformed_offers() {
        assert!(parse_offer("").is_err());
        assert!(parse_offer("hello").is_err());
        assert!(parse_offer("v=0\r\ns=-\r\n").is_err());
        assert!(parse_offer("v=0\r\nm=video\r\n").is_err());
        assert!(parse_offer("v=0\r\nm=video 9 RTP/AVP x\r\n").is_err());
        let many = format!("v=0\r\n{}", "m=audio 9 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
        assert_eq!(parse_offer(&many), Err(OfferError::TooManyMedia));
        // Odd but harmless lines are ignored.
        let odd = "v=0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:zz\r\na=fmtp:\r\na=rtpmap:0 PCMU\r\n";
        let m = parse_offer(odd).expect("parses");
        assert_eq!(m[0].codecs[0].name, "PCMU");
        assert_eq!(
            parse_offer("v=1\r\nm=audio 9 RTP/AVP 0\r\n").err(),
            Some(OfferError::Malformed("does not start with v=0"))
        );
        let long = format!(
            "v=0\r\nm=audio 9 RTP/AVP 0\r\na={}\r\n",
            "x".repeat(sdp::MAX_LINE)
        );
        assert_eq!(
            parse_offer(&long),
            Err(OfferError::Malformed("line too long"))
        );
    }

    #[test]
    fn session_direction_static_types_and_data_channels() {
        // A session-level direction is every section's default; a section's own wins.
        let sdp = "v=0\r\na=sendonly\r\nm=audio 9 RTP/AVP 0 8 9\r\nm=audio 9 RTP/AVP 0\r\na=recvonly\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:data\r\n";
        let m = parse_offer(sdp).expect("parses");
        assert_eq!(m.len(), 3);
        assert!(!m[0].receives && m[1].receives);
        // Unmapped static types: only G.711 is assumed.
        let names: Vec<_> = m[0]
            .codecs
            .iter()
            .map(|c| (c.pt, c.name.as_str()))
            .collect();
        assert_eq!(names, [(0, "PCMU"), (8, "PCMA")]);
        assert_eq!((m[2].kind, m[2].mid.as_deref()), (None, Some("data")));
        assert!(m[2].codecs.is_empty());
    }

    /// The Chrome offer turned into a publisher's (sendonly).
    fn publisher_offer() -> Vec<OfferedMedia> {
        parse_offer(&CHROME_OFFER.replace("a=recvonly", "a=sendonly")).expect("parses")
    }

    #[test]
    fn a_publishers_offer_is_taken_h264_constrained_baseline_and_opus() {
        let m = publisher_offer();
        assert!(m.iter().all(|m| m.sends && !m.receives));
        let take = select_ingest(&m).expect("something taken");
        let picked: Vec<_> = take
            .iter()
            .map(|t| (t.media, t.codec, t.offered.pt))
            .collect();
        // 102 (42001f, baseline without constraint_set1) comes first in the offer, but
        // 106 (42e01f, constrained baseline) is preferred; packetization-mode 0 never.
        assert_eq!(picked, [(0, Codec::H264, 106), (1, Codec::Opus, 111)]);
        // Nothing is taken from sections that do not send.
        assert!(select_ingest(&parse_offer(CHROME_OFFER).expect("parses")).is_err());
    }

    #[test]
    fn a_publishers_other_codecs_and_what_is_refused() {
        let only = |video: &str, audio: &str| {
            format!(
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:v\r\na=sendonly\r\n{video}\
                 m=audio 9 UDP/TLS/RTP/SAVPF 0 8 9\r\na=mid:a\r\na=sendonly\r\n{audio}"
            )
        };
        // H.265 when there is no H.264 with packetization-mode 1; PCMU before PCMA.
        let sdp = only(
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=0\r\na=rtpmap:97 H265/90000\r\n",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
        );
        let take = select_ingest(&parse_offer(&sdp).expect("parses")).expect("taken");
        let picked: Vec<_> = take.iter().map(|t| (t.codec, t.offered.pt)).collect();
        assert_eq!(picked, [(Codec::H265, 97), (Codec::Pcmu, 0)]);
        // VP8 and G.722 only: nothing, and the error names what the offer sends.
        let sdp = only(
            "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 VP9/90000\r\n",
            "a=rtpmap:9 G722/8000\r\n",
        )
        .replace("0 8 9", "9");
        let e = select_ingest(&parse_offer(&sdp).expect("parses")).expect_err("nothing taken");
        assert_eq!(e.offered, ["vp8", "vp9", "g722"]);
        assert!(e.to_string().contains("H.264") && e.to_string().contains("vp8, vp9, g722"));
    }
}
