use super::*;
use crate::media::h265::nal;
use crate::media::{MediaKind, TrackId};
use crate::rtp::{MAX_PAYLOAD, MAX_PAYLOAD_LIMIT};

/// A hand-made VPS (header 0x40 0x01: type 32, LayerId 0, TID 1).
const VPS: &[u8] = &[
    0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03,
    0x00, 0x00, 0x03, 0x00, 0x5D, 0x95, 0x98, 0x09,
];
/// A hand-made SPS (header 0x42 0x01: type 33).
const SPS: &[u8] = &[
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x5D, 0xA0, 0x02, 0x80, 0x80, 0x2D, 0x16, 0x59, 0x59, 0xA4, 0x93, 0x2B, 0xC0, 0x40,
];
/// A hand-made PPS (header 0x44 0x01: type 34).
const PPS: &[u8] = &[0x44, 0x01, 0xC1, 0x72, 0xB4, 0x62, 0x40];
/// An access unit delimiter (type 35, pic_type 2).
const AUD: &[u8] = &[0x46, 0x01, 0x50];

/// First header byte of a unit of type `kind` (F 0, LayerId high bit 0).
const fn h0(kind: u8) -> u8 {
    kind << 1
}

fn track() -> Track {
    let mut t = Track::new(TrackId(0), Codec::H265, 90_000);
    t.params.vps = vec![Bytes::from_static(VPS)];
    t.params.sps = vec![Bytes::from_static(SPS)];
    t.params.pps = vec![Bytes::from_static(PPS)];
    t
}

/// A NAL unit: `header` then `len - 2` bytes of a pattern.
fn nal(header: [u8; 2], len: usize) -> Vec<u8> {
    let mut v = header.to_vec();
    v.extend((2..len).map(|i| (i * 7 + 3) as u8));
    v
}

/// A unit of type `kind`, LayerId 0, TID 1.
fn unit(kind: u8, len: usize) -> Vec<u8> {
    nal([h0(kind), 0x01], len)
}

fn hvcc(units: &[&[u8]]) -> Bytes {
    let mut out = Vec::new();
    for u in units {
        out.extend_from_slice(&(u.len() as u32).to_be_bytes());
        out.extend_from_slice(u);
    }
    Bytes::from(out)
}

fn video(keyframe: bool, pts: i64, units: &[&[u8]]) -> Frame {
    Frame {
        track: TrackId(0),
        kind: MediaKind::Video,
        keyframe,
        dts: pts,
        pts,
        data: hvcc(units),
    }
}

fn depack(p: &PacketizedFrame) -> Vec<Vec<u8>> {
    let refs: Vec<&[u8]> = p.payloads.iter().map(|p| &p.data[..]).collect();
    depacketize_h265(&refs).unwrap()
}

fn params() -> Vec<Vec<u8>> {
    vec![VPS.to_vec(), SPS.to_vec(), PPS.to_vec()]
}

/// Payload sizes within `max`, marker on the last payload only.
fn check_shape(p: &PacketizedFrame, max: usize) {
    assert!(!p.payloads.is_empty());
    for (i, pl) in p.payloads.iter().enumerate() {
        assert!(
            pl.data.len() <= max,
            "payload {i}: {} > {max}",
            pl.data.len()
        );
        assert_eq!(
            pl.marker,
            i + 1 == p.payloads.len(),
            "marker on payload {i}"
        );
    }
}

/// The FU payloads of `p` have one size per fragmented unit, but the last, which may be
/// shorter (by less than the number of fragments).
fn check_fragments(p: &PacketizedFrame) {
    let mut sizes = Vec::new();
    for pl in &p.payloads {
        let is_fu = nal_type([pl.data[0], pl.data[1]]) == FU;
        if is_fu {
            if pl.data[2] & FU_S != 0 {
                sizes.clear();
            }
            sizes.push(pl.data.len());
            if pl.data[2] & FU_E != 0 {
                let (last, rest) = sizes.split_last().unwrap();
                assert!(rest.iter().all(|n| n == &rest[0]), "{sizes:?}");
                assert!(
                    last <= &rest[0] && rest[0] - last < sizes.len(),
                    "{sizes:?}"
                );
                assert!(sizes.len() >= 2, "an FU must not carry a whole unit");
            }
        }
    }
}

