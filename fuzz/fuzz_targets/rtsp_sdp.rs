#![no_main]
//! Reads arbitrary bytes as a camera's DESCRIBE body and maps every media section to a
//! track, as the RTSP session does: errors and skipped sections are fine, panics are not.
//! Usable tracks are numbered in order, with a clock and an absolute control URL.

use corecast::rtsp::proto::sdp::{MAX_MEDIA, Sdp};
use corecast::rtsp::proto::url;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse(data) else {
        return;
    };
    assert!(sdp.media.len() <= MAX_MEDIA);
    let base = match &sdp.control {
        Some(c) if url::is_absolute(c) => c.clone(),
        _ => "rtsp://192.0.2.1:554/stream/".to_string(),
    };
    let (tracks, skipped) = sdp.setup_tracks(&base);
    assert_eq!(tracks.len() + skipped.len(), sdp.media.len());
    for (i, t) in tracks.iter().enumerate() {
        assert_eq!(usize::from(t.track.id.0), i);
        assert!(t.track.clock_rate > 0);
        assert!(url::is_absolute(&t.control), "{:?}", t.control);
    }
});
