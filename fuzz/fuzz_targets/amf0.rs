#![no_main]
//! Decodes arbitrary bytes as AMF0 values; what decodes must re-encode stably.

use corecast::rtmp::proto::amf0;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    // Encoding normalises (lossy UTF-8, long strings), so compare the second round trip.
    let once = amf0::encode_all(&values);
    let again = amf0::decode_all(&once).expect("re-encoded values decode");
    assert_eq!(amf0::encode_all(&again), once);
});
