#![no_main]
//! Splits arbitrary bytes into length-prefixed records and feeds them to the ingest
//! depacketizers (H.264, and from the same input H.265 and AAC-hbr): as whole RTP
//! packets through `RtpPacket::parse`, and as payloads under a header steered by the
//! record's first byte (marker, sequence step, timestamp step), so that loss, reordering
//! and timestamp changes are reached without a valid RTP header. No panic; every frame
//! within the frame limit, and output bytes bounded by input bytes.

use bytes::Bytes;
use corecast::media::TrackId;
use corecast::rtp::depack::{DepackConfig, DepackOutput, Depacketizer, RtpPacket};
use libfuzzer_sys::fuzz_target;

/// Frame limit for the run: small, so that the limit is reached.
const MAX_FRAME: usize = 0x4000;
/// Records per input.
const MAX_RECORDS: usize = 0x200;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let aac = DepackConfig::Aac {
        size_length: 13,
        index_length: 3,
        index_delta_length: 3,
    };
    let window = usize::from(flags & 0x0F);
    let mut depacks: Vec<Depacketizer> = [DepackConfig::H264, DepackConfig::H265, aac]
        .into_iter()
        .map(|c| {
            Depacketizer::new(c, TrackId(0), 90_000)
                .with_max_frame(MAX_FRAME)
                .with_reorder_window(window)
        })
        .collect();
    let mut out = Vec::new();
    let (mut seq, mut ts) = (0xFFF0u16, 0xFFFF_0000u32);
    let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
    for _ in 0..MAX_RECORDS {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (record, tail) = tail.split_at(len);
        rest = tail;
        let Some((&steer, payload)) = record.split_first() else {
            continue;
        };
        // Sequence step -1, 0 (duplicate), 1, or a gap of 2..=5; timestamp step 0, one
        // frame, a tiny step back, or a large jump.
        seq = seq.wrapping_add(match steer >> 1 & 0x07 {
            0 => u16::MAX,
            k => u16::from(k) - 1,
        });
        ts = ts.wrapping_add(match steer >> 4 & 0x03 {
            0 => 0,
            1 => 3000,
            2 => 0xFFFF_FC18,
            _ => 0x0100_0000,
        });
        let steered = RtpPacket {
            payload_type: 96,
            marker: steer & 1 != 0,
            sequence: seq,
            timestamp: ts,
            ssrc: if steer & 0x80 != 0 { 1 } else { 2 },
            payload: Bytes::copy_from_slice(payload),
        };
        let parsed = RtpPacket::parse(Bytes::copy_from_slice(record)).ok();
        for pkt in std::iter::once(&steered).chain(parsed.as_ref()) {
            bytes_in += pkt.payload.len();
            for d in &mut depacks {
                d.push(pkt, &mut out);
            }
        }
        if steer == 0x40 {
            for d in &mut depacks {
                d.flush(&mut out);
                let at = d.next_time().unwrap_or(0);
                d.restart(at);
            }
        }
        for o in out.drain(..) {
            if let DepackOutput::Frame(f) = o {
                assert!(f.data.len() <= MAX_FRAME, "frame of {} bytes", f.data.len());
                bytes_out += f.data.len();
            }
        }
    }
    for d in &mut depacks {
        d.flush(&mut out);
    }
    for o in out.drain(..) {
        if let DepackOutput::Frame(f) = o {
            bytes_out += f.data.len();
        }
    }
    // H.264 turns a payload byte into at most 5 (a 1-byte NAL unit gets a 4-byte AVCC
    // prefix), H.265 into at most 3 (2-byte header), AAC into at most 1 (zero-copy).
    assert!(
        bytes_out <= (5 + 3 + 1) * bytes_in,
        "{bytes_out} bytes out for {bytes_in} in"
    );
});
