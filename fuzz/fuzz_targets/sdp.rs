#![no_main]
//! Reads arbitrary bytes as a session description with the one SDP reader: never panics,
//! every list stays within its bound, and what it keeps is what the text said.

use corecast::sdp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(session) = sdp::parse(data) else {
        return;
    };
    assert!(session.media.len() <= sdp::MAX_MEDIA);
    assert!(session.attributes.len() <= sdp::MAX_ATTRIBUTES);
    for m in &session.media {
        assert!(m.formats.len() <= sdp::MAX_FORMATS);
        assert!(m.rtpmaps.len() <= sdp::MAX_RTPMAPS);
        assert!(m.fmtps.len() <= sdp::MAX_FMTPS);
        assert!(m.attributes.len() <= sdp::MAX_ATTRIBUTES);
        assert!(m.mid.as_ref().is_none_or(|mid| mid.chars().count() <= sdp::MAX_MID));
        for map in &m.rtpmaps {
            assert!(!map.encoding.is_empty());
            assert_eq!(m.rtpmap(map.payload_type).map(|r| r.payload_type), Some(map.payload_type));
        }
        for f in &m.fmtps {
            assert!(f.params.len() <= sdp::MAX_FMTP_PARAMS);
            for (k, _) in &f.params {
                assert_eq!(*k, k.to_ascii_lowercase());
            }
        }
    }
});
