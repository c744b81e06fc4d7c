//! H.264 / AVC helpers: RBSP bit reading, SPS parsing and the AVC decoder configuration
//! record (ISO/IEC 14496-15) carried by FLV, RTMP and MP4.

use super::bits::{BitError, BitReader};
use super::{Track, avcc_nal_units};
use bytes::{BufMut, Bytes, BytesMut};

/// H.264 NAL unit types (ITU-T H.264 table 7-1), and the RTP packet types of RFC 6184
/// (§5.2) that share the type field of the NAL unit header.
pub mod nal {
    /// The type bits of the NAL unit header byte.
    pub const TYPE_MASK: u8 = 0x1F;
    /// Coded slice of an IDR picture.
    pub const IDR: u8 = 5;
    /// Supplemental enhancement information.
    pub const SEI: u8 = 6;
    /// Sequence parameter set.
    pub const SPS: u8 = 7;
    /// Picture parameter set.
    pub const PPS: u8 = 8;
    /// Access unit delimiter.
    pub const AUD: u8 = 9;
    /// Filler data.
    pub const FILLER: u8 = 12;
    /// Last type an RTP single NAL unit packet carries (1..=23).
    pub const LAST_SINGLE: u8 = 23;
    /// RTP single-time aggregation packet, type A.
    pub const STAP_A: u8 = 24;
    /// RTP single-time aggregation packet, type B.
    pub const STAP_B: u8 = 25;
    /// RTP multi-time aggregation packet, 16-bit offsets.
    pub const MTAP16: u8 = 26;
    /// RTP multi-time aggregation packet, 24-bit offsets.
    pub const MTAP24: u8 = 27;
    /// RTP fragmentation unit, type A.
    pub const FU_A: u8 = 28;
    /// RTP fragmentation unit, type B.
    pub const FU_B: u8 = 29;
}

/// Only this many bytes of an SPS NAL unit are examined; everything `parse_sps` reads
/// (up to the end of the VUI) fits well within it.
const MAX_SPS_PARSE_LEN: usize = 0x1000;
/// Upper bound on the picture width/height in macroblocks (65536 pixels).
const MAX_DIMENSION_MBS: u32 = 0x1000;
/// Upper bound on `num_ref_frames_in_pic_order_cnt_cycle` (H.264 7.4.2.1.1).
const MAX_POC_CYCLE: u32 = 0xFF;
/// Maximum number of SPS in an AVC decoder configuration record (5-bit count).
const MAX_CONFIG_SPS: usize = 0x1F;
/// Maximum number of PPS in an AVC decoder configuration record (8-bit count).
const MAX_CONFIG_PPS: usize = 0xFF;

/// Errors from H.264 parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum H264Error {
    /// The input ended before the structure was complete.
    #[error("truncated H.264 data")]
    Truncated,
    /// An Exp-Golomb code had more than 31 leading zero bits.
    #[error("Exp-Golomb code too long")]
    ExpGolombTooLong,
    /// The NAL unit is not of the expected type.
    #[error("unexpected NAL unit type {0}")]
    UnexpectedNalType(u8),
    /// A syntax element is outside its allowed range.
    #[error("invalid value {value} for {field}")]
    InvalidField {
        /// Name of the syntax element.
        field: &'static str,
        /// The value read.
        value: u64,
    },
    /// The cropping window is larger than the coded picture.
    #[error("cropping window exceeds the coded picture")]
    BadCrop,
    /// The AVC decoder configuration record has an unsupported version.
    #[error("unsupported AVC configuration version {0}")]
    UnsupportedVersion(u8),
    /// No SPS is available.
    #[error("no sequence parameter set")]
    NoSps,
    /// Too many parameter sets or one too long for a configuration record.
    #[error("parameter sets do not fit an AVC configuration record")]
    TooManyParameterSets,
}

/// The NAL unit type (low 5 bits of the header byte), or `None` for an empty unit.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & nal::TYPE_MASK)
}

/// Removes emulation-prevention bytes: every `03` that follows `00 00` is dropped.
pub fn nal_to_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

impl From<BitError> for H264Error {
    fn from(e: BitError) -> Self {
        match e {
            BitError::Truncated => H264Error::Truncated,
            BitError::ExpGolombTooLong => H264Error::ExpGolombTooLong,
            BitError::OutOfRange { field, value } => H264Error::InvalidField { field, value },
        }
    }
}

