#![no_main]
//! Feeds arbitrary bytes, in pieces whose sizes the input chooses, to the RTSP response /
//! interleaved-frame reader: errors are fine, panics and unbounded buffering are not.

use bytes::BytesMut;
use corecast::rtsp::proto::message::{Limits, Reader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_head: 512,
        max_headers: 8,
        max_body: 1024,
    };
    let mut r = Reader::new(limits);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(usize::from(step).max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match r.read(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Whatever waits is at most one head, one body or one frame.
        assert!(buf.len() <= limits.max_head + limits.max_body + 4 + 65_535 + 256);
    }
});
