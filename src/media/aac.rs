//! AAC AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), as carried in FLV/RTMP sequence
//! headers, MP4 `esds` and SDP `config=`.

use super::bits::{BitError, BitReader};

/// Sampling frequencies by `samplingFrequencyIndex` (0x0..=0xC).
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];
/// Escape value of the 5-bit audio object type.
const OBJECT_TYPE_ESCAPE: u8 = 0x1F;
/// Escape value of the frequency index: a 24-bit explicit rate follows.
const FREQ_INDEX_ESCAPE: u8 = 0x0F;

/// Errors from AAC configuration parsing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AacError {
    /// The input ended before the configuration was complete.
    #[error("truncated AudioSpecificConfig")]
    Truncated,
    /// A reserved sampling frequency index (0xD or 0xE).
    #[error("reserved sampling frequency index {0:#x}")]
    ReservedFrequencyIndex(u8),
    /// An explicit sampling frequency of zero.
    #[error("zero sampling frequency")]
    ZeroSampleRate,
    /// A reserved channel configuration.
    #[error("reserved channel configuration {0}")]
    ReservedChannelConfig(u8),
}

/// The leading fields of an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// Audio object type (2 = AAC-LC, 5 = SBR, 29 = PS, ...).
    pub object_type: u8,
    /// Sampling frequency in Hz (the core rate for implicitly signalled SBR).
    pub sample_rate: u32,
    /// Number of channels; 0 when a program config element defines them.
    pub channels: u8,
}

impl From<BitError> for AacError {
    fn from(_: BitError) -> Self {
        AacError::Truncated
    }
}

/// Channel count for a `channelConfiguration` (ISO/IEC 14496-3:2019 table 1.19).
fn channels_for_config(config: u8) -> Result<u8, AacError> {
    match config {
        0..=6 => Ok(config),
        7 | 12 | 14 => Ok(8),
        11 => Ok(7),
        13 => Ok(24),
        _ => Err(AacError::ReservedChannelConfig(config)),
    }
}

/// `channelConfiguration` for a channel count (0 = program config element).
fn config_for_channels(channels: u8) -> u8 {
    match channels {
        0..=6 => channels,
        7 => 11,
        8 => 7,
        24 => 13,
        _ => 0,
    }
}

impl AudioSpecificConfig {
    /// Parses object type, sampling frequency and channel configuration; any following
    /// fields (GASpecificConfig, SBR extension) are ignored.
    pub fn parse(data: &[u8]) -> Result<AudioSpecificConfig, AacError> {
        // The fields read here take at most 43 bits: look at the first 8 bytes only.
        let mut r = BitReader::with_len(data, 64);
        let mut object_type = r.bits(5)? as u8;
        if object_type == OBJECT_TYPE_ESCAPE {
            object_type = 32 + r.bits(6)? as u8;
        }
        let index = r.bits(4)? as u8;
        let sample_rate = if index == FREQ_INDEX_ESCAPE {
            match r.bits(24)? {
                0 => return Err(AacError::ZeroSampleRate),
                rate => rate,
            }
        } else {
            *SAMPLE_RATES
                .get(usize::from(index))
                .ok_or(AacError::ReservedFrequencyIndex(index))?
        };
        let channels = channels_for_config(r.bits(4)? as u8)?;
        Ok(AudioSpecificConfig {
            object_type,
            sample_rate,
            channels,
        })
    }

