#![no_main]
//! Reads arbitrary text as a viewer's SDP offer and matches it against a stream with
//! H.264, AAC and PCMA tracks: never panics, and a selection only names offered types.

use bytes::Bytes;
use corecast::media::{Codec, Track, TrackId};
use corecast::webrtc::offer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(media) = offer::parse_offer(text) else {
        return;
    };
    let mut video = Track::new(TrackId(0), Codec::H264, 90_000);
    video.params.sps = vec![Bytes::from_static(&[0x67, 0x4d, 0x00, 0x1f])];
    let tracks = [
        video,
        Track::new(TrackId(1), Codec::Aac, 44_100),
        Track::new(TrackId(2), Codec::Pcma, 8000),
    ];
    if let Ok(sel) = offer::select(&media, &tracks) {
        for c in &sel.send {
            assert!(media[c.media].codecs.iter().any(|o| o.pt == c.offered.pt));
        }
    }
});