#[test]
fn single_nal_unit_packet_is_the_unit() {
    let slice = [0x02, 0x01, 0xAF, 0x12, 0x34];
    let p = packetize_h265(&track(), &video(false, 4500, &[&slice]), MAX_PAYLOAD).unwrap();
    assert!(!p.keyframe);
    assert_eq!(p.rtp_time, 4500);
    assert_eq!(p.payloads.len(), 1);
    assert_eq!(&p.payloads[0].data[..], &slice[..]);
    assert!(p.payloads[0].marker);

    // A unit of exactly max bytes is still a single packet.
    let big = unit(1, MAX_PAYLOAD);
    let p = packetize_h265(&track(), &video(false, 0, &[&big]), MAX_PAYLOAD).unwrap();
    assert_eq!(p.payloads.len(), 1);
    assert_eq!(&p.payloads[0].data[..], &big[..]);
}

#[test]
fn parameter_sets_aggregate_into_one_ap() {
    let idr = unit(19, 1190);
    let frame = video(false, 3000, &[AUD, &idr]);
    let p = packetize_h265(&track(), &frame, MAX_PAYLOAD).unwrap();
    assert!(
        p.keyframe,
        "an IDR_W_RADL makes a keyframe even if unflagged"
    );
    assert_eq!(p.rtp_time, 3000);
    assert_eq!(p.payloads.len(), 2);
    check_shape(&p, MAX_PAYLOAD);
    // PayloadHdr: F 0, type 48, LayerId 0, TID 1.
    let mut ap = vec![0x60, 0x01, 0x00, 0x18];
    ap.extend_from_slice(VPS);
    ap.extend_from_slice(&[0x00, 0x1F]);
    ap.extend_from_slice(SPS);
    ap.extend_from_slice(&[0x00, 0x07]);
    ap.extend_from_slice(PPS);
    assert_eq!(&p.payloads[0].data[..], &ap[..]);
    assert_eq!(&p.payloads[1].data[..], &idr[..]);
    let mut want = params();
    want.push(idr);
    assert_eq!(depack(&p), want);
}

#[test]
fn ap_header_takes_or_of_f_and_lowest_layer_and_tid() {
    // LayerId 1, TID 3.
    let a = [h0(1), 0x0B, 0xAA];
    // F set, LayerId 32, TID 2.
    let b = [HDR_F | h0(1) | 0x01, 0x02, 0xBB, 0xCC];
    let p = packetize_h265(&track(), &video(false, 0, &[&a, &b]), MAX_PAYLOAD).unwrap();
    assert_eq!(
        &p.payloads[0].data[..],
        &[
            0xE0, 0x0A, 0x00, 0x03, 0x02, 0x0B, 0xAA, 0x00, 0x04, 0x83, 0x02, 0xBB, 0xCC
        ]
    );
    assert_eq!(depack(&p), [a.to_vec(), b.to_vec()]);
    // LayerId 63 and 33: the high bit of the lowest lands in the first byte.
    let (c, d) = ([h0(1) | 0x01, 0xF9], [h0(1) | 0x01, 0x0F]);
    let p = packetize_h265(&track(), &video(false, 0, &[&c, &d]), MAX_PAYLOAD).unwrap();
    assert_eq!(&p.payloads[0].data[..2], &[0x61, 0x09]);
}

#[test]
fn large_unit_is_fragmented_into_equal_fus_but_a_shorter_last() {
    let idr = unit(19, 5000);
    let p = packetize_h265(&track(), &video(true, 0, &[&idr]), MAX_PAYLOAD).unwrap();
    check_shape(&p, MAX_PAYLOAD);
    assert_eq!(
        &p.payloads[0].data[..2],
        &[0x60, 0x01],
        "parameter-set AP first"
    );
    let frags = &p.payloads[1..];
    // 4998 bytes after the header, at most 1197 per fragment: 4 of 1000 and one of 998.
    assert_eq!(frags.len(), 5);
    let mut body = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(
            &f.data[..2],
            &[0x62, 0x01],
            "PayloadHdr: type 49, LayerId 0, TID 1"
        );
        let (s, e) = (i == 0, i + 1 == frags.len());
        let want = 19 | if s { FU_S } else { 0 } | if e { FU_E } else { 0 };
        assert_eq!(f.data[2], want, "FU header of fragment {i}");
        body.extend_from_slice(&f.data[3..]);
    }
    assert_eq!(&body[..], &idr[2..]);
    let sizes: Vec<usize> = frags.iter().map(|f| f.data.len()).collect();
    assert_eq!(sizes, [1003, 1003, 1003, 1003, 1001]);
    let mut want = params();
    want.push(idr);
    assert_eq!(depack(&p), want);

    // F, LayerId and TID are kept in the PayloadHdr.
    let layered = nal([HDR_F | h0(1) | 0x01, 0x0A], 2000);
    let p = packetize_h265(&track(), &video(false, 0, &[&layered]), MAX_PAYLOAD).unwrap();
    assert_eq!(p.payloads.len(), 2);
    assert_eq!(&p.payloads[0].data[..3], &[0xE3, 0x0A, 0x81]);
    assert_eq!(&p.payloads[1].data[..3], &[0xE3, 0x0A, 0x41]);
    assert_eq!(depack(&p), [layered]);
}

