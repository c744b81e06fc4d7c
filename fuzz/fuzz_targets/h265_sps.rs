#![no_main]
//! Parses arbitrary bytes as an H.265 SPS NAL unit: errors are fine, panics are not, and
//! a parsed size is never zero.

use corecast::media::h265;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = h265::parse_sps(data) {
        assert!(s.width > 0 && s.height > 0);
    }
    // Also as an SPS whatever the header says.
    let mut nal = Vec::with_capacity(data.len() + 2);
    nal.extend_from_slice(&[0x42, 0x01]);
    nal.extend_from_slice(data);
    if let Ok(s) = h265::parse_sps(&nal) {
        assert!(s.width > 0 && s.height > 0);
    }
});
