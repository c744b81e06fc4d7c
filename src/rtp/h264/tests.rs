use super::*;
use crate::media::clip::Clip;
use crate::media::flv::{DemuxOutput, Demuxer, TagType};
use crate::media::{MediaKind, TrackId};
use crate::rtp::{MAX_PAYLOAD, MAX_PAYLOAD_LIMIT};

/// x264 `-profile:v baseline` SPS, 1280x720 at 30 fps.
const SPS: &[u8] = &[
    0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83, 0x24, 0x80,
];
/// The PPS x264 wrote with that SPS.
const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];
/// An access unit delimiter (primary_pic_type 7).
const AUD: &[u8] = &[0x09, 0xF0];

fn track() -> Track {
    let mut t = Track::new(TrackId(0), Codec::H264, 90_000);
    t.params.sps = vec![Bytes::from_static(SPS)];
    t.params.pps = vec![Bytes::from_static(PPS)];
    t
}

/// A NAL unit: `header` then `len - 1` bytes of a pattern.
fn nal(header: u8, len: usize) -> Vec<u8> {
    let mut v = vec![header];
    v.extend((1..len).map(|i| (i * 7 + 3) as u8));
    v
}

fn avcc(units: &[&[u8]]) -> Bytes {
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
        data: avcc(units),
    }
}

fn depack(p: &PacketizedFrame) -> Vec<Vec<u8>> {
    let refs: Vec<&[u8]> = p.payloads.iter().map(|p| &p.data[..]).collect();
    depacketize_h264(&refs).unwrap()
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

#[test]
fn small_idr_gets_track_params_in_stap_a() {
    let idr = nal(0x65, 1190);
    let frame = video(true, 3000, &[AUD, &idr]);
    let p = packetize_h264(&track(), &frame, MAX_PAYLOAD).unwrap();
    assert!(p.keyframe);
    assert_eq!(p.rtp_time, 3000);
    assert_eq!(p.payloads.len(), 2);
    check_shape(&p, MAX_PAYLOAD);
    let mut stap = vec![0x78, 0x00, 0x19];
    stap.extend_from_slice(SPS);
    stap.extend_from_slice(&[0x00, 0x05]);
    stap.extend_from_slice(PPS);
    assert_eq!(&p.payloads[0].data[..], &stap[..]);
    assert_eq!(&p.payloads[1].data[..], &idr[..]);
}

#[test]
fn idr_and_small_units_share_one_stap_a() {
    let sei = nal(0x06, 40);
    let idr = nal(0x65, 300);
    let p = packetize_h264(&track(), &video(false, 0, &[&sei, &idr]), MAX_PAYLOAD).unwrap();
    assert!(
        p.keyframe,
        "an IDR slice makes a keyframe even if unflagged"
    );
    assert_eq!(p.payloads.len(), 1);
    let data = &p.payloads[0].data;
    assert_eq!(data.len(), 1 + 2 + 25 + 2 + 5 + 2 + 40 + 2 + 300);
    assert_eq!(data[0], 0x78);
    assert_eq!(depack(&p), [SPS.to_vec(), PPS.to_vec(), sei, idr]);
}

#[test]
fn large_idr_is_fragmented_into_fu_a() {
    let idr = nal(0x65, 30_000);
    let p = packetize_h264(&track(), &video(true, 0, &[&idr]), MAX_PAYLOAD).unwrap();
    check_shape(&p, MAX_PAYLOAD);
    assert_eq!(p.payloads[0].data[0], 0x78, "SPS+PPS STAP-A first");
    let frags = &p.payloads[1..];
    // 29 999 bytes after the header, at most 1198 per fragment.
    assert_eq!(frags.len(), 26);
    let mut body = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(f.data[0], 0x7C, "FU indicator keeps F/NRI, type 28");
        let (s, e) = (i == 0, i + 1 == frags.len());
        let want = 0x05 | if s { 0x80 } else { 0 } | if e { 0x40 } else { 0 };
        assert_eq!(f.data[1], want, "FU header of fragment {i}");
        body.extend_from_slice(&f.data[2..]);
    }
    assert_eq!(&body[..], &idr[1..]);
    // Equal sizes but the last, a little shorter: 29 999 = 25 x 1154 + 1149 (plus the
    // 2-byte FU-A header each). No tiny tail fragment.
    let sizes: Vec<usize> = frags.iter().map(|f| f.data.len()).collect();
    assert!(sizes[..25].iter().all(|&n| n == 1156), "{sizes:?}");
    assert_eq!(sizes[25], 1151);
    assert_eq!(depack(&p), [SPS.to_vec(), PPS.to_vec(), idr]);
}

