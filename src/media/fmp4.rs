//! Fragmented MP4 (ISO/IEC 14496-12) for Media Source Extensions, recording and LL-HLS:
//! an init segment (`ftyp` + `moov` with `mvex`) and one fragment (`moof` + `mdat`) per
//! frame. Pure: no I/O, no clock; times come from the frames.
//!
//! The init segment is encoded once, with `mp4-atom`. Fragments are written by hand: their
//! layout is fixed (one track, one sample), and writing them directly keeps the per-frame
//! cost to one output buffer, sized up front, with no other allocation.
//!
//! Time model: the first frame pushed (any track) fixes a common origin, in seconds,
//! [`ORIGIN_MARGIN_SECS`] before it, so that audio slightly older than the first video frame
//! still has a decode time of at least zero. A frame's `tfdt` is its dts minus that origin
//! in its track's clock; frames that would fall before zero are dropped.

use super::aac::AudioSpecificConfig;
use super::h264::AvcConfig;
use super::{Codec, Frame, MediaKind, Track, TrackId};
use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::Encode;
use std::fmt::Write as _;

#[cfg(test)]
mod tests;

/// Seconds between the common time origin and the first frame pushed.
pub const ORIGIN_MARGIN_SECS: i64 = 10;
/// A dts step longer than this many seconds is a jump, not a frame duration.
const MAX_DURATION_SECS: i64 = 10;
/// Opus pre-skip written in `dOps` (the usual encoder delay at 48 kHz).
const OPUS_PRE_SKIP: u16 = 312;
/// Opus input sample rate written in `dOps`.
const OPUS_INPUT_RATE: u32 = 48_000;

/// `sample_flags` of a sync sample: `sample_depends_on` = 2 (does not depend on others).
const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a video frame that is not a keyframe: `sample_depends_on` = 1 and
/// `sample_is_non_sync_sample`.
const FLAGS_NON_SYNC: u32 = 0x0101_0000;
/// `tfhd` flags: default-base-is-moof.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags: data-offset, sample duration, size, flags and composition time offset.
const TRUN_FLAGS: u32 = 0x00_0001 | 0x00_0100 | 0x00_0200 | 0x00_0400 | 0x00_0800;

/// Size of `mfhd`: header, version/flags, sequence number.
const MFHD_SIZE: usize = 8 + 4 + 4;
/// Size of `tfhd`: header, version/flags, track id.
const TFHD_SIZE: usize = 8 + 4 + 4;
/// Size of a version 1 `tfdt`: header, version/flags, 64-bit decode time.
const TFDT_SIZE: usize = 8 + 4 + 8;
/// Size of a one-sample `trun`: header, version/flags, count, data offset, four fields.
const TRUN_SIZE: usize = 8 + 4 + 4 + 4 + 16;
/// Size of `traf`.
const TRAF_SIZE: usize = 8 + TFHD_SIZE + TFDT_SIZE + TRUN_SIZE;
/// Size of `moof`.
pub const MOOF_SIZE: usize = 8 + MFHD_SIZE + TRAF_SIZE;
/// Size of the `mdat` header.
const MDAT_HEADER: usize = 8;
/// Largest sample carried: the `mdat` size must fit its 32-bit field.
const MAX_SAMPLE: usize = u32::MAX as usize - MOOF_SIZE - MDAT_HEADER;

/// Why a stream cannot be muxed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Fmp4Error {
    /// None of the tracks has a codec this muxer carries.
    #[error("no track fMP4 can carry (H.264, H.265, AAC, Opus)")]
    NoTracks,
    /// A carried track lacks its parameters (SPS/PPS, VPS, AudioSpecificConfig).
    #[error("track {track} ({codec}) lacks its {what}")]
    MissingParams {
        /// The track.
        track: u8,
        /// Its codec name.
        codec: &'static str,
        /// What is missing.
        what: &'static str,
    },
    /// A carried track's parameters do not parse.
    #[error("track {track} ({codec}): unusable {what}")]
    BadParams {
        /// The track.
        track: u8,
        /// Its codec name.
        codec: &'static str,
        /// What does not parse.
        what: &'static str,
    },
    /// A carried track has a clock rate of zero.
    #[error("track {track} has a clock rate of zero")]
    ZeroClockRate {
        /// The track.
        track: u8,
    },
    /// The init segment could not be encoded.
    #[error("encoding the init segment: {0}")]
    Encode(#[from] mp4_atom::Error),
}