#[test]
fn in_band_params_are_not_duplicated() {
    // Different bytes from the track's, so a duplicate would show.
    let (vps, sps, pps) = (unit(32, 20), unit(33, 30), unit(34, 6));
    let cra = unit(21, 2000);
    let frame = video(false, 0, &[AUD, &vps, &sps, &pps, &cra]);
    let p = packetize_h265(&track(), &frame, MAX_PAYLOAD).unwrap();
    assert!(p.keyframe, "CRA is IRAP");
    assert_eq!(
        depack(&p),
        [vps.clone(), sps.clone(), pps.clone(), cra.clone()]
    );

    // Only some in-band: the track's three go first.
    let p = packetize_h265(&track(), &video(true, 0, &[&sps, &pps, &cra]), MAX_PAYLOAD).unwrap();
    let mut want = params();
    want.extend([sps.clone(), pps.clone(), cra.clone()]);
    assert_eq!(depack(&p), want);

    // A flagged keyframe without IRAP (recovery point) also gets them.
    let trail = unit(1, 100);
    let p = packetize_h265(&track(), &video(true, 0, &[&trail]), MAX_PAYLOAD).unwrap();
    assert!(p.keyframe);
    let mut want = params();
    want.push(trail.clone());
    assert_eq!(depack(&p), want);

    // Non-keyframes get none, even unflagged.
    let p = packetize_h265(&track(), &video(false, 0, &[&trail]), MAX_PAYLOAD).unwrap();
    assert!(!p.keyframe);
    assert_eq!(depack(&p), [trail]);

    // A track without VPS needs only SPS and PPS in-band.
    let mut no_vps = track();
    no_vps.params.vps.clear();
    let p = packetize_h265(&no_vps, &video(true, 0, &[&sps, &pps, &cra]), MAX_PAYLOAD).unwrap();
    assert_eq!(depack(&p), [sps, pps, cra.clone()]);

    // A track without parameter sets adds nothing.
    let bare = Track::new(TrackId(0), Codec::H265, 90_000);
    let p = packetize_h265(&bare, &video(true, 0, &[&cra]), MAX_PAYLOAD).unwrap();
    assert_eq!(depack(&p), [cra]);
}

#[test]
fn aud_filler_and_reserved_types_are_dropped() {
    let slice = unit(1, 50);
    let frame = video(
        false,
        0,
        &[
            AUD,
            &[],
            &[0x02],
            &slice,
            &unit(38, 5),
            &unit(48, 6),
            &unit(49, 6),
            &unit(50, 6),
            &unit(63, 6),
            &[0x02, 0x00, 0x11],
        ],
    );
    let p = packetize_h265(&track(), &frame, MAX_PAYLOAD).unwrap();
    assert_eq!(p.payloads.len(), 1);
    assert_eq!(&p.payloads[0].data[..], &slice[..]);

    assert_eq!(
        packetize_h265(&track(), &video(true, 0, &[AUD]), MAX_PAYLOAD),
        Err(RtpError::NoNalUnits)
    );
    assert_eq!(
        packetize_h265(&track(), &video(false, 0, &[]), MAX_PAYLOAD),
        Err(RtpError::EmptyFrame)
    );
    // Reserved types below 48 and header-only units are sent.
    let (rsv, eos) = (unit(41, 3), unit(36, 2));
    let p = packetize_h265(&track(), &video(false, 0, &[&rsv, &eos]), MAX_PAYLOAD).unwrap();
    assert_eq!(depack(&p), [rsv, eos]);
}

#[test]
fn truncated_hvcc_is_an_error() {
    let idr = unit(19, 3000);
    let frame = video(true, 0, &[AUD, &idr]);
    // Every proper prefix of the payload but the lone AUD (7 bytes, no sendable unit)
    // is malformed: error, never a panic.
    for cut in (1..frame.data.len()).filter(|c| *c != 7) {
        let mut f = frame.clone();
        f.data = frame.data.slice(..cut);
        let r = packetize_h265(&track(), &f, MAX_PAYLOAD);
        let offset = if cut < 7 { 0 } else { 7 };
        assert_eq!(r, Err(RtpError::Truncated { offset }), "cut at {cut}");
    }
    // A length prefix far past the end, and one near u32::MAX.
    for prefix in [[0x00, 0x00, 0x10, 0x00], [0xFF, 0xFF, 0xFF, 0xFF]] {
        let mut data = prefix.to_vec();
        data.extend_from_slice(&[0x26, 0x01, 0x88]);
        let mut f = frame.clone();
        f.data = Bytes::from(data);
        assert_eq!(
            packetize_h265(&track(), &f, MAX_PAYLOAD),
            Err(RtpError::Truncated { offset: 0 })
        );
    }
}