#[test]
fn p_frame_with_two_slices() {
    let (a, b) = (nal(0x41, 700), nal(0x41, 800));
    let p = packetize_h264(&track(), &video(false, 9000, &[&a, &b]), MAX_PAYLOAD).unwrap();
    assert!(!p.keyframe);
    assert_eq!(p.payloads.len(), 2, "no parameter sets on a P-frame");
    check_shape(&p, MAX_PAYLOAD);
    assert_eq!(&p.payloads[0].data[..], &a[..]);
    assert_eq!(&p.payloads[1].data[..], &b[..]);

    // Two small slices aggregate; NRI is the highest, F the OR.
    let (sei, slice) = (nal(0x06, 3), nal(0x41, 4));
    let p = packetize_h264(&track(), &video(false, 0, &[&sei, &slice]), MAX_PAYLOAD).unwrap();
    assert_eq!(
        &p.payloads[0].data[..],
        &[
            0x58, 0x00, 0x03, 0x06, 0x0A, 0x11, 0x00, 0x04, 0x41, 0x0A, 0x11, 0x18
        ]
    );
    assert!(p.payloads[0].marker);
    let forbidden = [0x86, 0x00];
    let p = packetize_h264(&track(), &video(false, 0, &[&forbidden, &slice]), 0x20).unwrap();
    assert_eq!(p.payloads[0].data[0], 0xD8);
}

#[test]
fn in_band_params_are_not_duplicated() {
    // Different bytes from the track's, so a duplicate would show.
    let (sps, pps) = (nal(0x67, 20), nal(0x68, 4));
    let idr = nal(0x65, 2000);
    let frame = video(true, 0, &[AUD, &sps, &pps, &idr]);
    let p = packetize_h264(&track(), &frame, MAX_PAYLOAD).unwrap();
    assert_eq!(depack(&p), [sps.clone(), pps.clone(), idr.clone()]);

    // Only one of them in-band: the track's pair goes first.
    let frame = video(true, 0, &[&sps, &idr]);
    let p = packetize_h264(&track(), &frame, MAX_PAYLOAD).unwrap();
    assert_eq!(depack(&p), [SPS.to_vec(), PPS.to_vec(), sps, idr.clone()]);

    // A flagged keyframe without IDR (recovery point) also gets them.
    let i_slice = nal(0x61, 100);
    let p = packetize_h264(&track(), &video(true, 0, &[&i_slice]), MAX_PAYLOAD).unwrap();
    assert!(p.keyframe);
    assert_eq!(depack(&p), [SPS.to_vec(), PPS.to_vec(), i_slice]);

    // A track without parameter sets adds nothing.
    let bare = Track::new(TrackId(0), Codec::H264, 90_000);
    let p = packetize_h264(&bare, &video(true, 0, &[&idr]), MAX_PAYLOAD).unwrap();
    assert_eq!(depack(&p), [idr]);
}

#[test]
fn aud_filler_and_reserved_types_are_dropped() {
    let slice = nal(0x41, 50);
    let frame = video(
        false,
        0,
        &[
            AUD,
            &[],
            &slice,
            &[0x0C, 0xFF, 0xFF],
            &[0x18, 0x00],
            &[0x00, 0x01],
            &[0x1F],
        ],
    );
    let p = packetize_h264(&track(), &frame, MAX_PAYLOAD).unwrap();
    assert_eq!(p.payloads.len(), 1);
    assert_eq!(&p.payloads[0].data[..], &slice[..]);

    assert_eq!(
        packetize_h264(&track(), &video(true, 0, &[AUD]), MAX_PAYLOAD),
        Err(RtpError::NoNalUnits)
    );
    assert_eq!(
        packetize_h264(&track(), &video(false, 0, &[]), MAX_PAYLOAD),
        Err(RtpError::EmptyFrame)
    );
}

