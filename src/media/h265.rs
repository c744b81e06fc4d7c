//! H.265 sequence parameter sets (ITU-T H.265 §7.3.2.2): the picture size, profile and
//! level, for the API and the web page. Pure and bounded; errors, never panics.

use super::bits::BitReader;
use super::h264::{H264Error, nal_to_rbsp};

/// H.265 NAL unit types (ITU-T H.265 table 7-1), and the RTP packet types of RFC 7798
/// (§4.4) that share the type field of the NAL unit header.
pub mod nal {
    use std::ops::RangeInclusive;

    /// The type bits of the first header byte, once shifted right by one.
    pub const TYPE_MASK: u8 = 0x3F;
    /// Intra random access point pictures: BLA_W_LP (16) to RSV_IRAP_VCL23.
    pub const IRAP: RangeInclusive<u8> = 16..=23;
    /// Last VCL type (RSV_VCL31).
    pub const LAST_VCL: u8 = 31;
    /// Video parameter set.
    pub const VPS: u8 = 32;
    /// Sequence parameter set.
    pub const SPS: u8 = 33;
    /// Picture parameter set.
    pub const PPS: u8 = 34;
    /// Access unit delimiter.
    pub const AUD: u8 = 35;
    /// Filler data.
    pub const FILLER: u8 = 38;
    /// RTP aggregation packet; 48..=63 are never NAL units.
    pub const AP: u8 = 48;
    /// RTP fragmentation unit.
    pub const FU: u8 = 49;
    /// RTP payload content information (PACI).
    pub const PACI: u8 = 50;

    /// The NAL unit type in the first header byte.
    pub fn kind(first_header_byte: u8) -> u8 {
        (first_header_byte >> 1) & TYPE_MASK
    }
}

/// The NAL unit type, or `None` for an empty unit.
pub fn nal_type(unit: &[u8]) -> Option<u8> {
    unit.first().map(|b| nal::kind(*b))
}
/// Longest SPS read (real ones are under 100 bytes).
const MAX_SPS: usize = 1024;

/// What corecast takes from an H.265 SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H265Sps {
    /// `general_profile_idc` (1 Main, 2 Main 10, 3 Main Still Picture, 4 range extensions).
    pub profile_idc: u8,
    /// `general_level_idc`: 30 × the level number (120 is level 4).
    pub level_idc: u8,
    /// Width in pixels after the conformance window.
    pub width: u32,
    /// Height in pixels after the conformance window.
    pub height: u32,
    /// The 12 bytes of the general `profile_tier_level`: profile space, tier and profile;
    /// 4 bytes of compatibility flags; 6 bytes of constraint flags; level (what an `hvcC`
    /// record and a codec string carry).
    pub general_ptl: [u8; 12],
    /// `sps_max_sub_layers_minus1 + 1`.
    pub max_sub_layers: u8,
    /// `sps_temporal_id_nesting_flag`.
    pub temporal_id_nesting: bool,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// `bit_depth_luma_minus8` and `bit_depth_chroma_minus8`, when the SPS goes on that
    /// far.
    pub bit_depths_minus8: Option<(u8, u8)>,
}

impl H265Sps {
    /// The profile's name.
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            1 => "Main",
            2 => "Main 10",
            3 => "Main Still Picture",
            4 => "Range Extensions",
            _ => "H.265",
        }
    }
}

/// Reads a `profile_tier_level(1, max_sub_layers_minus1)`: returns its 12 general bytes
/// (profile space, tier, profile; compatibility flags; constraint flags; level) and skips
/// the sub-layers'.
fn profile_tier_level(
    r: &mut BitReader,
    max_sub_layers_minus1: u32,
) -> Result<[u8; 12], H264Error> {
    let mut general = [0u8; 12];
    for b in general.iter_mut() {
        *b = r.bits(8)? as u8;
    }
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    let subs = max_sub_layers_minus1 as usize;
    for i in 0..subs {
        profile_present[i] = r.flag()?;
        level_present[i] = r.flag()?;
    }
    if subs > 0 {
        r.skip(2 * (8 - subs))?; // reserved_zero_2bits
    }
    for i in 0..subs {
        if profile_present[i] {
            r.skip(88)?;
        }
        if level_present[i] {
            r.skip(8)?;
        }
    }
    Ok(general)
}

