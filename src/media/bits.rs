//! The one MSB-first bit reader of the media code: H.264/H.265 RBSPs (with Exp-Golomb
//! codes), the AAC AudioSpecificConfig and the AU header section of RFC 3640 payloads.
//! Pure and bounded: reading past the end is an error, never a panic.

/// Why a read failed; each parser maps it into its own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BitError {
    /// The data ended before the value.
    #[error("truncated bit string")]
    Truncated,
    /// An Exp-Golomb code had more than 31 leading zero bits.
    #[error("Exp-Golomb code too long")]
    ExpGolombTooLong,
    /// A value outside its allowed range (or a read of more than 32 bits).
    #[error("invalid value {value} for {field}")]
    OutOfRange {
        /// Name of the field.
        field: &'static str,
        /// The value read.
        value: u64,
    },
}

/// MSB-first bit reader over a byte slice, optionally limited to its first bits.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> BitReader<'a> {
    /// A reader of every bit of `data`, positioned at the first one.
    pub fn new(data: &'a [u8]) -> Self {
        Self::with_len(data, usize::MAX)
    }

    /// A reader of the first `bits` bits of `data` (at most all of them).
    pub fn with_len(data: &'a [u8], bits: usize) -> Self {
        BitReader {
            data,
            pos: 0,
            end: bits.min(data.len().saturating_mul(8)),
        }
    }

    /// Bits not yet read.
    pub fn bits_left(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    /// Reads one bit.
    pub fn bit(&mut self) -> Result<u8, BitError> {
        if self.pos >= self.end {
            return Err(BitError::Truncated);
        }
        let byte = self.data.get(self.pos / 8).ok_or(BitError::Truncated)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit)
    }

    /// Reads one bit as a flag.
    pub fn flag(&mut self) -> Result<bool, BitError> {
        Ok(self.bit()? == 1)
    }

    /// Reads `n` bits (at most 32) as an unsigned big-endian number; a failed read
    /// consumes nothing.
    pub fn bits(&mut self, n: u32) -> Result<u32, BitError> {
        if n > 32 {
            return Err(BitError::OutOfRange {
                field: "bit count",
                value: u64::from(n),
            });
        }
        if n as usize > self.bits_left() {
            return Err(BitError::Truncated);
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Ok(v as u32)
    }

    /// Skips `n` bits.
    pub fn skip(&mut self, n: usize) -> Result<(), BitError> {
        if n > self.bits_left() {
            return Err(BitError::Truncated);
        }
        self.pos += n;
        Ok(())
    }

    /// Reads an unsigned Exp-Golomb code, `ue(v)`.
    pub fn ue(&mut self) -> Result<u32, BitError> {
        let mut zeros = 0u32;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(BitError::ExpGolombTooLong);
            }
        }
        let rest = u64::from(self.bits(zeros)?);
        // At most 2^31 - 1 + 2^31 - 1, which fits a u32.
        Ok(((1u64 << zeros) - 1 + rest) as u32)
    }

    /// Reads a signed Exp-Golomb code, `se(v)`.
    pub fn se(&mut self) -> Result<i32, BitError> {
        let k = i64::from(self.ue()?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        // |v| <= 2^31 - 1.
        Ok(v as i32)
    }

    /// Reads `ue(v)` and rejects values above `max`, naming the syntax element.
    pub fn ue_max(&mut self, field: &'static str, max: u32) -> Result<u32, BitError> {
        let v = self.ue()?;
        if v > max {
            return Err(BitError::OutOfRange {
                field,
                value: u64::from(v),
            });
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 -> ue 0, 1, 2, 3, se(4) = -2
        let data = [0b1010_0110, 0b0100_0010, 0b1000_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.ue(), Ok(0));
        assert_eq!(r.ue(), Ok(1));
        assert_eq!(r.ue(), Ok(2));
        assert_eq!(r.ue(), Ok(3));
        assert_eq!(r.se(), Ok(-2));
        assert_eq!(r.bits_left(), 7);
        assert_eq!(r.bits(8), Err(BitError::Truncated));
        assert_eq!(
            r.bits(33),
            Err(BitError::OutOfRange {
                field: "bit count",
                value: 33
            })
        );
        // 31 leading zeros is the longest code: 2^32 - 2.
        let max = [0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFE];
        assert_eq!(BitReader::new(&max).ue(), Ok(u32::MAX - 1));
        assert_eq!(BitReader::new(&max).se(), Ok(-(i32::MAX)));
        // 32 zeros: too long.
        assert_eq!(
            BitReader::new(&[0, 0, 0, 0, 0x80]).ue(),
            Err(BitError::ExpGolombTooLong)
        );
        assert_eq!(
            BitReader::new(&[0b0001_1000]).ue_max("x", 6),
            Err(BitError::OutOfRange {
                field: "x",
                value: 11
            })
        );
    }

    #[test]
    fn limited_length() {
        let data = [0xA5, 0xFF];
        let mut r = BitReader::with_len(&data, 12);
        assert_eq!(r.bits_left(), 12);
        assert_eq!(r.bits(8), Ok(0xA5));
        assert_eq!(r.bits(5), Err(BitError::Truncated));
        assert_eq!(r.bits(4), Ok(0xF));
        assert_eq!(r.bits_left(), 0);
        assert_eq!(r.bit(), Err(BitError::Truncated));
        // A limit beyond the data is the data's length.
        let mut r = BitReader::with_len(&data, 100);
        assert_eq!(r.bits_left(), 16);
        assert_eq!(r.skip(17), Err(BitError::Truncated));
        assert_eq!(r.skip(16), Ok(()));
        assert_eq!(BitReader::new(&[]).bits(0), Ok(0));
    }
}