#[test]
fn truncated_avcc_is_an_error() {
    let idr = nal(0x65, 3000);
    let frame = video(true, 0, &[AUD, &idr]);
    // Every proper prefix of the payload but the lone AUD (6 bytes, no sendable unit)
    // is malformed: error, never a panic.
    for cut in (1..frame.data.len()).filter(|c| *c != 6) {
        let mut f = frame.clone();
        f.data = frame.data.slice(..cut);
        let r = packetize_h264(&track(), &f, MAX_PAYLOAD);
        let offset = if cut < 6 { 0 } else { 6 };
        assert_eq!(r, Err(RtpError::Truncated { offset }), "cut at {cut}");
    }
    // A length prefix far past the end, and one near u32::MAX.
    for prefix in [[0x00, 0x00, 0x10, 0x00], [0xFF, 0xFF, 0xFF, 0xFF]] {
        let mut data = prefix.to_vec();
        data.extend_from_slice(&[0x65, 0x88]);
        let mut f = frame.clone();
        f.data = Bytes::from(data);
        assert_eq!(
            packetize_h264(&track(), &f, MAX_PAYLOAD),
            Err(RtpError::Truncated { offset: 0 })
        );
    }
}

#[test]
fn max_payload_edges() {
    let max = MAX_PAYLOAD;
    // Exactly max: a single NAL unit packet.
    let p = packetize_h264(&track(), &video(false, 0, &[&nal(0x41, max)]), max).unwrap();
    assert_eq!(p.payloads.len(), 1);
    assert_eq!(p.payloads[0].data.len(), max);
    // One more: two FU-A fragments of (max + 1 - 1) / 2 bytes plus headers.
    let big = nal(0x41, max + 1);
    let p = packetize_h264(&track(), &video(false, 0, &[&big]), max).unwrap();
    assert_eq!(p.payloads.len(), 2);
    assert_eq!(&p.payloads[0].data[..2], &[0x5C, 0x81]);
    assert_eq!(&p.payloads[1].data[..2], &[0x5C, 0x41]);
    assert!(p.payloads.iter().all(|pl| pl.data.len() == 2 + max / 2));
    assert_eq!(depack(&p), [big]);
    // A STAP-A filling max exactly, and one byte too many.
    let a = nal(0x06, 100);
    let b = nal(0x41, max - 1 - 2 - 100 - 2);
    let p = packetize_h264(&track(), &video(false, 0, &[&a, &b]), max).unwrap();
    assert_eq!(p.payloads.len(), 1);
    assert_eq!(p.payloads[0].data.len(), max);
    let b = nal(0x41, max - 1 - 2 - 100 - 2 + 1);
    let p = packetize_h264(&track(), &video(false, 0, &[&a, &b]), max).unwrap();
    assert_eq!(p.payloads.len(), 2);
    assert_eq!(depack(&p), [a, b]);
    // The smallest max: one byte per fragment.
    let p = packetize_h264(&track(), &video(false, 0, &[&nal(0x41, 5)]), 3).unwrap();
    assert_eq!(p.payloads.len(), 4);
    check_shape(&p, 3);
    assert_eq!(depack(&p), [nal(0x41, 5)]);
}

#[test]
fn limits_and_codec_are_checked() {
    let f = video(false, 0, &[&nal(0x41, 10)]);
    for bad in [0, 2, MAX_PAYLOAD_LIMIT + 1, usize::MAX] {
        assert_eq!(
            packetize_h264(&track(), &f, bad),
            Err(RtpError::MaxPayloadOutOfRange(bad))
        );
    }
    assert!(packetize_h264(&track(), &f, MAX_PAYLOAD_LIMIT).is_ok());
    let huge = nal(0x41, 20_000);
    assert_eq!(
        packetize_h264(&track(), &video(false, 0, &[&huge]), 3),
        Err(RtpError::TooManyPayloads(19_999))
    );
    let mut h265 = track();
    h265.codec = Codec::H265;
    assert_eq!(
        packetize_h264(&h265, &f, MAX_PAYLOAD),
        Err(RtpError::UnsupportedCodec(Codec::H265))
    );
    // RTP time wraps to 32 bits.
    let mut late = f.clone();
    late.pts = 0x1_0000_0000 + 90;
    assert_eq!(
        packetize_h264(&track(), &late, MAX_PAYLOAD)
            .unwrap()
            .rtp_time,
        90
    );
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
        let max = [MAX_PAYLOAD, 3, 4, 50, 1500][round % 5];
        // At most 3 units of 5000 bytes when every fragment carries one byte, to stay
        // under MAX_PAYLOADS_PER_FRAME.
        let count = 1 + rng.below(if max < 10 { 3 } else { 8 }) as usize;
        let units: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let len = 1 + rng.below(5000) as usize;
                let kind = loop {
                    let k = 1 + rng.below(23) as u8;
                    if k != 0x09 && k != 0x0C {
                        break k;
                    }
                };
                let header = (rng.below(4) as u8) << 5 | kind;
                let mut u = vec![header];
                u.extend((1..len).map(|_| rng.next() as u8));
                u
            })
            .collect();
        let refs: Vec<&[u8]> = units.iter().map(|u| &u[..]).collect();
        let frame = video(rng.below(4) == 0, round as i64 * 3000, &refs);
        let p = packetize_h264(&track(), &frame, max).unwrap();
        check_shape(&p, max);
        let has = |t: u8| units.iter().any(|u| u[0] & 0x1F == t);
        let mut want = Vec::new();
        if (frame.keyframe || has(0x05)) && !(has(0x07) && has(0x08)) {
            want.extend([SPS.to_vec(), PPS.to_vec()]);
        }
        want.extend(units);
        assert_eq!(depack(&p), want, "round {round}, max {max}");
    }
}

