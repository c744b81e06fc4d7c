#![no_main]
//! Parses arbitrary bytes as an SPS NAL unit and as an AVC decoder configuration record.

use bytes::Bytes;
use corecast::media::h264::{self, AvcConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = h264::parse_sps(data);
    // Also as an SPS whatever the first byte says.
    let mut nal = Vec::with_capacity(data.len() + 1);
    nal.push(h264::nal::SPS);
    nal.extend_from_slice(data);
    let _ = h264::parse_sps(&nal);
    if let Ok(cfg) = AvcConfig::parse(&Bytes::copy_from_slice(data)) {
        let again = AvcConfig::parse(&cfg.to_bytes());
        assert_eq!(again.as_ref(), Ok(&cfg));
    }
});