/// A frame held until the next frame of its track gives its duration.
#[derive(Debug, Clone)]
struct Held {
    /// Decode time relative to the origin, in the track clock (never negative).
    decode_time: u64,
    /// Decode time as pushed, to measure the step to the next frame.
    dts: i64,
    /// `pts - dts`, clamped to 32 bits.
    composition_offset: i32,
    /// `sample_flags`.
    flags: u32,
    /// The sample.
    data: Bytes,
}

/// One carried track.
#[derive(Debug, Clone)]
struct TrackMux {
    /// The stream's track id.
    source: TrackId,
    /// The MP4 track id (1-based).
    mp4_id: u32,
    /// Video or audio.
    kind: MediaKind,
    /// Ticks per second (the MP4 timescale).
    timescale: u32,
    /// The origin in this track's clock, once known.
    origin: Option<i64>,
    /// The last measured duration.
    last_duration: Option<u32>,
    /// Duration when none has been measured.
    default_duration: u32,
    /// The frame waiting for its successor.
    held: Option<Held>,
}

/// The origin: the first frame's dts and the clock it is in.
#[derive(Debug, Clone, Copy)]
struct Origin {
    dts: i64,
    clock_rate: u32,
}

impl Origin {
    /// The origin in a clock of `rate` ticks per second: the first frame's time minus the
    /// margin. Saturates instead of wrapping.
    fn in_clock(self, rate: u32) -> i64 {
        let first = i128::from(self.dts) * i128::from(rate) / i128::from(self.clock_rate);
        let origin = first - i128::from(ORIGIN_MARGIN_SECS) * i128::from(rate);
        origin.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// A fragmented-MP4 muxer for the tracks of one stream: one init segment, then one
/// fragment per frame, in push order.
#[derive(Debug, Clone)]
pub struct Muxer {
    tracks: Vec<TrackMux>,
    codecs: String,
    init: Bytes,
    origin: Option<Origin>,
    /// The next `mfhd` sequence number.
    sequence: u32,
}

impl Muxer {
    /// A muxer for the tracks of `tracks` it can carry: H.264, H.265, AAC, Opus (others, e.g.
    /// G.711 or FLV audio, are left out). Err when no track can be carried or a carried
    /// track lacks its parameters (SPS/PPS, AudioSpecificConfig).
    pub fn new(tracks: &[Track]) -> Result<Muxer, Fmp4Error> {
        let carried: Vec<&Track> = tracks
            .iter()
            .filter(|t| {
                matches!(
                    t.codec,
                    Codec::H264 | Codec::H265 | Codec::Aac | Codec::Opus
                )
            })
            .collect();
        if carried.is_empty() {
            return Err(Fmp4Error::NoTracks);
        }
        let mut muxes = Vec::with_capacity(carried.len());
        let mut traks = Vec::with_capacity(carried.len());
        let mut codecs = String::new();
        for (i, t) in carried.iter().enumerate() {
            if t.clock_rate == 0 {
                return Err(Fmp4Error::ZeroClockRate { track: t.id.0 });
            }
            let mp4_id = i as u32 + 1;
            let (entry, codec) = sample_entry(t)?;
            if !codecs.is_empty() {
                codecs.push(',');
            }
            codecs.push_str(&codec);
            traks.push(trak(t, mp4_id, entry));
            muxes.push(TrackMux {
                source: t.id,
                mp4_id,
                kind: t.kind(),
                timescale: t.clock_rate,
                origin: None,
                last_duration: None,
                default_duration: default_duration(t),
                held: None,
            });
        }
        let init = init_segment(traks, &muxes)?;
        Ok(Muxer {
            tracks: muxes,
            codecs,
            init,
            origin: None,
            sequence: 1,
        })
    }

    /// Whether frames of track `id` go into the output.
    pub fn carries(&self, id: TrackId) -> bool {
        self.tracks.iter().any(|t| t.source == id)
    }

    /// The RFC 6381 `codecs` value for a MIME type, e.g. "avc1.64001f,mp4a.40.2"
    /// (avc1.PPCCLL from the SPS; hvc1.… per ISO 14496-15 Annex E; mp4a.40.<object type>; opus).
    pub fn codecs(&self) -> &str {
        &self.codecs
    }

    /// The init segment: ftyp + moov (with mvex/trex), one trak per carried track.
    pub fn init_segment(&self) -> Bytes {
        self.init.clone()
    }

    /// Takes the next frame (decode order per track). A track's frame is held until the
    /// next frame of the same track arrives (its duration is the difference of the dts);
    /// returns the fragment (moof + mdat, one sample) of the frame it releases, if any,
    /// in one buffer. Frames of tracks not carried return None.
    pub fn push(&mut self, frame: &Frame) -> Option<Bytes> {
        self.push_parts(frame).map(|f| f.to_bytes())
    }

    /// [`Muxer::push`], the fragment in two parts: its boxes and the frame's payload,
    /// shared with the frame (no copy of the media).
    pub fn push_parts(&mut self, frame: &Frame) -> Option<Fragment> {
        let index = self.tracks.iter().position(|t| t.source == frame.track)?;
        if frame.data.is_empty() || frame.data.len() > MAX_SAMPLE {
            return None;
        }
        let origin = *self.origin.get_or_insert(Origin {
            dts: frame.dts,
            clock_rate: self.tracks[index].timescale,
        });
        let track = &mut self.tracks[index];
        let track_origin = *track
            .origin
            .get_or_insert_with(|| origin.in_clock(track.timescale));
        let decode_time = u64::try_from(frame.dts.checked_sub(track_origin)?).ok()?;
        let offset = frame.pts.saturating_sub(frame.dts);
        let held = Held {
            decode_time,
            dts: frame.dts,
            composition_offset: offset.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            flags: if track.kind == MediaKind::Audio || frame.keyframe {
                FLAGS_SYNC
            } else {
                FLAGS_NON_SYNC
            },
            data: frame.data.clone(),
        };
        let previous = track.held.replace(held)?;
        let max = i64::from(track.timescale) * MAX_DURATION_SECS;
        let duration = match frame.dts.checked_sub(previous.dts) {
            Some(d) if d > 0 && d <= max => {
                let d = d as u32;
                track.last_duration = Some(d);
                d
            }
            _ => track.last_duration.unwrap_or(track.default_duration),
        };
        let mp4_id = track.mp4_id;
        Some(self.fragment(mp4_id, &previous, duration))
    }

    /// Releases the held frames (end of stream), with the track's last duration.
    pub fn flush(&mut self) -> Vec<Bytes> {
        self.flush_parts().iter().map(Fragment::to_bytes).collect()
    }

    /// [`Muxer::flush`], each fragment in two parts ([`Muxer::push_parts`]).
    pub fn flush_parts(&mut self) -> Vec<Fragment> {
        let mut out = Vec::new();
        for i in 0..self.tracks.len() {
            let track = &mut self.tracks[i];
            let Some(held) = track.held.take() else {
                continue;
            };
            let duration = track.last_duration.unwrap_or(track.default_duration);
            let mp4_id = track.mp4_id;
            out.push(self.fragment(mp4_id, &held, duration));
        }
        out
    }

    /// Writes `moof` + `mdat` for one sample and advances the sequence number.
    fn fragment(&mut self, mp4_id: u32, s: &Held, duration: u32) -> Fragment {
        let sequence = self.sequence;
        self.sequence = self.sequence.wrapping_add(1).max(1);
        let mut out = BytesMut::with_capacity(MOOF_SIZE + MDAT_HEADER);
        box_header(&mut out, MOOF_SIZE, b"moof");
        box_header(&mut out, MFHD_SIZE, b"mfhd");
        out.put_u32(0); // version 0, flags 0
        out.put_u32(sequence);
        box_header(&mut out, TRAF_SIZE, b"traf");
        box_header(&mut out, TFHD_SIZE, b"tfhd");
        out.put_u32(TFHD_DEFAULT_BASE_IS_MOOF); // version 0
        out.put_u32(mp4_id);
        box_header(&mut out, TFDT_SIZE, b"tfdt");
        out.put_u32(1 << 24); // version 1: 64-bit time
        out.put_u64(s.decode_time);
        box_header(&mut out, TRUN_SIZE, b"trun");
        out.put_u32((1 << 24) | TRUN_FLAGS); // version 1: signed composition offsets
        out.put_u32(1); // sample_count
        out.put_i32((MOOF_SIZE + MDAT_HEADER) as i32); // data_offset from the moof start
        out.put_u32(duration);
        out.put_u32(s.data.len() as u32);
        out.put_u32(s.flags);
        out.put_i32(s.composition_offset);
        box_header(&mut out, MDAT_HEADER + s.data.len(), b"mdat");
        Fragment {
            boxes: out.freeze(),
            payload: s.data.clone(),
        }
    }
}

/// One fragment: `moof` and the `mdat` header, then the sample, which is the frame's
/// payload itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    /// `moof` + the `mdat` header.
    pub boxes: Bytes,
    /// The sample: the `mdat` body.
    pub payload: Bytes,
}

impl Fragment {
    /// Bytes in all.
    pub fn len(&self) -> usize {
        self.boxes.len() + self.payload.len()
    }