#[test]
fn depacketizer_rejects_malformed_sequences() {
    let bad: [&[&[u8]]; 9] = [
        &[&[]],
        &[&[0x78]],
        &[&[0x78, 0x00]],
        &[&[0x78, 0x00, 0x05, 0x67]],
        &[&[0x7C, 0x45, 0x01]],
        &[&[0x7C, 0x85, 0x01]],
        &[&[0x7C, 0x85, 0x01], &[0x7C, 0x85, 0x02]],
        &[&[0x7C, 0x85, 0x01], &[0x7C, 0x41, 0x02]],
        &[&[0x79, 0x00]],
    ];
    for payloads in bad {
        assert!(
            matches!(depacketize_h264(payloads), Err(RtpError::Malformed(_))),
            "{payloads:?}"
        );
    }
    assert_eq!(
        depacketize_h264(&[
            &[0x7C, 0x85, 0x01],
            &[0x7C, 0x05, 0x02],
            &[0x7C, 0x45, 0x03]
        ]),
        Ok(vec![vec![0x65, 0x01, 0x02, 0x03]])
    );
}

/// The demo clip: every video frame round-trips, the first IDR (tens of kB) gets the
/// track's SPS/PPS in a STAP-A and FU-A fragments.
#[test]
fn demo_clip_round_trips() {
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/media/demo.flv"
    ))
    .unwrap();
    let clip = Clip::parse(Bytes::from(file), 8 << 20).unwrap();
    let mut demux = Demuxer::new();
    let (mut frames, mut idrs, mut max_packets) = (0, 0, 0);
    for tag in clip.tags().iter().filter(|t| t.kind == TagType::Video) {
        let Some(DemuxOutput::Frame(frame)) = demux.video(tag.offset_ms, &tag.body).unwrap() else {
            continue;
        };
        let track = demux.tracks().into_iter().next().unwrap();
        let p = packetize_h264(&track, &frame, MAX_PAYLOAD).unwrap();
        check_shape(&p, MAX_PAYLOAD);
        assert_eq!(p.keyframe, frame.keyframe);
        let units: Vec<Vec<u8>> = avcc_nal_units(&frame.data).map(|u| u.to_vec()).collect();
        let mut want = Vec::new();
        if frame.keyframe {
            idrs += 1;
            assert!(
                frame.data.len() > 15_000,
                "IDR of {} bytes",
                frame.data.len()
            );
            let data = &p.payloads[0].data;
            assert_eq!(data[0] & 0x1F, STAP_A);
            let sps = &track.params.sps[0];
            assert_eq!(&data[1..3], &(sps.len() as u16).to_be_bytes());
            assert_eq!(&data[3..3 + sps.len()], &sps[..]);
            assert!(p.payloads.iter().any(|pl| pl.data[0] & 0x1F == FU_A));
            if idrs == 1 {
                // x264 puts its SEI before the first IDR: SPS + PPS + SEI aggregate.
                let first = depacketize_h264(&[&data[..]]).unwrap();
                assert_eq!(first.len(), 3);
                assert_eq!(first[2][0] & 0x1F, 0x06);
            }
            want.extend(track.params.sps.iter().map(|u| u.to_vec()));
            want.extend(track.params.pps.iter().map(|u| u.to_vec()));
        }
        want.extend(units.into_iter().filter(|u| sendable_type(u).is_some()));
        assert_eq!(depack(&p), want);
        max_packets = max_packets.max(p.payloads.len());
        frames += 1;
    }
    assert_eq!((frames, idrs), (120, 2));
    // The 19 kB IDR: a STAP-A and 17 FU-A fragments.
    assert_eq!(max_packets, 18);
}
