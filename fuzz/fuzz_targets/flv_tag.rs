#![no_main]
//! Reads FLV tags from arbitrary bytes and feeds audio/video bodies to a `Demuxer`.

use bytes::Bytes;
use corecast::media::flv::{self, Demuxer, FlvHeader, TagType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::copy_from_slice(data);
    let _ = FlvHeader::parse(&buf);
    let mut demux = Demuxer::new();
    let mut pos = 0;
    while let Ok(Some((tag, next))) = flv::read_tag(&buf, pos, 1 << 16) {
        assert!(next > pos && next <= buf.len());
        pos = next;
        let ts = i64::from(tag.timestamp);
        let _ = match tag.tag_type {
            TagType::Video => demux.video(ts, &tag.data),
            TagType::Audio => demux.audio(ts, &tag.data),
            _ => Ok(None),
        };
    }
    let _ = demux.tracks();
});