#[test]
fn max_payload_edges() {
    let max = MAX_PAYLOAD;
    // One byte over max: two FUs of (max + 1 - 2) / 2 bytes rounded, plus headers.
    let big = unit(1, max + 1);
    let p = packetize_h265(&track(), &video(false, 0, &[&big]), max).unwrap();
    assert_eq!(p.payloads.len(), 2);
    assert_eq!(&p.payloads[0].data[..3], &[0x62, 0x01, 0x81]);
    assert_eq!(&p.payloads[1].data[..3], &[0x62, 0x01, 0x41]);
    let sizes: Vec<usize> = p.payloads.iter().map(|pl| pl.data.len()).collect();
    assert_eq!(sizes, [3 + 600, 3 + 599]);
    assert_eq!(depack(&p), [big]);
    // An AP filling max exactly, and one byte too many.
    let a = unit(39, 100);
    let b = unit(1, max - 2 - 2 - 100 - 2);
    let p = packetize_h265(&track(), &video(false, 0, &[&a, &b]), max).unwrap();
    assert_eq!(p.payloads.len(), 1);
    assert_eq!(p.payloads[0].data.len(), max);
    let b = unit(1, max - 2 - 2 - 100 - 2 + 1);
    let p = packetize_h265(&track(), &video(false, 0, &[&a, &b]), max).unwrap();
    assert_eq!(p.payloads.len(), 2);
    assert_eq!(depack(&p), [a, b]);
    // The smallest max: one byte per fragment.
    let five = unit(1, 5);
    let p = packetize_h265(&track(), &video(false, 0, &[&five]), 4).unwrap();
    assert_eq!(p.payloads.len(), 3);
    check_shape(&p, 4);
    assert_eq!(depack(&p), [five]);
}

#[test]
fn limits_and_codec_are_checked() {
    let f = video(false, 0, &[&unit(1, 10)]);
    for bad in [0, 2, 3, MAX_PAYLOAD_LIMIT + 1, usize::MAX] {
        assert_eq!(
            packetize_h265(&track(), &f, bad),
            Err(RtpError::MaxPayloadOutOfRange(bad))
        );
    }
    assert!(packetize_h265(&track(), &f, MAX_PAYLOAD_LIMIT).is_ok());
    let huge = unit(1, 20_000);
    assert_eq!(
        packetize_h265(&track(), &video(false, 0, &[&huge]), 4),
        Err(RtpError::TooManyPayloads(19_998))
    );
    // The parameter sets count too: 16 384 fragments alone fit, not with them.
    let edge = unit(1, 2 + 0x4000);
    let p = packetize_h265(&track(), &video(false, 0, &[&edge]), 4).unwrap();
    assert_eq!(p.payloads.len(), 0x4000);
    assert_eq!(
        packetize_h265(&track(), &video(true, 0, &[&edge]), 4),
        Err(RtpError::TooManyPayloads(0x4000 + 22 + 29 + 5))
    );
    let mut h264 = track();
    h264.codec = Codec::H264;
    assert_eq!(
        packetize_h265(&h264, &f, MAX_PAYLOAD),
        Err(RtpError::UnsupportedCodec(Codec::H264))
    );
    // RTP time wraps to 32 bits.
    let mut late = f.clone();
    late.pts = 0x1_0000_0000 + 90;
    assert_eq!(
        packetize_h265(&track(), &late, MAX_PAYLOAD)
            .unwrap()
            .rtp_time,
        90
    );
}

#[test]
fn every_size_round_trips_at_every_max() {
    for max in [4, 5, 6, 7, 10, 33, 100, 1200] {
        for len in 2..=(3 * max + 10).min(700) {
            let u = nal([h0(1), 0x01], len);
            let p = packetize_h265(&track(), &video(false, 0, &[&u]), max).unwrap();
            check_shape(&p, max);
            check_fragments(&p);
            let want_count = if len <= max {
                1
            } else {
                (len - 2).div_ceil(max - 3)
            };
            assert_eq!(p.payloads.len(), want_count, "len {len}, max {max}");
            assert_eq!(depack(&p), std::slice::from_ref(&u), "len {len}, max {max}");
            // The same unit after a small one: aggregated or not, still intact.
            let small = unit(39, 2);
            let p = packetize_h265(&track(), &video(false, 0, &[&small, &u]), max).unwrap();
            check_shape(&p, max);
            assert_eq!(depack(&p), [small, u], "len {len}, max {max}");
        }
    }
}

