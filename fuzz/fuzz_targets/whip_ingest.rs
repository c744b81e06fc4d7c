#![no_main]
//! A WHIP publisher's receive path after str0m (which has already decrypted the SRTP and
//! unwrapped retransmissions): arbitrary bytes split into length-prefixed records, each
//! parsed as an RTP packet and pushed into a publisher's tracks (H.264 on payload type
//! 102, Opus on 111, both taken from one offer) at a time steered by the record. No
//! panic; every frame within the frame limit; the frames out bounded by the packets in.

use bytes::Bytes;
use corecast::media::Codec;
use corecast::rtp::depack::RtpPacket;
use corecast::webrtc::ingest::{Produced, Receiver};
use corecast::webrtc::offer::{OfferedCodec, Take};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

/// Frame limit for the run: small, so that the limit is reached.
const MAX_FRAME: usize = 0x4000;
/// Records per input.
const MAX_RECORDS: usize = 0x200;

fn take(media: usize, codec: Codec, pt: u8, name: &str, clock_rate: u32) -> Take {
    Take {
        media,
        codec,
        offered: OfferedCodec {
            pt,
            name: name.into(),
            clock_rate,
            channels: None,
            fmtp: Vec::new(),
            rtx: None,
        },
    }
}

fuzz_target!(|data: &[u8]| {
    let takes = [
        take(0, Codec::H264, 102, "H264", 90_000),
        take(1, Codec::Opus, 111, "OPUS", 48_000),
    ];
    let mids = [Some("0".to_string()), Some("1".to_string())];
    let mut rx = Receiver::new(&takes, &mids, MAX_FRAME);
    let mut rest = data;
    let mut at = Duration::ZERO;
    let mut packets = 0u64;
    let mut frames = 0u64;
    for _ in 0..MAX_RECORDS {
        let Some((head, tail)) = rest.split_first_chunk::<3>() else {
            break;
        };
        let [step, hi, lo] = *head;
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(tail.len());
        let (record, tail) = tail.split_at(len);
        rest = tail;
        at += Duration::from_millis(u64::from(step));
        let Ok(pkt) = RtpPacket::parse(Bytes::copy_from_slice(record)) else {
            continue;
        };
        packets += 1;
        let _ = rx.push(at, &pkt);
        while let Some(p) = rx.poll() {
            if let Produced::Frame(f) = p {
                assert!(f.data.len() <= MAX_FRAME, "frame over the limit");
                frames += 1;
            }
        }
    }
    // Every frame needs at least one packet (a STAP-A may hold several access units'
    // worth of NAL units only within one timestamp: still one frame per packet at most).
    assert!(frames <= packets, "{frames} frames from {packets} packets");
});
