#![no_main]
//! Drives an MSE viewer (and so the fMP4 muxer) with arbitrary page messages and stream
//! events: frames with arbitrary timestamps, keyframe flags and payloads, new tracks,
//! ends. Nothing may panic, and every binary message is a whole box sequence.

use bytes::Bytes;
use corecast::http::mse::{MseOutput, MseViewer};
use corecast::media::{Codec, Frame, MediaKind, Track, TrackId};
use corecast::stream::{OutFrame, SinkEvent};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

/// An x264 High SPS (320x240) and a PPS.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
/// AAC-LC, 48 kHz, stereo.
const ASC: &[u8] = &[0x11, 0x90];

fn tracks() -> Arc<[Track]> {
    let mut v = Track::new(TrackId(0), Codec::H264, 90_000);
    v.params.sps = vec![Bytes::from_static(SPS)];
    v.params.pps = vec![Bytes::from_static(PPS)];
    v.apply_params();
    let mut a = Track::new(TrackId(1), Codec::Aac, 48_000);
    a.channels = Some(2);
    a.params.audio_config = Some(Bytes::from_static(ASC));
    Arc::from(vec![v, a])
}

/// Checks that a binary message is a sequence of boxes whose sizes add up.
fn whole_boxes(b: &[u8]) {
    let mut at = 0usize;
    while at < b.len() {
        let size = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8 && at + size <= b.len(), "box size {size} at {at} of {}", b.len());
        at += size;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut v = MseViewer::new("fuzz");
    let mut out = Vec::new();
    v.handle_event(SinkEvent::Tracks(tracks()), &mut out);
    let mut dts = [0i64; 2];
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 6 {
            0 => {
                let n = rest.first().map_or(0, |&n| usize::from(n)).min(rest.len().saturating_sub(1));
                let text = String::from_utf8_lossy(rest.get(1..1 + n).unwrap_or_default());
                v.handle_text(&text, &mut out);
                rest = rest.get(1 + n..).unwrap_or_default();
            }
            1 if op > 250 => v.handle_binary(&mut out),
            2 | 3 => {
                let Some(p) = rest.get(..6) else { break };
                let track = usize::from(op % 6 == 3);
                let step = i64::from(i16::from_be_bytes([p[0], p[1]])) * 100;
                let cts = i64::from(i16::from_be_bytes([p[2], p[3]])) * 10;
                let len = usize::from(p[4]);
                dts[track] = dts[track].wrapping_add(step);
                let body = rest.get(6..6 + len.min(rest.len() - 6)).unwrap_or_default();
                let mut payload = Vec::with_capacity(body.len() + 4);
                payload.extend_from_slice(&(body.len() as u32).to_be_bytes());
                payload.extend_from_slice(body);
                let frame = Frame {
                    track: TrackId(track as u8),
                    kind: if track == 0 { MediaKind::Video } else { MediaKind::Audio },
                    keyframe: p[5] & 1 == 1,
                    dts: dts[track],
                    pts: dts[track].saturating_add(cts),
                    data: Bytes::from(payload),
                };
                v.handle_event(SinkEvent::Frame(OutFrame::new(frame)), &mut out);
                rest = rest.get(6 + body.len()..).unwrap_or_default();
            }
            4 => v.handle_event(SinkEvent::End, &mut out),
            _ => v.handle_event(SinkEvent::Tracks(tracks()), &mut out),
        }
        for o in out.drain(..) {
            match o {
                MseOutput::Binary(b) => whole_boxes(&b),
                MseOutput::Fragment(f) => whole_boxes(&f.to_bytes()),
                _ => {}
            }
        }
    }
});