    /// Serializes the fields followed by an all-zero GASpecificConfig (frame length 1024,
    /// no core coder, no extension). Uses the escapes for object types ≥ 31 (types above
    /// 95 are not representable and are masked) and for non-standard rates (24-bit).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bits: u64 = 0;
        let mut len: u32 = 0;
        let mut put = |v: u64, n: u32| {
            bits = (bits << n) | (v & ((1 << n) - 1));
            len += n;
        };
        if self.object_type < OBJECT_TYPE_ESCAPE {
            put(u64::from(self.object_type), 5);
        } else {
            put(u64::from(OBJECT_TYPE_ESCAPE), 5);
            put(u64::from(self.object_type.wrapping_sub(32)), 6);
        }
        match SAMPLE_RATES.iter().position(|&r| r == self.sample_rate) {
            Some(i) => put(i as u64, 4),
            None => {
                put(u64::from(FREQ_INDEX_ESCAPE), 4);
                put(u64::from(self.sample_rate), 24);
            }
        }
        put(u64::from(config_for_channels(self.channels)), 4);
        put(0, 3); // frameLengthFlag, dependsOnCoreCoder, extensionFlag
        // At most 46 bits, so 6 bytes.
        let bytes = len.div_ceil(8);
        let aligned = bits << (bytes * 8 - len);
        let skip = 8usize.saturating_sub(bytes as usize);
        aligned.to_be_bytes().iter().skip(skip).copied().collect()
    }

    /// Common name of the object type (`LC`, `HE-AAC`, ...), as used for the track profile.
    pub fn object_type_name(&self) -> &'static str {
        match self.object_type {
            1 => "Main",
            2 => "LC",
            3 => "SSR",
            4 => "LTP",
            5 => "HE-AAC",
            23 => "LD",
            29 => "HE-AACv2",
            39 => "ELD",
            42 => "xHE-AAC",
            _ => "Unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asc(object_type: u8, sample_rate: u32, channels: u8) -> AudioSpecificConfig {
        AudioSpecificConfig {
            object_type,
            sample_rate,
            channels,
        }
    }

    #[test]
    fn common_configs() {
        assert_eq!(
            AudioSpecificConfig::parse(&[0x12, 0x10]),
            Ok(asc(2, 44100, 2))
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x11, 0x90]),
            Ok(asc(2, 48000, 2))
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x14, 0x08]),
            Ok(asc(2, 16000, 1))
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x15, 0x88]),
            Ok(asc(2, 8000, 1))
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x11, 0xB0]),
            Ok(asc(2, 48000, 6))
        );
        // ffmpeg's AAC encoder in FLV: 44100 mono plus an SBR sync extension.
        let ffmpeg = [0x12, 0x08, 0x56, 0xE5, 0x00];
        assert_eq!(AudioSpecificConfig::parse(&ffmpeg), Ok(asc(2, 44100, 1)));
        // HE-AAC (explicit SBR), 24 kHz core, stereo.
        assert_eq!(
            AudioSpecificConfig::parse(&[0x2B, 0x11, 0x88]),
            Ok(asc(5, 24000, 2))
        );
        assert_eq!(asc(2, 44100, 2).object_type_name(), "LC");
    }

    #[test]
    fn escapes() {
        // Object type 31 + 6 bits (42 = USAC), index 0xF + 24-bit rate 0x00BB80 (48000),
        // channel configuration 2.
        let data = [0xF9, 0x5E, 0x01, 0x77, 0x00, 0x40];
        assert_eq!(AudioSpecificConfig::parse(&data), Ok(asc(42, 48000, 2)));
        // Serializing uses the frequency index for the standard rate.
        assert_eq!(asc(42, 48000, 2).to_bytes(), [0xF9, 0x46, 0x40]);
        let cfg = asc(42, 12345, 7);
        assert_eq!(AudioSpecificConfig::parse(&cfg.to_bytes()), Ok(cfg));
        let cfg = asc(2, 44100, 8);
        assert_eq!(AudioSpecificConfig::parse(&cfg.to_bytes()), Ok(cfg));
    }

    #[test]
    fn to_bytes_simple() {
        assert_eq!(asc(2, 44100, 2).to_bytes(), [0x12, 0x10]);
        assert_eq!(asc(2, 48000, 2).to_bytes(), [0x11, 0x90]);
        assert_eq!(asc(2, 16000, 1).to_bytes(), [0x14, 0x08]);
    }

    #[test]
    fn errors() {
        assert_eq!(AudioSpecificConfig::parse(&[]), Err(AacError::Truncated));
        assert_eq!(
            AudioSpecificConfig::parse(&[0x12]),
            Err(AacError::Truncated)
        );
        // Index 0xF with only part of the explicit rate.
        assert_eq!(
            AudioSpecificConfig::parse(&[0x17, 0x80, 0x00]),
            Err(AacError::Truncated)
        );
        // Index 0xD is reserved.
        assert_eq!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(AacError::ReservedFrequencyIndex(0xD))
        );
        // Explicit rate 0.
        assert_eq!(
            AudioSpecificConfig::parse(&[0x17, 0x80, 0x00, 0x00, 0x10]),
            Err(AacError::ZeroSampleRate)
        );
        // Channel configuration 15 is reserved.
        assert_eq!(
            AudioSpecificConfig::parse(&[0x12, 0x78]),
            Err(AacError::ReservedChannelConfig(15))
        );
    }
}