/// Reads the size, profile and level of an H.265 SPS NAL unit (with its 2-byte header).
pub fn parse_sps(nal: &[u8]) -> Result<H265Sps, H264Error> {
    let kind = nal_type(nal).ok_or(H264Error::Truncated)?;
    if kind != nal::SPS {
        return Err(H264Error::UnexpectedNalType(kind));
    }
    let rbsp = nal_to_rbsp(&nal[..nal.len().min(MAX_SPS)]);
    let mut r = BitReader::new(rbsp.get(2..).ok_or(H264Error::Truncated)?);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    if max_sub_layers_minus1 > 6 {
        return Err(H264Error::InvalidField {
            field: "sps_max_sub_layers_minus1",
            value: u64::from(max_sub_layers_minus1),
        });
    }
    let temporal_id_nesting = r.flag()?;
    let general_ptl = profile_tier_level(&mut r, max_sub_layers_minus1)?;
    let sps_id = r.ue()?;
    if sps_id > 15 {
        return Err(H264Error::InvalidField {
            field: "sps_seq_parameter_set_id",
            value: u64::from(sps_id),
        });
    }
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return Err(H264Error::InvalidField {
            field: "chroma_format_idc",
            value: u64::from(chroma_format_idc),
        });
    }
    let separate_planes = chroma_format_idc == 3 && r.flag()?;
    let width = r.ue()?;
    let height = r.ue()?;
    if width == 0 || height == 0 || width > 16_888 || height > 16_888 {
        return Err(H264Error::InvalidField {
            field: "pic_width/height_in_luma_samples",
            value: u64::from(width.max(height)),
        });
    }
    let (mut w, mut h) = (width, height);
    if r.flag()? {
        // Conformance window offsets are in chroma samples.
        let (sub_w, sub_h): (u64, u64) = match (chroma_format_idc, separate_planes) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let crop_w = sub_w * (u64::from(left) + u64::from(right));
        let crop_h = sub_h * (u64::from(top) + u64::from(bottom));
        if crop_w >= u64::from(w) || crop_h >= u64::from(h) {
            return Err(H264Error::BadCrop);
        }
        w -= crop_w as u32;
        h -= crop_h as u32;
    }
    let depth = |r: &mut BitReader| r.ue().ok().filter(|d| *d <= 8).map(|d| d as u8);
    let bit_depths_minus8 = depth(&mut r).zip(depth(&mut r));
    Ok(H265Sps {
        profile_idc: general_ptl[0] & 0x1F,
        level_idc: general_ptl[11],
        width: w,
        height: h,
        general_ptl,
        max_sub_layers: max_sub_layers_minus1 as u8 + 1,
        temporal_id_nesting,
        chroma_format_idc: chroma_format_idc as u8,
        bit_depths_minus8,
    })
}

/// Sets an H.265 track's size and profile from its first SPS, when it has one that
/// parses; leaves the track as it is otherwise.
pub fn apply_sps(track: &mut super::Track) {
    let Some(sps) = track.params.sps.first() else {
        return;
    };
    if let Ok(s) = parse_sps(sps) {
        track.width = Some(s.width);
        track.height = Some(s.height);
        track.profile = Some(s.profile_name().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// SPS from libx265 (ffmpeg -c:v libx265) of a 1920x1080 Main stream: coded 1088 high,
    /// with a conformance window of 8 lines.
    const SPS_1080P_MAIN: &str =
        "420101016000000300900000030000030078a003c08010e596566924caf0168080000003008000000c84";
    /// SPS from libx265 of a 640x360 Main 10 stream (yuv420p10le).
    const SPS_360P_MAIN10: &str =
        "42010102200000030090000003000003003fa005020169365959a4932bc05a020000030002000003003210";

    #[test]
    fn x265_sizes_profiles_levels() {
        let s = parse_sps(&hex(SPS_1080P_MAIN)).unwrap();
        assert_eq!((s.width, s.height), (1920, 1080));
        assert_eq!((s.profile_idc, s.level_idc), (1, 120));
        assert_eq!(s.profile_name(), "Main");
        let s = parse_sps(&hex(SPS_360P_MAIN10)).unwrap();
        assert_eq!((s.width, s.height), (640, 360));
        assert_eq!((s.profile_idc, s.level_idc), (2, 63));
        assert_eq!(s.profile_name(), "Main 10");
    }

    #[test]
    fn x265_profile_tier_level_bytes_and_bit_depths() {
        let main = parse_sps(&hex(SPS_1080P_MAIN)).unwrap();
        assert_eq!(main.general_ptl[0], 0x01); // space 0, Main tier, Main
        assert_eq!(main.general_ptl[11], main.level_idc);
        assert_eq!((main.max_sub_layers, main.temporal_id_nesting), (1, true));
        assert_eq!(main.chroma_format_idc, 1);
        assert_eq!(main.bit_depths_minus8, Some((0, 0)));
        let ten = parse_sps(&hex(SPS_360P_MAIN10)).unwrap();
        assert_eq!(ten.general_ptl[0] & 0x1F, 2);
        assert_eq!(ten.bit_depths_minus8, Some((2, 2)));
    }

    #[test]
    fn nal_types() {
        // Headers from RFC 7798 §1.1.4: type << 1, LayerId 0, TID 1.
        assert_eq!(nal_type(&[0x40, 0x01]), Some(nal::VPS));
        assert_eq!(nal_type(&[0x42, 0x01]), Some(nal::SPS));
        assert_eq!(nal_type(&[0x44, 0x01]), Some(nal::PPS));
        assert_eq!(nal_type(&[0x46, 0x01]), Some(nal::AUD));
        assert_eq!(nal_type(&[0x60, 0x01]), Some(nal::AP));
        assert_eq!(nal_type(&[0x62, 0x01]), Some(nal::FU));
        // IDR_W_RADL (19) with the F bit and the high LayerId bit set.
        assert_eq!(nal::kind(0x80 | (19 << 1) | 0x01), 19);
        assert!(nal::IRAP.contains(&19) && !nal::IRAP.contains(&nal::LAST_VCL));
        assert_eq!(nal_type(&[]), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse_sps(&[]).is_err());
        // A PPS header.
        assert_eq!(
            parse_sps(&[0x44, 0x01, 0xc1]).unwrap_err(),
            H264Error::UnexpectedNalType(34)
        );
        let full = hex(SPS_1080P_MAIN);
        // The size ends 22 bytes in (with the conformance window): every shorter prefix
        // is truncated.
        for n in 0..20 {
            assert!(parse_sps(&full[..n]).is_err(), "{n} bytes");
        }
        // Every single-byte corruption gives a result or an error, never a panic.
        for i in 2..full.len() {
            for b in [0x00, 0xff, 0x80] {
                let mut c = full.clone();
                c[i] = b;
                let _ = parse_sps(&c);
            }
        }
    }
}