    /// Whether the fragment is empty (never: it has its boxes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fragment in one buffer (a copy of the payload).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        out.put_slice(&self.boxes);
        out.put_slice(&self.payload);
        out.freeze()
    }
}

/// Writes a box header (32-bit size, type). `size` is bounded by [`MAX_SAMPLE`] by the callers.
fn box_header(out: &mut BytesMut, size: usize, kind: &[u8; 4]) {
    out.put_u32(size as u32);
    out.put_slice(kind);
}

/// The duration used before one is measured: a frame at the track's rate, or the codec's
/// usual frame length.
fn default_duration(t: &Track) -> u32 {
    let rate = f64::from(t.clock_rate);
    match t.codec {
        Codec::H264 | Codec::H265 => match t.fps {
            Some(fps) if fps.is_finite() && fps >= 1.0 => (rate / fps).round().max(1.0) as u32,
            _ => (t.clock_rate / 30).max(1),
        },
        Codec::Aac => 1024,
        // 20 ms: 960 at 48 kHz.
        _ => (t.clock_rate / 50).max(1),
    }
}

/// The `ftyp` and `moov` boxes.
fn init_segment(traks: Vec<mp4_atom::Trak>, muxes: &[TrackMux]) -> Result<Bytes, Fmp4Error> {
    let ftyp = mp4_atom::Ftyp {
        major_brand: b"isom".into(),
        minor_version: 0x200,
        compatible_brands: vec![b"isom".into(), b"iso6".into(), b"mp41".into()],
    };
    let moov = mp4_atom::Moov {
        mvhd: mp4_atom::Mvhd {
            timescale: 1000,
            rate: mp4_atom::FixedPoint::new(1, 0),
            volume: mp4_atom::FixedPoint::new(1, 0),
            next_track_id: muxes.len() as u32 + 1,
            ..Default::default()
        },
        mvex: Some(mp4_atom::Mvex {
            mehd: None,
            trex: muxes
                .iter()
                .map(|m| mp4_atom::Trex {
                    track_id: m.mp4_id,
                    default_sample_description_index: 1,
                    ..Default::default()
                })
                .collect(),
        }),
        trak: traks,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(1024);
    ftyp.encode(&mut out)?;
    moov.encode(&mut out)?;
    Ok(Bytes::from(out))
}

/// A `trak` for a track with its sample entry.
fn trak(t: &Track, mp4_id: u32, entry: mp4_atom::Codec) -> mp4_atom::Trak {
    let video = t.kind() == MediaKind::Video;
    let (width, height) = (dimension(t.width), dimension(t.height));
    mp4_atom::Trak {
        tkhd: mp4_atom::Tkhd {
            track_id: mp4_id,
            enabled: true,
            in_movie: true,
            alternate_group: u16::from(!video),
            volume: mp4_atom::FixedPoint::new(u8::from(!video), 0),
            width: mp4_atom::FixedPoint::new(width, 0),
            height: mp4_atom::FixedPoint::new(height, 0),
            ..Default::default()
        },
        mdia: mp4_atom::Mdia {
            mdhd: mp4_atom::Mdhd {
                timescale: t.clock_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: mp4_atom::Hdlr {
                handler: if video { b"vide" } else { b"soun" }.into(),
                name: if video {
                    "VideoHandler"
                } else {
                    "SoundHandler"
                }
                .into(),
            },
            minf: mp4_atom::Minf {
                vmhd: video.then(mp4_atom::Vmhd::default),
                smhd: (!video).then(mp4_atom::Smhd::default),
                dinf: mp4_atom::Dinf {
                    dref: mp4_atom::Dref {
                        entries: vec![mp4_atom::DrefEntry::Url(mp4_atom::Url::default())],
                    },
                },
                stbl: mp4_atom::Stbl {
                    stsd: mp4_atom::Stsd {
                        codecs: vec![entry],
                    },
                    stco: Some(mp4_atom::Stco::default()),
                    ..Default::default()
                },
                ..Default::default()
            },
        },
        ..Default::default()
    }
}

/// A width or height for 16-bit fields.
fn dimension(v: Option<u32>) -> u16 {
    v.unwrap_or(0).min(u32::from(u16::MAX)) as u16
}

/// The visual part of a video sample entry.
fn visual(t: &Track) -> mp4_atom::Visual {
    mp4_atom::Visual {
        data_reference_index: 1,
        width: dimension(t.width),
        height: dimension(t.height),
        depth: 0x18,
        ..Default::default()
    }
}

/// The audio part of an audio sample entry.
fn audio(channels: u8, rate: u32) -> mp4_atom::Audio {
    mp4_atom::Audio {
        data_reference_index: 1,
        channel_count: u16::from(channels),
        sample_size: 16,
        sample_rate: mp4_atom::FixedPoint::new(rate.min(u32::from(u16::MAX)) as u16, 0),
    }
}

/// The sample entry of a carried track and its RFC 6381 codec string.
fn sample_entry(t: &Track) -> Result<(mp4_atom::Codec, String), Fmp4Error> {
    let track = t.id.0;
    let codec = t.codec.name();
    let missing = |what| Fmp4Error::MissingParams { track, codec, what };
    let bad = |what| Fmp4Error::BadParams { track, codec, what };
    match t.codec {
        Codec::H264 => {
            if t.params.sps.is_empty() {
                return Err(missing("SPS"));
            }
            if t.params.pps.is_empty() {
                return Err(missing("PPS"));
            }
            let cfg = AvcConfig::from_parameter_sets(&t.params.sps, &t.params.pps)
                .map_err(|_| bad("SPS/PPS"))?;
            let name = format!(
                "avc1.{:02x}{:02x}{:02x}",
                cfg.profile, cfg.compatibility, cfg.level
            );
            let avcc = mp4_atom::Avcc {
                configuration_version: 1,
                avc_profile_indication: cfg.profile,
                profile_compatibility: cfg.compatibility,
                avc_level_indication: cfg.level,
                length_size: 4,
                sequence_parameter_sets: cfg.sps.iter().map(|p| p.to_vec()).collect(),
                picture_parameter_sets: cfg.pps.iter().map(|p| p.to_vec()).collect(),
                ext: None,
            };
            let entry = mp4_atom::Avc1 {
                visual: visual(t),
                avcc,
                ..Default::default()
            };
            Ok((entry.into(), name))
        }
        Codec::H265 => {
            for (sets, what) in [
                (&t.params.vps, "VPS"),
                (&t.params.sps, "SPS"),
                (&t.params.pps, "PPS"),
            ] {
                if sets.is_empty() || sets.iter().any(|s| s.is_empty() || s.len() > 0xFFFF) {
                    return Err(missing(what));
                }
            }
            let sps = t.params.sps.first().ok_or(missing("SPS"))?;
            let info = super::h265::parse_sps(sps).map_err(|_| bad("SPS"))?;
            let (bit_depth_luma_minus8, bit_depth_chroma_minus8) =
                info.bit_depths_minus8.ok_or(bad("SPS"))?;
            let name = hevc_codec_string(&info.general_ptl);
            let array = |nal_unit_type: u8, sets: &[Bytes]| mp4_atom::HvcCArray {
                completeness: true,
                nal_unit_type,
                nalus: sets.iter().map(|p| p.to_vec()).collect(),
            };
            let hvcc = mp4_atom::Hvcc {
                configuration_version: 1,
                general_profile_space: info.general_ptl[0] >> 6,
                general_tier_flag: info.general_ptl[0] & 0x20 != 0,
                general_profile_idc: info.general_ptl[0] & 0x1F,
                general_profile_compatibility_flags: [
                    info.general_ptl[1],
                    info.general_ptl[2],
                    info.general_ptl[3],
                    info.general_ptl[4],
                ],
                general_constraint_indicator_flags: [
                    info.general_ptl[5],
                    info.general_ptl[6],
                    info.general_ptl[7],
                    info.general_ptl[8],
                    info.general_ptl[9],
                    info.general_ptl[10],
                ],
                general_level_idc: info.general_ptl[11],
                min_spatial_segmentation_idc: 0,
                parallelism_type: 0,
                chroma_format_idc: info.chroma_format_idc,
                bit_depth_luma_minus8,
                bit_depth_chroma_minus8,
                avg_frame_rate: 0,
                constant_frame_rate: 0,
                num_temporal_layers: info.max_sub_layers,
                temporal_id_nested: info.temporal_id_nesting,
                length_size_minus_one: 3,
                arrays: vec![
                    array(super::h265::nal::VPS, &t.params.vps),
                    array(super::h265::nal::SPS, &t.params.sps),
                    array(super::h265::nal::PPS, &t.params.pps),
                ],
            };
            let entry = mp4_atom::Hvc1 {
                visual: visual(t),
                hvcc,
                ..Default::default()
            };
            Ok((entry.into(), name))
        }
        Codec::Aac => {
            let config = t
                .params
                .audio_config
                .as_ref()
                .ok_or(missing("AudioSpecificConfig"))?;
            let asc = AudioSpecificConfig::parse(config).map_err(|_| bad("AudioSpecificConfig"))?;
            let channels = match asc.channels {
                0 => t.channels.unwrap_or(2),
                n => n,
            };
            let esds = mp4_atom::Esds {
                es_desc: mp4_atom::esds::EsDescriptor {
                    es_id: 0,
                    dec_config: mp4_atom::esds::DecoderConfig {
                        object_type_indication: 0x40, // MPEG-4 audio
                        stream_type: 0x05,            // audio stream
                        dec_specific: Some(mp4_atom::esds::DecoderSpecific {
                            raw: config.to_vec(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            };
            let entry = mp4_atom::Mp4a {
                audio: audio(channels, asc.sample_rate),
                esds,
                btrt: None,
                taic: None,
            };
            Ok((entry.into(), format!("mp4a.40.{}", asc.object_type)))
        }
        Codec::Opus => {
            // Channel mapping family 0 carries mono or stereo only.
            let channels = t.channels.unwrap_or(2).clamp(1, 2);
            let entry = mp4_atom::Opus {
                audio: audio(channels, OPUS_INPUT_RATE),
                dops: mp4_atom::Dops {
                    output_channel_count: channels,
                    pre_skip: OPUS_PRE_SKIP,
                    input_sample_rate: OPUS_INPUT_RATE,
                    output_gain: 0,
                    channel_mapping: None,
                },
                btrt: None,
            };
            Ok((entry.into(), "opus".to_string()))
        }
        _ => Err(Fmp4Error::NoTracks),
    }
}

/// The codec string of ISO/IEC 14496-15 Annex E, e.g. `hvc1.1.6.L93.B0`, from the 12
/// general `profile_tier_level` bytes of the SPS.
fn hevc_codec_string(ptl: &[u8; 12]) -> String {
    let mut s = String::from("hvc1.");
    let space = ptl[0] >> 6;
    if space > 0 {
        s.push(char::from(b'A' + space - 1));
    }
    let _ = write!(s, "{}", ptl[0] & 0x1F);
    let compat = u32::from_be_bytes([ptl[1], ptl[2], ptl[3], ptl[4]]);
    let _ = write!(s, ".{:X}", compat.reverse_bits());
    let tier = if ptl[0] & 0x20 != 0 { 'H' } else { 'L' };
    let _ = write!(s, ".{tier}{}", ptl[11]);
    let constraints = &ptl[5..11];
    let used = constraints
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |i| i + 1);
    for b in &constraints[..used] {
        let _ = write!(s, ".{b:X}");
    }
    s
}
