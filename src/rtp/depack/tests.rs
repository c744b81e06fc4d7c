//! Depacketizer tests: hand-written payloads after the RFCs' figures, loss, reordering,
//! timestamps, malformed input, and round trips through `crate::rtp`'s packetizers.

use super::*;
use crate::media::clip::Clip;
use crate::media::flv::{DemuxOutput, Demuxer, TagType};
use crate::media::{Codec, Track, avcc_nal_units};
use crate::rtp::{MAX_PAYLOAD, depacketize_h264, packetize_h264, packetize_h265};

/// x264 `-profile:v baseline` SPS, 1280x720 at 30 fps.
const SPS: &[u8] = &[
    0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83, 0x24, 0x80,
];
/// The PPS x264 wrote with that SPS.
const PPS: &[u8] = &[0x68, 0xCB, 0x83, 0xCB, 0x20];
/// A short IDR slice (nal_ref_idc 3, type 5).
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33, 0xFF];
/// A short non-IDR slice (nal_ref_idc 2, type 1).
const P_SLICE: &[u8] = &[0x41, 0x9A, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07];

const SSRC: u32 = 0x1234_5678;

fn rtp(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpPacket {
    RtpPacket {
        payload_type: 96,
        marker,
        sequence: seq,
        timestamp: ts,
        ssrc: SSRC,
        payload: Bytes::copy_from_slice(payload),
    }
}

/// Each unit after its 4-byte length.
fn avcc(units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for u in units {
        out.extend_from_slice(&(u.len() as u32).to_be_bytes());
        out.extend_from_slice(u);
    }
    out
}

/// STAP-A (RFC 6184 §5.7.1, figure 7): NRI the highest of the units'.
fn stap_a(units: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x78];
    for u in units {
        out.extend_from_slice(&(u.len() as u16).to_be_bytes());
        out.extend_from_slice(u);
    }
    out
}

fn h264() -> Depacketizer {
    Depacketizer::new(DepackConfig::H264, TrackId(0), 90_000)
}

fn h265() -> Depacketizer {
    Depacketizer::new(DepackConfig::H265, TrackId(0), 90_000)
}

/// Pushes every packet; returns everything output.
fn push_all(d: &mut Depacketizer, pkts: &[RtpPacket]) -> Vec<DepackOutput> {
    let mut out = Vec::new();
    for p in pkts {
        d.push(p, &mut out);
    }
    out
}