/// xorshift64*: deterministic test randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_units_round_trip() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..400 {
        let max = [MAX_PAYLOAD, 4, 5, 50, 1500, MAX_PAYLOAD_LIMIT][round % 6];
        // At most 3 units of 5000 bytes when every fragment carries one byte, to stay
        // under MAX_PAYLOADS_PER_FRAME.
        let count = 1 + rng.below(if max < 10 { 3 } else { 8 }) as usize;
        let units: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let len = 2 + rng.below(5000) as usize;
                let kind = loop {
                    let k = rng.below(48) as u8;
                    if k != nal::AUD && k != nal::FILLER {
                        break k;
                    }
                };
                let f = if rng.below(16) == 0 { HDR_F } else { 0 };
                let layer = rng.below(64) as u8;
                let tid = 1 + rng.below(7) as u8;
                let mut u = vec![f | (kind << 1) | (layer >> 5), ((layer & 0x1F) << 3) | tid];
                u.extend((2..len).map(|_| rng.next() as u8));
                u
            })
            .collect();
        let refs: Vec<&[u8]> = units.iter().map(|u| &u[..]).collect();
        let frame = video(rng.below(4) == 0, round as i64 * 3000, &refs);
        let p = packetize_h265(&track(), &frame, max).unwrap();
        check_shape(&p, max);
        check_fragments(&p);
        let has = |t: u8| units.iter().any(|u| nal_type([u[0], u[1]]) == t);
        let irap = units
            .iter()
            .any(|u| (16..=23).contains(&nal_type([u[0], u[1]])));
        assert_eq!(p.keyframe, frame.keyframe || irap);
        let mut want = Vec::new();
        if p.keyframe && !(has(nal::VPS) && has(nal::SPS) && has(nal::PPS)) {
            want.extend(params());
        }
        want.extend(units);
        assert_eq!(depack(&p), want, "round {round}, max {max}");
    }
}

#[test]
fn depacketizer_rejects_malformed_sequences() {
    let bad: [&[&[u8]]; 19] = [
        &[&[]],
        &[&[0x02]],
        &[&[0x02, 0x00, 0x11]],
        &[&[0x60, 0x01]],
        &[&[0x60, 0x01, 0x00]],
        &[&[0x60, 0x01, 0x00, 0x05, 0x02, 0x01]],
        &[&[0x60, 0x01, 0x00, 0x02, 0x02, 0x01]],
        &[&[0x60, 0x01, 0x00, 0x01, 0x02, 0x00, 0x02, 0x02, 0x01]],
        &[&[0x60, 0x01, 0x00, 0x02, 0x60, 0x01, 0x00, 0x02, 0x02, 0x01]],
        &[&[0x62, 0x01]],
        &[&[0x62, 0x01, 0x41, 0xAA]],
        &[&[0x62, 0x01, 0xC1, 0xAA]],
        &[&[0x62, 0x01, 0xB0, 0xAA]],
        &[&[0x62, 0x01, 0x81, 0xAA]],
        &[&[0x62, 0x01, 0x81, 0xAA], &[0x62, 0x01, 0x81, 0xBB]],
        &[&[0x62, 0x01, 0x81, 0xAA], &[0x62, 0x02, 0x41, 0xBB]],
        &[&[0x62, 0x01, 0x81, 0xAA], &[0x02, 0x01, 0xBB]],
        &[&[0x64, 0x01, 0x00]],
        &[&[0x7E, 0x01, 0x00]],
    ];
    for payloads in bad {
        assert!(
            matches!(depacketize_h265(payloads), Err(RtpError::Malformed(_))),
            "{payloads:?}"
        );
    }
    assert_eq!(
        depacketize_h265(&[
            &[0x62, 0x01, 0x93, 0x01],
            &[0x62, 0x01, 0x13, 0x02],
            &[0x62, 0x01, 0x53, 0x03],
            &[
                0x60, 0x01, 0x00, 0x02, 0x4E, 0x01, 0x00, 0x03, 0x02, 0x01, 0xAA
            ],
        ]),
        Ok(vec![
            vec![0x26, 0x01, 0x01, 0x02, 0x03],
            vec![0x4E, 0x01],
            vec![0x02, 0x01, 0xAA],
        ])
    );
}
