#![no_main]
//! Splits arbitrary bytes into RTP payloads and depacketizes them as H.264 (RFC 6184) and
//! H.265 (RFC 7798): malformed payloads are errors, never panics.

use corecast::rtp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Payload boundaries: a 0xFF byte followed by one more ends a payload.
    let payloads: Vec<&[u8]> = data.split(|b| *b == 0xFF).take(64).collect();
    let _ = rtp::depacketize_h264(&payloads);
    let _ = rtp::depacketize_h265(&payloads);
});