/// The fields of a sequence parameter set that describe the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Sps {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// The byte of `constraint_set0_flag` (0x80) .. `constraint_set5_flag` (0x04).
    pub constraint_flags: u8,
    /// `level_idc` (level × 10).
    pub level_idc: u8,
    /// `seq_parameter_set_id`.
    pub id: u8,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// `separate_colour_plane_flag`.
    pub separate_colour_plane: bool,
    /// Luma bit depth.
    pub bit_depth_luma: u8,
    /// Chroma bit depth.
    pub bit_depth_chroma: u8,
    /// `log2_max_frame_num_minus4 + 4`.
    pub log2_max_frame_num: u8,
    /// `pic_order_cnt_type` (0, 1 or 2).
    pub pic_order_cnt_type: u8,
    /// `max_num_ref_frames`.
    pub max_num_ref_frames: u32,
    /// `frame_mbs_only_flag`: false for interlaced streams.
    pub frame_mbs_only: bool,
    /// Coded width in pixels, before cropping.
    pub coded_width: u32,
    /// Coded height in pixels, before cropping.
    pub coded_height: u32,
    /// Displayed width in pixels.
    pub width: u32,
    /// Displayed height in pixels.
    pub height: u32,
    /// Frame rate from the VUI timing info, `time_scale / (2 * num_units_in_tick)`.
    pub fps: Option<f64>,
    /// `max_num_reorder_frames` of the VUI's bitstream restriction, when the encoder wrote
    /// it (x264 does): more than 0 means frames come out of decode order (B-frames).
    pub max_num_reorder_frames: Option<u32>,
}

impl Sps {
    /// Human-readable profile name (`Constrained Baseline`, `High`, ...).
    pub fn profile_name(&self) -> &'static str {
        let set1 = self.constraint_flags & 0x40 != 0;
        let set3 = self.constraint_flags & 0x10 != 0;
        let set4 = self.constraint_flags & 0x08 != 0;
        let set5 = self.constraint_flags & 0x04 != 0;
        match self.profile_idc {
            66 if set1 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 if set4 && set5 => "Constrained High",
            100 if set4 => "Progressive High",
            100 => "High",
            110 if set3 => "High 10 Intra",
            110 => "High 10",
            122 if set3 => "High 4:2:2 Intra",
            122 => "High 4:2:2",
            244 if set3 => "High 4:4:4 Intra",
            244 => "High 4:4:4 Predictive",
            44 => "CAVLC 4:4:4 Intra",
            83 => "Scalable Baseline",
            86 if set3 => "Scalable High Intra",
            86 => "Scalable High",
            118 => "Multiview High",
            128 => "Stereo High",
            134 => "MFC High",
            135 => "MFC Depth High",
            138 => "Multiview Depth High",
            139 => "Enhanced Multiview Depth High",
            _ => "Unknown",
        }
    }
}