fn frames(out: &[DepackOutput]) -> Vec<&Frame> {
    out.iter()
        .filter_map(|o| match o {
            DepackOutput::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn params(out: &[DepackOutput]) -> Vec<&ParamSets> {
    out.iter()
        .filter_map(|o| match o {
            DepackOutput::Params(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// (pts, keyframe) of each frame.
fn times(out: &[DepackOutput]) -> Vec<(i64, bool)> {
    frames(out).iter().map(|f| (f.pts, f.keyframe)).collect()
}

/// A keyframe access unit as one STAP-A packet.
fn idr_packet(seq: u16, ts: u32) -> RtpPacket {
    rtp(seq, ts, true, &stap_a(&[SPS, PPS, IDR]))
}

/// A P-frame access unit as one single NAL unit packet.
fn p_packet(seq: u16, ts: u32) -> RtpPacket {
    rtp(seq, ts, true, P_SLICE)
}

// --- H.264, RFC 6184 ---

#[test]
fn stap_a_with_sps_pps_idr() {
    let mut d = h264();
    let out = push_all(&mut d, &[idr_packet(1, 1000)]);
    assert_eq!(out.len(), 2);
    let DepackOutput::Params(p) = &out[0] else {
        panic!("params first: {out:?}");
    };
    assert_eq!(p.sps, [Bytes::from_static(SPS)]);
    assert_eq!(p.pps, [Bytes::from_static(PPS)]);
    assert!(p.vps.is_empty());
    let DepackOutput::Frame(f) = &out[1] else {
        panic!("then the frame: {out:?}");
    };
    assert_eq!(&f.data[..], &avcc(&[SPS, PPS, IDR])[..]);
    assert!(f.keyframe);
    assert_eq!(
        (f.pts, f.dts, f.track, f.kind),
        (0, 0, TrackId(0), MediaKind::Video)
    );
    assert_eq!(d.last_time(), Some(0));
    let st = d.stats();
    assert_eq!(
        (st.packets, st.frames, st.frames_dropped, st.malformed),
        (1, 1, 0, 0)
    );
    assert_eq!(st.bytes, 1 + 2 + 25 + 2 + 5 + 2 + 6);
}

#[test]
fn fu_a_start_middle_end() {
    let mut d = h264();
    push_all(&mut d, &[idr_packet(1, 0)]);
    // RFC 6184 §5.8: FU indicator F|NRI|28, FU header S|E|R|type.
    let out = push_all(
        &mut d,
        &[
            rtp(2, 3000, false, &[0x5C, 0x81, 0x9A, 0x02, 0x03]),
            rtp(3, 3000, false, &[0x5C, 0x01, 0x04, 0x05]),
            rtp(4, 3000, true, &[0x5C, 0x41, 0x06, 0x07]),
        ],
    );
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(&f[0].data[..], &avcc(&[P_SLICE])[..]);
    assert!(!f[0].keyframe);
    assert_eq!(f[0].pts, 3000);

    // A fragmented IDR with F/NRI taken from the indicator.
    let out = push_all(
        &mut d,
        &[
            rtp(5, 6000, false, &[0x7C, 0x85, 0x88, 0x84]),
            rtp(6, 6000, true, &[0x7C, 0x45, 0x00, 0x33, 0xFF]),
        ],
    );
    assert_eq!(times(&out), [(6000, true)]);
    assert_eq!(&frames(&out)[0].data[..], &avcc(&[IDR])[..]);
}

#[test]
fn lost_middle_fragment_drops_until_next_idr() {
    let mut d = h264().with_reorder_window(0);
    let out = push_all(
        &mut d,
        &[
            idr_packet(1, 0),
            rtp(2, 3000, false, &[0x5C, 0x81, 0x9A, 0x02, 0x03]),
            // 3 is lost.
            rtp(4, 3000, true, &[0x5C, 0x41, 0x06, 0x07]),
            p_packet(5, 6000),
            p_packet(6, 9000),
            idr_packet(7, 12_000),
            p_packet(8, 15_000),
        ],
    );
    assert_eq!(times(&out), [(0, true), (12_000, true), (15_000, false)]);
    let st = d.stats();
    assert_eq!(
        (st.lost, st.frames, st.frames_dropped, st.malformed),
        (1, 3, 3, 0)
    );
}

#[test]
fn gap_between_access_units_drops_the_next_one() {
    // The lost packet may be the start of the next access unit (here: all of it).
    let mut d = h264().with_reorder_window(0);
    let out = push_all(
        &mut d,
        &[
            idr_packet(1, 0),
            p_packet(2, 3000),
            p_packet(4, 9000),
            idr_packet(5, 12_000),
        ],
    );
    assert_eq!(times(&out), [(0, true), (3000, false), (12_000, true)]);
    assert_eq!((d.stats().lost, d.stats().frames_dropped), (1, 1));
}

#[test]
fn gap_waits_for_the_reorder_window() {
    // Default window: the gap is declared lost only after 16 later packets.
    let mut d = h264();
    let mut pkts = vec![idr_packet(1, 0)];
    pkts.extend((3..=18).map(|i| p_packet(i, u32::from(i) * 3000)));
    let out = push_all(&mut d, &pkts);
    assert_eq!(times(&out), [(0, true)], "held behind the gap");
    let out = push_all(&mut d, &[p_packet(19, 19 * 3000)]);
    assert!(
        frames(&out).is_empty(),
        "released, but no keyframe since the gap"
    );
    assert_eq!((d.stats().lost, d.stats().frames_dropped), (1, 17));
    // flush releases what is held without waiting; the access unit right after the gap
    // may have lost its start and is dropped.
    let mut d = h264();
    push_all(
        &mut d,
        &[idr_packet(1, 0), idr_packet(3, 6000), idr_packet(4, 9000)],
    );
    let mut out = Vec::new();
    d.flush(&mut out);
    assert_eq!(times(&out), [(9000, true)]);
    assert_eq!((d.stats().lost, d.stats().frames_dropped), (1, 1));
}

#[test]
fn reordered_and_duplicate_packets() {
    let mut d = h264();
    let frag = [
        rtp(2, 3000, false, &[0x5C, 0x81, 0x9A, 0x02, 0x03]),
        rtp(3, 3000, false, &[0x5C, 0x01, 0x04, 0x05]),
        rtp(4, 3000, true, &[0x5C, 0x41, 0x06, 0x07]),
    ];
    let out = push_all(
        &mut d,
        &[
            idr_packet(1, 0),
            frag[0].clone(),
            frag[2].clone(),
            frag[1].clone(),
            frag[1].clone(),
            idr_packet(1, 0),
            p_packet(5, 6000),
        ],
    );
    assert_eq!(times(&out), [(0, true), (3000, false), (6000, false)]);
    assert_eq!(&frames(&out)[1].data[..], &avcc(&[P_SLICE])[..]);
    let st = d.stats();
    assert_eq!((st.reordered, st.duplicates, st.lost), (1, 2, 0));
    assert_eq!((st.frames, st.frames_dropped), (3, 0));
}

#[test]
fn marker_less_access_unit_ends_on_timestamp_change() {
    let mut d = h264();
    let mut out = Vec::new();
    d.push(&rtp(1, 0, false, &stap_a(&[SPS, PPS])), &mut out);
    d.push(&rtp(2, 0, false, IDR), &mut out);
    assert!(frames(&out).is_empty());
    d.push(&rtp(3, 3000, false, P_SLICE), &mut out);
    assert_eq!(times(&out), [(0, true)]);
    assert_eq!(&frames(&out)[0].data[..], &avcc(&[SPS, PPS, IDR])[..]);
    d.push(&rtp(4, 6000, false, P_SLICE), &mut out);
    assert_eq!(times(&out), [(0, true), (3000, false)]);
}

#[test]
fn parameter_sets_with_their_own_marker_join_the_next_access_unit() {
    let mut d = h264();
    let out = push_all(
        &mut d,
        &[rtp(1, 0, true, &stap_a(&[SPS, PPS])), rtp(2, 0, true, IDR)],
    );
    assert_eq!(params(&out).len(), 1);
    assert_eq!(times(&out), [(0, true)]);
    assert_eq!(&frames(&out)[0].data[..], &avcc(&[SPS, PPS, IDR])[..]);
}

#[test]
fn aud_and_filler_are_dropped_parameter_sets_kept() {
    let mut d = h264();
    let aud = [0x09, 0xF0];
    let filler = [0x0C, 0xFF, 0xFF, 0x80];
    let sei = [0x06, 0x05, 0x01, 0x00, 0x80];
    let out = push_all(
        &mut d,
        &[
            rtp(1, 0, false, &aud),
            rtp(2, 0, false, &stap_a(&[SPS, PPS, &sei])),
            rtp(3, 0, false, &filler),
            rtp(4, 0, true, IDR),
        ],
    );
    assert_eq!(&frames(&out)[0].data[..], &avcc(&[SPS, PPS, &sei, IDR])[..]);
}

#[test]
fn params_reported_only_when_they_change() {
    let mut d = h264();
    let pps2: &[u8] = &[0x68, 0xCE, 0x3C, 0x80];
    let out = push_all(
        &mut d,
        &[
            idr_packet(1, 0),
            idr_packet(2, 3000),
            rtp(3, 6000, true, &stap_a(&[PPS, IDR])),
            rtp(4, 9000, true, &stap_a(&[SPS, pps2, IDR])),
        ],
    );
    let p = params(&out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[1].sps, [Bytes::from_static(SPS)]);
    assert_eq!(p[1].pps, [Bytes::from_static(pps2)]);
    // Params come right before their frame.
    assert!(matches!(out[4], DepackOutput::Params(_)));
    assert_eq!(frames(&out).len(), 4);

    // Sets known from the SDP are not reported again.
    let known = ParamSets {
        sps: vec![Bytes::from_static(SPS)],
        pps: vec![Bytes::from_static(PPS)],
        ..ParamSets::default()
    };
    let mut d = h264().with_params(known);
    let out = push_all(&mut d, &[idr_packet(1, 0)]);
    assert!(params(&out).is_empty());
    assert_eq!(frames(&out).len(), 1);
}

#[test]
fn non_keyframes_before_the_first_keyframe_are_dropped() {
    let mut d = h264();
    let out = push_all(
        &mut d,
        &[
            p_packet(1, 0),
            p_packet(2, 3000),
            idr_packet(3, 6000),
            p_packet(4, 9000),
        ],
    );
    // Time starts at the first access unit seen, output or not.
    assert_eq!(times(&out), [(6000, true), (9000, false)]);
    assert_eq!(d.stats().frames_dropped, 2);
}

#[test]
fn timestamp_wraps_at_32_bits() {
    let mut d = h264();
    let out = push_all(
        &mut d,
        &[
            idr_packet(1, 0xFFFF_E890),
            p_packet(2, 0xFFFF_F448),
            p_packet(3, 0x0000_0000),
            p_packet(4, 0x0000_0BB8),
        ],
    );
    assert_eq!(
        times(&out),
        [(0, true), (3000, false), (6000, false), (9000, false)]
    );
    assert_eq!(d.stats().discontinuities, 0);
}

#[test]
fn timestamp_jumps_are_discontinuities() {
    let mut d = h264();
    let out = push_all(
        &mut d,
        &[
            idr_packet(1, 1000),
            p_packet(2, 4000),
            // 20 s forward: continue one frame later.
            p_packet(3, 4000 + 1_800_000),
            p_packet(4, 7000 + 1_800_000),
            // 2 s back (a camera that reset its clock).
            p_packet(5, 7000 + 1_800_000 - 180_000),
            // B-frame-like small steps back are normal.
            p_packet(6, 7000 + 1_800_000 - 180_000 + 9000),
            p_packet(7, 7000 + 1_800_000 - 180_000 + 3000),
        ],
    );
    assert_eq!(
        times(&out).into_iter().map(|(t, _)| t).collect::<Vec<_>>(),
        [0, 3000, 6000, 9000, 12_000, 21_000, 15_000]
    );
    assert_eq!(d.stats().discontinuities, 2);
}

#[test]
fn restart_resumes_time_where_the_last_session_ended() {
    let mut d = h264();
    let out = push_all(&mut d, &[idr_packet(1, 1000), p_packet(2, 4000)]);
    assert_eq!(times(&out), [(0, true), (3000, false)]);
    let resume = d.next_time().unwrap();
    assert_eq!(resume, 6000);
    // A partial access unit is dropped by the restart.
    push_all(&mut d, &[rtp(3, 7000, false, &[0x5C, 0x81, 0x9A])]);
    d.restart(resume);
    assert_eq!(d.stats().frames_dropped, 1);
    // The new session: another SSRC, sequence and timestamp base.
    let next = |seq: u16, ts: u32, key: bool| {
        let mut p = if key {
            idr_packet(seq, ts)
        } else {
            p_packet(seq, ts)
        };
        p.ssrc = 0xBEEF;
        p
    };
    let pkts = [
        next(40_000, 0x9000_0000, false),
        next(40_001, 0x9000_0BB8, true),
        next(40_002, 0x9000_1770, false),
    ];
    let out = push_all(&mut d, &pkts);
    // A P-frame first: dropped (the decoder needs a keyframe after a restart).
    assert_eq!(times(&out), [(9000, true), (12_000, false)]);
    let st = d.stats();
    assert_eq!((st.discontinuities, st.resyncs, st.lost), (0, 0, 0));
    assert_eq!(d.last_time(), Some(12_000));
}

#[test]
fn new_ssrc_without_restart_is_a_resync() {
    let mut d = h264();
    push_all(&mut d, &[idr_packet(1, 1000)]);
    let mut p = p_packet(500, 0x7000_0000);
    p.ssrc = 9;
    let mut i = idr_packet(501, 0x7000_0BB8);
    i.ssrc = 9;
    let out = push_all(&mut d, &[p, i]);
    // The timestamp jump is a discontinuity: time goes on one frame after the last.
    assert_eq!(times(&out), [(6000, true)]);
    assert_eq!((d.stats().resyncs, d.stats().discontinuities), (1, 1));
}

#[test]
fn oversized_access_unit_is_dropped() {
    let mut d = h264().with_max_frame(100);
    let mut big = vec![0x7C, 0x85];
    big.extend(std::iter::repeat_n(0xAB, 90));
    let mut end = vec![0x7C, 0x45];
    end.extend(std::iter::repeat_n(0xCD, 90));
    let out = push_all(
        &mut d,
        &[
            idr_packet(1, 0),
            rtp(2, 3000, false, &big),
            rtp(3, 3000, true, &end),
            p_packet(4, 6000),
            idr_packet(5, 9000),
        ],
    );
    assert_eq!(times(&out), [(0, true), (9000, true)]);
    let st = d.stats();
    assert_eq!((st.oversized, st.frames_dropped, st.malformed), (1, 2, 0));
}

#[test]
fn malformed_h264_payloads() {
    // (payload, whether the access unit it is in is dropped)
    let cases: [(&[u8], bool, &str); 13] = [
        (&[], false, "empty payload"),
        (&[0x00, 0x01], false, "type 0"),
        (&[0x1E, 0x01], false, "type 30"),
        (&[0x1F], false, "type 31"),
        (&[0x79, 0x00, 0x00, 0x06], true, "STAP-B"),
        (&[0x7A, 0x00], true, "MTAP16"),
        (&[0x7B, 0x00], true, "MTAP24"),
        (&[0x7D, 0x85, 0x00, 0x00, 0x01], true, "FU-B"),
        (&[0x7C], true, "FU-A of length 1"),
        (&[0x7C, 0xC5, 0x01], true, "FU-A with S and E"),
        (&[0x7C, 0x98, 0x01], true, "FU-A of a STAP-A"),
        (&[0x78, 0x00, 0x09, 0x67], true, "truncated STAP-A"),
        (
            &[0x78, 0x00, 0x01, 0x67, 0x00],
            true,
            "STAP-A with a trailing byte",
        ),
    ];
    for (payload, drops, name) in cases {
        let mut d = h264();
        let pkts = [
            rtp(1, 0, false, &stap_a(&[SPS, PPS])),
            rtp(2, 0, false, payload),
            rtp(3, 0, true, IDR),
            idr_packet(4, 3000),
        ];
        let out = push_all(&mut d, &pkts);
        let st = d.stats();
        assert_eq!(st.malformed, 1, "{name}");
        assert!(st.last_malformed.is_some(), "{name}");
        let want: &[(i64, bool)] = if drops {
            &[(3000, true)]
        } else {
            &[(0, true), (3000, true)]
        };
        assert_eq!(times(&out), want, "{name}");
        assert_eq!(st.frames_dropped, u64::from(drops), "{name}");
    }
    // More STAP-A edge cases: a zero-size unit, a unit of an RTP packet type.
    for stap in [&[0x78, 0x00, 0x00][..], &[0x78, 0x00, 0x01, 0x18], &[0x78]] {
        let mut d = h264();
        push_all(&mut d, &[rtp(1, 0, true, stap)]);
        assert_eq!(d.stats().malformed, 1, "{stap:?}");
    }
}

#[test]
fn fragment_errors_break_the_access_unit() {
    // A continuation without a start, with no loss: malformed.
    let mut d = h264();
    let out = push_all(
        &mut d,
        &[
            rtp(1, 0, false, &[0x7C, 0x05, 0x01]),
            rtp(2, 0, true, &[0x7C, 0x45, 0x02]),
            idr_packet(3, 3000),
        ],
    );
    assert_eq!(times(&out), [(3000, true)]);
    assert_eq!((d.stats().malformed, d.stats().frames_dropped), (2, 1));

    // A fragment interrupted by a single NAL unit, and by a new start.
    for second in [&[0x65, 0x01][..], &[0x7C, 0x85, 0x01]] {
        let mut d = h264();
        let out = push_all(
            &mut d,
            &[
                rtp(1, 0, false, &[0x7C, 0x85, 0x01]),
                rtp(2, 0, false, second),
                rtp(3, 0, true, &[0x7C, 0x45, 0x03]),
                idr_packet(4, 3000),
            ],
        );
        assert_eq!(times(&out), [(3000, true)], "{second:?}");
        assert!(d.stats().malformed >= 1);
    }

    // The marker on a fragment without the end bit: the unit is unfinished.
    let mut d = h264();
    let out = push_all(
        &mut d,
        &[rtp(1, 0, true, &[0x7C, 0x85, 0x01]), idr_packet(2, 3000)],
    );
    assert_eq!(times(&out), [(3000, true)]);
    assert_eq!(d.stats().malformed, 1);

    // The FU header's type changes mid-unit.
    let mut d = h264();
    push_all(
        &mut d,
        &[
            rtp(1, 0, false, &[0x7C, 0x85, 0x01]),
            rtp(2, 0, true, &[0x7C, 0x41, 0x02]),
        ],
    );
    assert_eq!((d.stats().frames, d.stats().frames_dropped), (0, 1));
}

#[test]
fn malformed_rtp_packets_never_reach_the_depacketizer() {
    for bad in [
        &[0x80, 0x60, 0x00][..],
        &[
            0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xBE, 0xDE, 0x00, 0x05, 0x10,
        ],
        &[0xA0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x65, 0x09],
    ] {
        assert!(
            RtpPacket::parse(Bytes::copy_from_slice(bad)).is_err(),
            "{bad:?}"
        );
    }
}

/// The demo clip's video, packetized by `crate::rtp` and depacketized again: every
/// frame comes back as the packetizer's NAL units (checked against its own simple
/// reassembler), ending with the source frame's units.
#[test]
fn demo_clip_round_trips_through_packetize_h264() {
    let (track, frames_in) = demo_video();
    let mut d = h264();
    let mut out = Vec::new();
    let mut seq = 0xFFF0u16;
    let mut want = Vec::new();
    for frame in &frames_in {
        let p = packetize_h264(&track, frame, MAX_PAYLOAD).unwrap();
        let refs: Vec<&[u8]> = p.payloads.iter().map(|pl| &pl.data[..]).collect();
        want.push((frame.pts, p.keyframe, depacketize_h264(&refs).unwrap()));
        for pl in &p.payloads {
            d.push(&rtp(seq, p.rtp_time, pl.marker, &pl.data), &mut out);
            seq = seq.wrapping_add(1);
        }
    }
    let got = frames(&out);
    assert_eq!(got.len(), frames_in.len());
    let first = frames_in[0].pts;
    for (i, (f, (pts, key, units))) in got.iter().zip(&want).enumerate() {
        assert_eq!(f.pts, pts - first, "frame {i}");
        assert_eq!(f.keyframe, *key, "frame {i}");
        let nals: Vec<Vec<u8>> = avcc_nal_units(&f.data).map(|u| u.to_vec()).collect();
        assert_eq!(&nals, units, "frame {i}");
        let src: Vec<Bytes> = avcc_nal_units(&frames_in[i].data).collect();
        assert!(nals.ends_with(&src.iter().map(|u| u.to_vec()).collect::<Vec<_>>()));
    }
    let st = d.stats();
    assert_eq!(
        (st.lost, st.malformed, st.frames_dropped, st.discontinuities),
        (0, 0, 0, 0)
    );
    assert_eq!(params(&out).len(), 1, "the clip keeps one SPS/PPS");
}

/// Random loss, duplication and reordering of a synthetic stream: whatever comes out is
/// byte-identical to a frame that went in, starts at a keyframe after every loss, and the
/// counters add up.
#[test]
fn impaired_network_never_corrupts_frames() {
    let track = h264_track();
    let input = synthetic_h264(120, 3000);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for round in 0..20 {
        let window = [0, 4, 16][round % 3];
        let mut d = h264().with_reorder_window(window);
        let mut sent: Vec<RtpPacket> = Vec::new();
        let mut by_pts = std::collections::HashMap::new();
        let mut seq = rng.next() as u16;
        for f in &input {
            let p = packetize_h264(&track, f, MAX_PAYLOAD).unwrap();
            let refs: Vec<&[u8]> = p.payloads.iter().map(|pl| &pl.data[..]).collect();
            let units = depacketize_h264(&refs).unwrap();
            let refs: Vec<&[u8]> = units.iter().map(|u| &u[..]).collect();
            by_pts.insert(f.pts, avcc(&refs));
            for pl in &p.payloads {
                sent.push(rtp(seq, p.rtp_time, pl.marker, &pl.data));
                seq = seq.wrapping_add(1);
            }
        }
        // Impair: drop 1 %, duplicate 1 %, swap neighbours 3 %.
        let mut wire = Vec::new();
        for p in sent {
            match rng.below(100) {
                0 => {}
                1 => {
                    wire.push(p.clone());
                    wire.push(p);
                }
                _ => wire.push(p),
            }
        }
        for i in 1..wire.len() {
            if rng.below(100) < 3 {
                wire.swap(i - 1, i);
            }
        }
        let mut out = push_all(&mut d, &wire);
        d.flush(&mut out);
        let mut waiting = true;
        for f in frames(&out) {
            assert_eq!(
                by_pts.get(&f.pts).map(|v| &v[..]),
                Some(&f.data[..]),
                "round {round}: frame at {} altered",
                f.pts
            );
            if waiting {
                assert!(f.keyframe, "round {round}: first frame is a keyframe");
                waiting = false;
            }
        }
        let st = d.stats();
        assert_eq!(st.frames as usize, frames(&out).len());
        assert!(st.frames + st.frames_dropped <= input.len() as u64 + st.lost);
        assert_eq!(st.malformed, 0, "round {round}: loss is not malformation");
    }
}

// --- H.265, RFC 7798 ---

/// VPS, SPS, PPS and an IDR_W_RADL slice: headers per RFC 7798 §1.1.4 (type << 1,
/// LayerId 0, TID 1).
const H265_VPS: &[u8] = &[0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF];
const H265_SPS: &[u8] = &[0x42, 0x01, 0x01, 0x01, 0x60, 0x00];
const H265_PPS: &[u8] = &[0x44, 0x01, 0xC1, 0x72, 0xB4];
const H265_IDR: &[u8] = &[0x26, 0x01, 0xAF, 0x09, 0x40, 0xF3, 0xB8];
const H265_TRAIL: &[u8] = &[0x02, 0x01, 0xD0, 0x2F, 0x01];

/// An AP (RFC 7798 §4.4.2, figure 7, no DONL): PayloadHdr type 48, then size + unit.
fn ap(units: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x60, 0x01];
    for u in units {
        out.extend_from_slice(&(u.len() as u16).to_be_bytes());
        out.extend_from_slice(u);
    }
    out
}

#[test]
fn h265_ap_with_parameter_sets_then_fu() {
    let mut d = h265();
    let out = push_all(
        &mut d,
        &[
            rtp(1, 0, false, &ap(&[H265_VPS, H265_SPS, H265_PPS])),
            // FU (§4.4.3): PayloadHdr type 49, FU header S|E|FuType(19).
            rtp(2, 0, false, &[0x62, 0x01, 0x93, 0xAF, 0x09]),
            rtp(3, 0, false, &[0x62, 0x01, 0x13, 0x40]),
            rtp(4, 0, true, &[0x62, 0x01, 0x53, 0xF3, 0xB8]),
            rtp(5, 3000, true, H265_TRAIL),
        ],
    );
    let p = params(&out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].vps, [Bytes::from_static(H265_VPS)]);
    assert_eq!(p[0].sps, [Bytes::from_static(H265_SPS)]);
    assert_eq!(p[0].pps, [Bytes::from_static(H265_PPS)]);
    assert_eq!(times(&out), [(0, true), (3000, false)]);
    let f = frames(&out);
    assert_eq!(
        &f[0].data[..],
        &avcc(&[H265_VPS, H265_SPS, H265_PPS, H265_IDR])[..]
    );
    assert_eq!(&f[1].data[..], &avcc(&[H265_TRAIL])[..]);
}

#[test]
fn h265_cra_is_a_keyframe_and_aud_is_dropped() {
    let cra: &[u8] = &[0x2A, 0x01, 0x11, 0x22];
    let aud: &[u8] = &[0x46, 0x01, 0x50];
    let mut d = h265();
    let out = push_all(&mut d, &[rtp(1, 0, false, aud), rtp(2, 0, true, cra)]);
    assert_eq!(times(&out), [(0, true)]);
    assert_eq!(&frames(&out)[0].data[..], &avcc(&[cra])[..]);
}

#[test]
fn h265_loss_drops_until_irap() {
    let mut d = h265().with_reorder_window(0);
    let out = push_all(
        &mut d,
        &[
            rtp(1, 0, true, &ap(&[H265_VPS, H265_SPS, H265_PPS, H265_IDR])),
            rtp(2, 3000, false, &[0x62, 0x01, 0x81, 0xD0]),
            rtp(4, 3000, true, &[0x62, 0x01, 0x41, 0x01]),
            rtp(5, 6000, true, H265_TRAIL),
            rtp(6, 9000, true, &ap(&[H265_IDR])),
        ],
    );
    assert_eq!(times(&out), [(0, true), (9000, true)]);
    assert_eq!((d.stats().lost, d.stats().frames_dropped), (1, 2));
}

#[test]
fn malformed_h265_payloads() {
    let cases: [(&[u8], bool, &str); 9] = [
        (&[0x02], false, "shorter than the header"),
        (&[0x66, 0x01, 0x00], false, "type 51"),
        (&[0x02, 0x00, 0x01], true, "TID 0"),
        (&[0x62, 0x01], true, "FU without FU header"),
        (&[0x62, 0x01, 0xD3, 0x01], true, "FU with S and E"),
        (&[0x62, 0x01, 0xB0, 0x01], true, "FU of an AP"),
        (&[0x60, 0x01, 0x00, 0x05, 0x02, 0x01], true, "truncated AP"),
        (
            &[0x60, 0x01, 0x00, 0x01, 0x02],
            true,
            "AP unit shorter than a header",
        ),
        (&[0x60, 0x01], true, "empty AP"),
    ];
    for (payload, drops, name) in cases {
        let mut d = h265();
        let out = push_all(
            &mut d,
            &[
                rtp(1, 0, false, payload),
                rtp(2, 0, true, H265_IDR),
                rtp(3, 3000, true, H265_IDR),
            ],
        );
        assert_eq!(d.stats().malformed, 1, "{name}");
        let want: &[(i64, bool)] = if drops {
            &[(3000, true)]
        } else {
            &[(0, true), (3000, true)]
        };
        assert_eq!(times(&out), want, "{name}");
    }
    // PACI is skipped without counting.
    let mut d = h265();
    let out = push_all(
        &mut d,
        &[
            rtp(1, 0, false, &[0x64, 0x01, 0x26, 0x00]),
            rtp(2, 0, true, H265_IDR),
        ],
    );
    assert_eq!(times(&out), [(0, true)]);
    assert_eq!(d.stats().malformed, 0);
}

#[test]
fn h265_round_trips_through_packetize_h265() {
    let mut track = Track::new(TrackId(0), Codec::H265, 90_000);
    track.params.vps = vec![Bytes::from_static(H265_VPS)];
    track.params.sps = vec![Bytes::from_static(H265_SPS)];
    track.params.pps = vec![Bytes::from_static(H265_PPS)];
    let mut d = h265();
    let mut out = Vec::new();
    let mut seq = 100u16;
    let mut want = Vec::new();
    for i in 0..90u32 {
        let key = i % 30 == 0;
        let len = if key {
            20_000
        } else {
            300 + (i as usize * 97) % 4000
        };
        let mut slice = vec![if key { 0x26 } else { 0x02 }, 0x01];
        slice.extend((0..len).map(|j| (j * 31 + i as usize) as u8));
        let frame = Frame {
            track: TrackId(0),
            kind: MediaKind::Video,
            keyframe: key,
            dts: i64::from(i) * 3000,
            pts: i64::from(i) * 3000,
            data: Bytes::from(avcc(&[&slice])),
        };
        let p = packetize_h265(&track, &frame, MAX_PAYLOAD).unwrap();
        want.push(if key {
            avcc(&[H265_VPS, H265_SPS, H265_PPS, &slice])
        } else {
            avcc(&[&slice])
        });
        for pl in &p.payloads {
            d.push(
                &rtp(
                    seq,
                    p.rtp_time.wrapping_add(0xFFFF_0000),
                    pl.marker,
                    &pl.data,
                ),
                &mut out,
            );
            seq = seq.wrapping_add(1);
        }
    }
    let got = frames(&out);
    assert_eq!(got.len(), 90);
    for (i, (f, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(&f.data[..], &w[..], "frame {i}");
        assert_eq!(f.pts, i as i64 * 3000);
        assert_eq!(f.keyframe, i % 30 == 0);
    }
    assert_eq!(params(&out).len(), 1);
}

// --- AAC, RFC 3640 ---

/// AAC-hbr (RFC 3640 §3.3.6): 13-bit AU-size, 3-bit AU-Index / AU-Index-delta.
fn aac_hbr() -> Depacketizer {
    Depacketizer::new(
        DepackConfig::Aac {
            size_length: 13,
            index_length: 3,
            index_delta_length: 3,
        },
        TrackId(1),
        48_000,
    )
}

#[test]
fn aac_one_au_per_packet() {
    let mut d = aac_hbr();
    // AU-headers-length 16 bits; AU-size 6 (6 << 3 = 0x0030), AU-Index 0.
    let au = [0x21, 0x10, 0x05, 0x00, 0xA0, 0x1C];
    let mut payload = vec![0x00, 0x10, 0x00, 0x30];
    payload.extend_from_slice(&au);
    let out = push_all(
        &mut d,
        &[rtp(1, 5000, true, &payload), rtp(2, 6024, true, &payload)],
    );
    let f = frames(&out);
    assert_eq!(f.len(), 2);
    assert_eq!(&f[0].data[..], &au);
    assert_eq!(
        (f[0].kind, f[0].keyframe, f[0].track),
        (MediaKind::Audio, true, TrackId(1))
    );
    assert_eq!((f[0].pts, f[1].pts), (0, 1024));
    assert_eq!(d.next_time(), Some(2048));
}

#[test]
fn aac_three_aus_in_one_packet() {
    let mut d = aac_hbr();
    // AU-headers-length 48: sizes 4, 5, 6 with AU-Index 0 and AU-Index-delta 0.
    let mut payload = vec![0x00, 0x30, 0x00, 0x20, 0x00, 0x28, 0x00, 0x30];
    payload.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3]);
    let out = push_all(
        &mut d,
        &[rtp(1, 0, true, &payload), rtp(2, 3072, true, &payload)],
    );
    let f = frames(&out);
    assert_eq!(
        f.iter().map(|f| f.pts).collect::<Vec<_>>(),
        [0, 1024, 2048, 3072, 4096, 5120]
    );
    assert_eq!(&f[1].data[..], &[2, 2, 2, 2, 2]);
    assert_eq!(&f[2].data[..], &[3; 6]);
    assert_eq!(d.stats().discontinuities, 0);

    // AU-Index-delta 1 (interleaving): the second AU is two frames later.
    let mut d = aac_hbr();
    let payload = [0x00, 0x20, 0x00, 0x08, 0x00, 0x09, 0xAA, 0xBB];
    let out = push_all(&mut d, &[rtp(1, 0, true, &payload)]);
    assert_eq!(times(&out), [(0, true), (2048, true)]);
}

#[test]
fn aac_lbr_headers() {
    // AAC-lbr (RFC 3640 §3.3.5): 6-bit AU-size, 2-bit index: one byte per AU header.
    let mut d = Depacketizer::new(
        DepackConfig::Aac {
            size_length: 6,
            index_length: 2,
            index_delta_length: 2,
        },
        TrackId(1),
        24_000,
    );
    let payload = [0x00, 0x10, 0x0C, 0x10, 7, 7, 7, 8, 8, 8, 8];
    let out = push_all(&mut d, &[rtp(1, 0, true, &payload)]);
    let f = frames(&out);
    assert_eq!(f.len(), 2);
    assert_eq!(
        (&f[0].data[..], &f[1].data[..]),
        (&[7u8, 7, 7][..], &[8u8; 4][..])
    );
}

#[test]
fn aac_fragmented_au() {
    // One AU of 10 bytes over three packets: each carries an AU header with the whole
    // AU's size (10 << 3 = 0x0050); the marker is on the last.
    let frag = |seq, marker, data: &[u8]| {
        let mut p = vec![0x00, 0x10, 0x00, 0x50];
        p.extend_from_slice(data);
        rtp(seq, 9000, marker, &p)
    };
    let pkts = [
        frag(1, false, &[0, 1, 2, 3]),
        frag(2, false, &[4, 5, 6]),
        frag(3, true, &[7, 8, 9]),
    ];
    let mut d = aac_hbr();
    let out = push_all(&mut d, &pkts);
    let f = frames(&out);
    assert_eq!(f.len(), 1);
    assert_eq!(&f[0].data[..], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    // The middle fragment lost: dropped, the next AU is fine.
    let single = [0x00, 0x10, 0x00, 0x10, 0x42, 0x43];
    let mut d = aac_hbr().with_reorder_window(0);
    let out = push_all(
        &mut d,
        &[
            pkts[0].clone(),
            pkts[2].clone(),
            rtp(4, 10_024, true, &single),
        ],
    );
    assert_eq!(frames(&out).len(), 1);
    assert_eq!((d.stats().lost, d.stats().frames_dropped), (1, 1));

    // Larger than the frame limit: dropped at its end.
    let mut d = aac_hbr().with_max_frame(8);
    let out = push_all(&mut d, &pkts);
    assert!(frames(&out).is_empty());
    assert_eq!(d.stats().oversized, 1);

    // Fragments longer than the AU claims.
    let mut d = aac_hbr();
    let out = push_all(
        &mut d,
        &[
            frag(1, false, &[0, 1, 2, 3, 4, 5, 6, 7]),
            frag(2, true, &[8, 9, 10]),
        ],
    );
    assert!(frames(&out).is_empty());
    assert_eq!(d.stats().malformed, 1);
}

#[test]
fn aac_garbage_is_malformed() {
    let cases: [&[u8]; 7] = [
        &[],
        &[0x00],
        // AU-headers-length past the end.
        &[0xFF, 0xFF, 0x00, 0x30],
        // 17 bits: a header and one stray bit.
        &[0x00, 0x11, 0x00, 0x08, 0x00, 0xAA],
        // Sizes 1 + 1 but 3 bytes of data.
        &[0x00, 0x20, 0x00, 0x08, 0x00, 0x08, 1, 2, 3],
        // AU-size 0.
        &[0x00, 0x10, 0x00, 0x00],
        // No AU header.
        &[0x00, 0x00, 0x01],
    ];
    for payload in cases {
        let mut d = aac_hbr();
        let out = push_all(&mut d, &[rtp(1, 0, true, payload)]);
        assert!(frames(&out).is_empty(), "{payload:?}");
        assert_eq!(d.stats().malformed, 1, "{payload:?}");
    }
}

// --- Opus and G.711 ---

#[test]
fn opus_payload_is_the_frame() {
    let mut d = Depacketizer::new(DepackConfig::Opus, TrackId(1), 48_000).with_reorder_window(0);
    let a = [0xF8, 0xFF, 0xFE];
    let out = push_all(
        &mut d,
        &[
            rtp(1, 0xFFFF_FE00, false, &a),
            rtp(2, 0xFFFF_FE00u32.wrapping_add(960), false, &a),
        ],
    );
    assert_eq!(times(&out), [(0, true), (960, true)]);
    assert_eq!(&frames(&out)[0].data[..], &a);
    // Loss needs no keyframe: the next packet plays.
    let out = push_all(
        &mut d,
        &[rtp(9, 0xFFFF_FE00u32.wrapping_add(8 * 960), false, &a)],
    );
    assert_eq!(times(&out), [(7680, true)]);
    // Empty payloads are malformed; a 30 s jump continues after the last frame.
    let out = push_all(
        &mut d,
        &[rtp(10, 0, false, &[]), rtp(11, 48_000 * 30, false, &a)],
    );
    assert_eq!(times(&out), [(8640, true)]);
    assert_eq!((d.stats().malformed, d.stats().discontinuities), (1, 1));
}

#[test]
fn g711_payload_is_the_samples() {
    for config in [DepackConfig::Pcma, DepackConfig::Pcmu] {
        let mut d = Depacketizer::new(config, TrackId(1), 8000);
        let samples = [0xD5u8; 160];
        let out = push_all(
            &mut d,
            &[rtp(7, 100, false, &samples), rtp(8, 260, false, &samples)],
        );
        assert_eq!(times(&out), [(0, true), (160, true)]);
        assert_eq!(&frames(&out)[1].data[..], &samples);
        assert_eq!(d.next_time(), Some(320));
    }
}

// --- helpers for realistic streams ---

fn h264_track() -> Track {
    let mut t = Track::new(TrackId(0), Codec::H264, 90_000);
    t.params.sps = vec![Bytes::from_static(SPS)];
    t.params.pps = vec![Bytes::from_static(PPS)];
    t
}

/// 30 fps, IDR every 60 frames (~30 kB), P-frames ~8 kB; pts step `step`.
fn synthetic_h264(count: usize, step: i64) -> Vec<Frame> {
    (0..count)
        .map(|i| {
            let key = i % 60 == 0;
            let len = if key {
                30_000
            } else {
                7_000 + (i * 211) % 2_000
            };
            let mut slice = vec![if key { 0x65 } else { 0x41 }];
            slice.extend((1..len).map(|j| (j * 7 + i) as u8));
            Frame {
                track: TrackId(0),
                kind: MediaKind::Video,
                keyframe: key,
                dts: i as i64 * step,
                pts: i as i64 * step,
                data: Bytes::from(avcc(&[&slice])),
            }
        })
        .collect()
}

/// The video track and frames of `configs/media/demo.flv`.
fn demo_video() -> (Track, Vec<Frame>) {
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/media/demo.flv"
    ))
    .unwrap();
    let clip = Clip::parse(Bytes::from(file), 8 << 20).unwrap();
    let mut demux = Demuxer::new();
    let mut frames = Vec::new();
    for tag in clip.tags().iter().filter(|t| t.kind == TagType::Video) {
        if let Ok(Some(DemuxOutput::Frame(f))) = demux.video(tag.offset_ms, &tag.body) {
            frames.push(f);
        }
    }
    (demux.tracks().into_iter().next().unwrap(), frames)
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