/// Profiles whose SPS carries chroma format, bit depth and scaling matrices.
fn is_high_profile(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Reads (and discards) one `scaling_list()` of `size` entries.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), H264Error> {
    let mut last = 8i32;
    let mut next = 8i32;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(H264Error::InvalidField {
                    field: "delta_scale",
                    value: u64::from(delta.unsigned_abs()),
                });
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Parses an SPS NAL unit (including its 1-byte NAL header, with emulation-prevention
/// bytes). A truncated or malformed VUI leaves `fps` and `max_num_reorder_frames` unset
/// (whatever was read before the fault is kept) rather than failing, as decoders tolerate
/// it.
pub fn parse_sps(nal: &[u8]) -> Result<Sps, H264Error> {
    let ty = nal_type(nal).ok_or(H264Error::Truncated)?;
    if ty != nal::SPS {
        return Err(H264Error::UnexpectedNalType(ty));
    }
    let body = nal.get(1..).unwrap_or_default();
    let rbsp = nal_to_rbsp(body.get(..MAX_SPS_PARSE_LEN).unwrap_or(body));
    let mut r = BitReader::new(&rbsp);

    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let id = r.ue_max("seq_parameter_set_id", 31)? as u8;

    let chroma = if is_high_profile(profile_idc) {
        read_chroma_format(&mut r)?
    } else {
        ChromaFormat::default()
    };
    let log2_max_frame_num = 4 + r.ue_max("log2_max_frame_num_minus4", 12)? as u8;
    let pic_order_cnt_type = read_pic_order_cnt(&mut r)?;
    let max_num_ref_frames = r.ue()?;
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue_max("pic_width_in_mbs_minus1", MAX_DIMENSION_MBS - 1)? + 1;
    let height_map_units = r.ue_max("pic_height_in_map_units_minus1", MAX_DIMENSION_MBS - 1)? + 1;
    let frame_mbs_only = r.flag()?;
    if !frame_mbs_only {
        r.skip(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip(1)?; // direct_8x8_inference_flag

    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let coded_width = width_mbs * 16;
    let coded_height = height_map_units * 16 * field_factor;
    let (width, height) = if r.flag()? {
        read_crop(&mut r, (coded_width, coded_height), &chroma, field_factor)?
    } else {
        (coded_width, coded_height)
    };

    let mut vui = Vui::default();
    if r.flag()? {
        // Errors past the timing info leave what was read.
        let _ = read_vui(&mut r, &mut vui);
    }

    Ok(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        id,
        chroma_format_idc: chroma.idc,
        separate_colour_plane: chroma.separate_colour_plane,
        bit_depth_luma: chroma.bit_depth_luma,
        bit_depth_chroma: chroma.bit_depth_chroma,
        log2_max_frame_num,
        pic_order_cnt_type,
        max_num_ref_frames,
        frame_mbs_only,
        coded_width,
        coded_height,
        width,
        height,
        fps: vui.fps,
        max_num_reorder_frames: vui.max_num_reorder_frames,
    })
}

/// The chroma format and bit depths of an SPS (H.264 7.3.2.1.1); the defaults are
/// those of profiles that do not code them (4:2:0, 8 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChromaFormat {
    idc: u8,
    separate_colour_plane: bool,
    bit_depth_luma: u8,
    bit_depth_chroma: u8,
}

impl Default for ChromaFormat {
    fn default() -> Self {
        ChromaFormat {
            idc: 1,
            separate_colour_plane: false,
            bit_depth_luma: 8,
            bit_depth_chroma: 8,
        }
    }
}

/// Reads the chroma format, bit depths and (skipped) scaling matrices that high
/// profiles put after `seq_parameter_set_id`.
fn read_chroma_format(r: &mut BitReader<'_>) -> Result<ChromaFormat, H264Error> {
    let idc = r.ue_max("chroma_format_idc", 3)? as u8;
    let separate_colour_plane = idc == 3 && r.flag()?;
    let bit_depth_luma = 8 + r.ue_max("bit_depth_luma_minus8", 6)? as u8;
    let bit_depth_chroma = 8 + r.ue_max("bit_depth_chroma_minus8", 6)? as u8;
    r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
    if r.flag()? {
        let lists = if idc == 3 { 12 } else { 8 };
        for i in 0..lists {
            if r.flag()? {
                skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
            }
        }
    }
    Ok(ChromaFormat {
        idc,
        separate_colour_plane,
        bit_depth_luma,
        bit_depth_chroma,
    })
}

/// Reads `pic_order_cnt_type` and skips the fields that depend on it.
fn read_pic_order_cnt(r: &mut BitReader<'_>) -> Result<u8, H264Error> {
    let pic_order_cnt_type = r.ue_max("pic_order_cnt_type", 2)? as u8;
    match pic_order_cnt_type {
        0 => {
            r.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            r.skip(1)?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue_max("num_ref_frames_in_pic_order_cnt_cycle", MAX_POC_CYCLE)?;
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
        }
        _ => {}
    }
    Ok(pic_order_cnt_type)
}

/// Reads the frame cropping offsets and returns the cropped size of the `coded` picture.
fn read_crop(
    r: &mut BitReader<'_>,
    (coded_width, coded_height): (u32, u32),
    chroma: &ChromaFormat,
    field_factor: u32,
) -> Result<(u32, u32), H264Error> {
    let left = r.ue()?;
    let right = r.ue()?;
    let top = r.ue()?;
    let bottom = r.ue()?;
    // ChromaArrayType is 0 with separate colour planes.
    let chroma_array_type = if chroma.separate_colour_plane {
        0
    } else {
        chroma.idc
    };
    let (unit_x, unit_y) = match chroma_array_type {
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let crop_w = u64::from(left) + u64::from(right);
    let crop_h = u64::from(top) + u64::from(bottom);
    let width = u64::from(coded_width)
        .checked_sub(crop_w * unit_x)
        .filter(|w| *w > 0)
        .ok_or(H264Error::BadCrop)? as u32;
    let height = u64::from(coded_height)
        .checked_sub(crop_h * u64::from(unit_y))
        .filter(|h| *h > 0)
        .ok_or(H264Error::BadCrop)? as u32;
    Ok((width, height))
}

/// What corecast takes from the VUI.
#[derive(Debug, Default, Clone, Copy)]
struct Vui {
    fps: Option<f64>,
    max_num_reorder_frames: Option<u32>,
}

/// Most `cpb_cnt_minus1 + 1` entries of HRD parameters (H.264 E.2.2).
const MAX_CPB_CNT: u32 = 32;

/// Reads the VUI (H.264 E.1.1) into `vui`, field by field: the frame rate from the timing
/// info, the reorder depth from the bitstream restriction.
fn read_vui(r: &mut BitReader<'_>, vui: &mut Vui) -> Result<(), H264Error> {
    if r.flag()? {
        // aspect_ratio_info_present_flag
        if r.bits(8)? == 0xFF {
            r.skip(32)?; // sar_width, sar_height (Extended_SAR)
        }
    }
    if r.flag()? {
        r.skip(1)?; // overscan_appropriate_flag
    }
    if r.flag()? {
        r.skip(4)?; // video_format, video_full_range_flag
        if r.flag()? {
            r.skip(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.flag()? {
        r.ue()?; // chroma_sample_loc_type_top_field
        r.ue()?; // chroma_sample_loc_type_bottom_field
    }
    if r.flag()? {
        let num_units_in_tick = r.bits(32)?;
        let time_scale = r.bits(32)?;
        if num_units_in_tick != 0 && time_scale != 0 {
            vui.fps = Some(f64::from(time_scale) / (2.0 * f64::from(num_units_in_tick)));
        }
        r.skip(1)?; // fixed_frame_rate_flag
    }
    let nal_hrd = r.flag()?;
    if nal_hrd {
        skip_hrd(r)?;
    }
    let vcl_hrd = r.flag()?;
    if vcl_hrd {
        skip_hrd(r)?;
    }
    if nal_hrd || vcl_hrd {
        r.skip(1)?; // low_delay_hrd_flag
    }
    r.skip(1)?; // pic_struct_present_flag
    if r.flag()? {
        // bitstream_restriction_flag
        r.skip(1)?; // motion_vectors_over_pic_boundaries_flag
        r.ue()?; // max_bytes_per_pic_denom
        r.ue()?; // max_bits_per_mb_denom
        r.ue()?; // log2_max_mv_length_horizontal
        r.ue()?; // log2_max_mv_length_vertical
        vui.max_num_reorder_frames = Some(r.ue_max("max_num_reorder_frames", 16)?);
    }
    Ok(())
}

/// Skips `hrd_parameters()` (H.264 E.1.2).
fn skip_hrd(r: &mut BitReader<'_>) -> Result<(), H264Error> {
    let cpb_cnt = r.ue_max("cpb_cnt_minus1", MAX_CPB_CNT - 1)? + 1;
    r.skip(8)?; // bit_rate_scale, cpb_size_scale
    for _ in 0..cpb_cnt {
        r.ue()?; // bit_rate_value_minus1
        r.ue()?; // cpb_size_value_minus1
        r.skip(1)?; // cbr_flag
    }
    r.skip(20)?; // four 5-bit delay and offset lengths
    Ok(())
}

/// Whether the SPS of an H.264 track says its frames come out of decode order
/// (`max_num_reorder_frames` > 0: B-frames). False when the SPS does not say.
pub fn declares_reordering(track: &Track) -> bool {
    track.codec == super::Codec::H264
        && track
            .params
            .sps
            .first()
            .and_then(|sps| parse_sps(sps).ok())
            .and_then(|sps| sps.max_num_reorder_frames)
            .is_some_and(|n| n > 0)
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.2.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// `AVCProfileIndication` (profile_idc).
    pub profile: u8,
    /// `profile_compatibility` (the constraint flags byte).
    pub compatibility: u8,
    /// `AVCLevelIndication` (level_idc).
    pub level: u8,
    /// Bytes of each NAL unit length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    /// SPS NAL units.
    pub sps: Vec<Bytes>,
    /// PPS NAL units.
    pub pps: Vec<Bytes>,
}

/// Reads `count` 16-bit-length-prefixed NAL units from `data` at `*pos`, zero-copy.
fn read_param_sets(data: &Bytes, pos: &mut usize, count: usize) -> Result<Vec<Bytes>, H264Error> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len_bytes: [u8; 2] = data
            .get(*pos..)
            .and_then(|r| r.get(..2))
            .and_then(|r| r.try_into().ok())
            .ok_or(H264Error::Truncated)?;
        let len = usize::from(u16::from_be_bytes(len_bytes));
        if len == 0 {
            return Err(H264Error::InvalidField {
                field: "parameter set length",
                value: 0,
            });
        }
        let start = *pos + 2;
        let end = start + len;
        if end > data.len() {
            return Err(H264Error::Truncated);
        }
        out.push(data.slice(start..end));
        *pos = end;
    }
    Ok(out)
}

impl AvcConfig {
    /// Parses a record. SPS and PPS are zero-copy slices of `data`; trailing extension
    /// fields (high profiles) are ignored.
    pub fn parse(data: &Bytes) -> Result<AvcConfig, H264Error> {
        let head: [u8; 6] = data
            .get(..6)
            .and_then(|h| h.try_into().ok())
            .ok_or(H264Error::Truncated)?;
        let [version, profile, compatibility, level, len_size, num_sps] = head;
        if version != 1 {
            return Err(H264Error::UnsupportedVersion(version));
        }
        let mut pos = 6usize;
        let sps = read_param_sets(data, &mut pos, usize::from(num_sps & 0x1F))?;
        let num_pps = *data.get(pos).ok_or(H264Error::Truncated)?;
        pos += 1;
        let pps = read_param_sets(data, &mut pos, usize::from(num_pps))?;
        Ok(AvcConfig {
            profile,
            compatibility,
            level,
            nal_length_size: (len_size & 0x03) + 1,
            sps,
            pps,
        })
    }

    /// Builds a record from parameter sets: profile, compatibility and level come from
    /// bytes 1..4 of the first SPS; NAL units are 4-byte length prefixed.
    pub fn from_parameter_sets(sps: &[Bytes], pps: &[Bytes]) -> Result<AvcConfig, H264Error> {
        let first = sps.first().ok_or(H264Error::NoSps)?;
        let [profile, compatibility, level]: [u8; 3] = first
            .get(1..4)
            .and_then(|b| b.try_into().ok())
            .ok_or(H264Error::Truncated)?;
        let too_long = |v: &[Bytes]| v.iter().any(|p| p.is_empty() || p.len() > 0xFFFF);
        if sps.len() > MAX_CONFIG_SPS
            || pps.len() > MAX_CONFIG_PPS
            || too_long(sps)
            || too_long(pps)
        {
            return Err(H264Error::TooManyParameterSets);
        }
        Ok(AvcConfig {
            profile,
            compatibility,
            level,
            nal_length_size: 4,
            sps: sps.to_vec(),
            pps: pps.to_vec(),
        })
    }

    /// Serializes the record (version 1, no high-profile extension). Parameter sets that
    /// cannot be represented (empty, longer than 0xFFFF bytes, or beyond 31 SPS / 255 PPS)
    /// are left out; [`AvcConfig::from_parameter_sets`] and [`AvcConfig::parse`] never
    /// produce such sets.
    pub fn to_bytes(&self) -> Bytes {
        let fits = |p: &&Bytes| !p.is_empty() && p.len() <= 0xFFFF;
        let sps: Vec<&Bytes> = self.sps.iter().filter(fits).take(MAX_CONFIG_SPS).collect();
        let pps: Vec<&Bytes> = self.pps.iter().filter(fits).take(MAX_CONFIG_PPS).collect();
        let size: usize = 7 + sps.iter().chain(&pps).map(|p| 2 + p.len()).sum::<usize>();
        let mut out = BytesMut::with_capacity(size);
        out.put_u8(1);
        out.put_u8(self.profile);
        out.put_u8(self.compatibility);
        out.put_u8(self.level);
        out.put_u8(0xFC | (self.nal_length_size.saturating_sub(1) & 0x03));
        out.put_u8(0xE0 | sps.len() as u8);
        for p in &sps {
            out.put_u16(p.len() as u16);
            out.put_slice(p);
        }
        out.put_u8(pps.len() as u8);
        for p in &pps {
            out.put_u16(p.len() as u16);
            out.put_slice(p);
        }
        out.freeze()
    }
}

/// Stores the configuration's parameter sets in `track` and sets width, height, profile
/// and (when the SPS has timing info) fps from the first SPS. The track is left unchanged
/// on error.
pub fn apply_avc_config(track: &mut Track, cfg: &AvcConfig) -> Result<(), H264Error> {
    let sps = parse_sps(cfg.sps.first().ok_or(H264Error::NoSps)?)?;
    track.params.sps = cfg.sps.clone();
    track.params.pps = cfg.pps.clone();
    track.width = Some(sps.width);
    track.height = Some(sps.height);
    track.profile = Some(sps.profile_name().to_string());
    if sps.fps.is_some() {
        track.fps = sps.fps;
    }
    Ok(())
}

/// Whether an AVCC payload (4-byte length prefixes) contains an IDR slice.
pub fn avcc_has_idr(data: &Bytes) -> bool {
    avcc_nal_units(data).any(|nal| nal_type(&nal) == Some(nal::IDR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Codec, TrackId};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// x264, `-profile:v baseline`, 1280x720 at 30 fps.
    const SPS_720P_BASELINE: &str = "6742c01fd9005005bb0110000003001000000303c0f1832480";
    /// x264, `-profile:v high`, 1920x1080 at 25 fps (coded 1088, cropped).
    const SPS_1080P_HIGH: &str = "640028acd940780227e5c044000003000400000300c83c60c658";
    /// x264, `-profile:v high`, 1920x1080 interlaced (tff) at 25 fps.
    const SPS_1080I_HIGH: &str = "67640028acd94078044fde0220000003002000000643e2c5b2c0";
    /// x264, `-profile:v high444`, yuv444p 1920x1080 at 25 fps.
    const SPS_1080P_444: &str = "67f40028919b280f0044fc4e0220000003002000000641e30632c0";
    /// x264, `-profile:v high422`, yuv422p10le 352x288 at 30 fps.
    const SPS_288P_422_10: &str = "677a000db6cd9416096c0440000003004000000f03c50a6580";
    /// Hand-built and checked with ffmpeg's trace_headers: High 4:4:4, 10 bit, scaling
    /// lists (one ending early), POC type 1, interlaced with MBAFF, crop 8 right / 4
    /// bottom, full VUI with timing 1001/60000.
    const SPS_CRAFTED: &str = "67f400284436ccccccccccccccccc108901900327fffffffffffffff1a1451\
                               0824714078044f132ffe000800076a0202034a000007d20001d4c108";

    #[test]
    fn baseline_720p() {
        let sps = parse_sps(&hex(SPS_720P_BASELINE)).unwrap();
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!((sps.profile_idc, sps.level_idc), (66, 31));
        assert_eq!(sps.profile_name(), "Constrained Baseline");
        assert_eq!(sps.pic_order_cnt_type, 2);
        assert_eq!(sps.fps, Some(30.0));
        assert!(sps.frame_mbs_only);
    }

    #[test]
    fn high_1080p_is_cropped() {
        let sps = parse_sps(&hex(&format!("67{SPS_1080P_HIGH}"))).unwrap();
        assert_eq!((sps.coded_width, sps.coded_height), (1920, 1088));
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.profile_name(), "High");
        assert_eq!(sps.pic_order_cnt_type, 0);
        assert_eq!(sps.fps, Some(25.0));
    }

    #[test]
    fn interlaced_444_and_422() {
        let i = parse_sps(&hex(SPS_1080I_HIGH)).unwrap();
        assert!(!i.frame_mbs_only);
        assert_eq!((i.width, i.height), (1920, 1080));
        let f = parse_sps(&hex(SPS_1080P_444)).unwrap();
        assert_eq!(f.chroma_format_idc, 3);
        assert_eq!((f.width, f.height), (1920, 1080));
        assert_eq!(f.profile_name(), "High 4:4:4 Predictive");
        let s = parse_sps(&hex(SPS_288P_422_10)).unwrap();
        assert_eq!((s.chroma_format_idc, s.bit_depth_luma), (2, 10));
        assert_eq!((s.width, s.height, s.fps), (352, 288, Some(30.0)));
        assert_eq!(s.profile_name(), "High 4:2:2");
    }

    #[test]
    fn crafted_scaling_lists_poc1_vui() {
        let sps = parse_sps(&hex(SPS_CRAFTED)).unwrap();
        assert_eq!(sps.id, 1);
        assert_eq!((sps.bit_depth_luma, sps.bit_depth_chroma), (10, 10));
        assert_eq!((sps.pic_order_cnt_type, sps.log2_max_frame_num), (1, 6));
        assert_eq!(sps.max_num_ref_frames, 4);
        assert_eq!((sps.coded_width, sps.coded_height), (1920, 1088));
        // 4:4:4 interlaced: crop unit x 1, y 2.
        assert_eq!((sps.width, sps.height), (1912, 1080));
        let fps = sps.fps.unwrap();
        assert!((fps - 29.97).abs() < 0.001, "{fps}");
    }

    #[test]
    fn truncated_and_garbage_fail() {
        let full = hex(SPS_720P_BASELINE);
        for len in [0, 1, 3, 4, 6, 8] {
            assert!(parse_sps(&full[..len]).is_err(), "len {len}");
        }
        // Truncated inside the VUI: the picture is still described.
        let sps = parse_sps(&full[..12]).unwrap();
        assert_eq!((sps.width, sps.height, sps.fps), (1280, 720, None));
        assert_eq!(
            parse_sps(&[0x68, 0xCE]),
            Err(H264Error::UnexpectedNalType(8))
        );
        // 40 zero bits: an Exp-Golomb code that never ends.
        assert_eq!(
            parse_sps(&[0x67, 0x42, 0, 0x1F, 0, 0, 0, 0, 0]),
            Err(H264Error::ExpGolombTooLong)
        );
        for seed in 0u32..2000 {
            let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
            let mut nal = vec![0x67];
            for _ in 0..(seed % 40) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                nal.push(x as u8);
            }
            let _ = parse_sps(&nal);
        }
    }

    #[test]
    fn oversized_poc_cycle_and_crop_rejected() {
        // Baseline, POC type 1 with num_ref_frames_in_pic_order_cnt_cycle = 256.
        assert_eq!(
            parse_sps(&hex("6742001fd30080c0")),
            Err(H264Error::InvalidField {
                field: "num_ref_frames_in_pic_order_cnt_cycle",
                value: 256
            })
        );
        // 320x240 with a right crop of 160 units (320 pixels): nothing left.
        assert_eq!(
            parse_sps(&hex("6742001fda0507f80a1d")),
            Err(H264Error::BadCrop)
        );
    }

    #[test]
    fn emulation_prevention_removed() {
        assert_eq!(
            nal_to_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            [0, 0, 1, 0, 0, 0, 3]
        );
        assert_eq!(nal_to_rbsp(&[0, 3, 0, 0, 3]), [0, 3, 0, 0]);
    }

    #[test]
    fn bit_reader_errors_become_h264_errors() {
        // The codes themselves are tested with the reader (media::bits); here, that its
        // errors reach SPS parsing as H.264 errors.
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.bits(17).map(|_| ()), Ok(()));
        assert_eq!(r.bits_left(), 7);
        assert_eq!(
            r.bits(8).map_err(H264Error::from),
            Err(H264Error::Truncated)
        );
        assert_eq!(
            r.bits(33).map_err(H264Error::from),
            Err(H264Error::InvalidField {
                field: "bit count",
                value: 33
            })
        );
    }

    #[test]
    fn nal_types() {
        assert_eq!(nal_type(&[0x65, 0x88]), Some(nal::IDR));
        assert_eq!(nal_type(&[0x67]), Some(nal::SPS));
        assert_eq!(nal_type(&[0x68]), Some(nal::PPS));
        assert_eq!(nal_type(&[0x06]), Some(nal::SEI));
        assert_eq!(nal_type(&[0x09]), Some(nal::AUD));
        assert_eq!(nal_type(&[]), None);
    }

    /// The record ffmpeg wrote for a 320x240 baseline stream in an FLV.
    const AVCC_320X240: &str = "0142c00bffe100186742c00bd90141fb011000000300100000030140\
                                f142a48001000568cb83cb20";

    #[test]
    fn avc_config_parse_and_round_trip() {
        let data = Bytes::from(hex(AVCC_320X240));
        let cfg = AvcConfig::parse(&data).unwrap();
        assert_eq!((cfg.profile, cfg.compatibility, cfg.level), (66, 0xC0, 11));
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!((cfg.sps.len(), cfg.pps.len()), (1, 1));
        assert_eq!(&cfg.pps[0][..], &[0x68, 0xCB, 0x83, 0xCB, 0x20]);
        // Zero-copy: the SPS points into the record.
        assert_eq!(cfg.sps[0].as_ptr(), data[8..].as_ptr());
        assert_eq!(cfg.to_bytes(), data);
        let rebuilt = AvcConfig::from_parameter_sets(&cfg.sps, &cfg.pps).unwrap();
        assert_eq!(rebuilt, cfg);
        assert_eq!(AvcConfig::parse(&rebuilt.to_bytes()).unwrap(), cfg);

        for len in 0..data.len() {
            assert!(AvcConfig::parse(&data.slice(..len)).is_err(), "len {len}");
        }
        let mut v2 = data.to_vec();
        v2[0] = 2;
        assert_eq!(
            AvcConfig::parse(&Bytes::from(v2)),
            Err(H264Error::UnsupportedVersion(2))
        );
        assert_eq!(
            AvcConfig::from_parameter_sets(&[], &[]),
            Err(H264Error::NoSps)
        );
    }

    #[test]
    fn apply_config_to_track() {
        let data = Bytes::from(hex(AVCC_320X240));
        let cfg = AvcConfig::parse(&data).unwrap();
        let mut track = Track::new(TrackId(0), Codec::H264, 90_000);
        track.fps = Some(10.0);
        apply_avc_config(&mut track, &cfg).unwrap();
        assert_eq!((track.width, track.height), (Some(320), Some(240)));
        assert_eq!(track.profile.as_deref(), Some("Constrained Baseline"));
        assert_eq!(track.params.sps, cfg.sps);
        assert_eq!(track.params.pps, cfg.pps);
        // The SPS has timing info: 20/2 = 10 fps... kept or replaced by the same value.
        assert_eq!(track.fps, Some(10.0));

        let bad = AvcConfig {
            sps: vec![Bytes::from_static(&[0x67, 0x42])],
            ..cfg
        };
        let before = track.clone();
        assert!(apply_avc_config(&mut track, &bad).is_err());
        assert_eq!(track, before);
    }

    #[test]
    fn idr_detection() {
        let idr = Bytes::from_static(&[0, 0, 0, 2, 0x09, 0xF0, 0, 0, 0, 2, 0x65, 0x88]);
        let non = Bytes::from_static(&[0, 0, 0, 2, 0x41, 0x9A]);
        assert!(avcc_has_idr(&idr));
        assert!(!avcc_has_idr(&non));
        assert!(!avcc_has_idr(&Bytes::from_static(&[0, 0, 0, 9, 0x65])));
    }

    /// x264 High-profile SPSs (320x240, 25 fps) with `-bf 0` and `-bf 2`: the VUI's
    /// bitstream restriction says whether frames come out of decode order.
    const X264_BF0: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xb4, 0x0a, 0x0f, 0xd8, 0x08, 0x80, 0x00, 0x00, 0x03, 0x00,
        0x80, 0x00, 0x00, 0x19, 0x07, 0x8a, 0x15, 0x50,
    ];
    const X264_BF2: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
    ];

    #[test]
    fn vui_bitstream_restriction_gives_the_reorder_depth() {
        let bf0 = parse_sps(X264_BF0).expect("bf0");
        let bf2 = parse_sps(X264_BF2).expect("bf2");
        assert_eq!((bf0.width, bf0.height), (320, 240));
        assert_eq!(bf0.max_num_reorder_frames, Some(0));
        assert_eq!(bf2.max_num_reorder_frames, Some(2));
        assert_eq!(bf2.fps, Some(25.0));
        let track = |sps: &'static [u8]| {
            let mut t = Track::new(crate::media::TrackId(0), crate::media::Codec::H264, 90_000);
            t.params.sps = vec![Bytes::from_static(sps)];
            t
        };
        assert!(declares_reordering(&track(X264_BF2)));
        assert!(!declares_reordering(&track(X264_BF0)));
        // Cut inside the VUI: the SPS still parses, the depth is unknown.
        let cut = parse_sps(&X264_BF2[..X264_BF2.len() - 3]).expect("cut");
        assert_eq!(cut.max_num_reorder_frames, None);
        assert!(!declares_reordering(&track(&X264_BF2[..20])));
    }
}
