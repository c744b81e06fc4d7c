//! H.264 RTP payloads per RFC 6184, packetization-mode 1 (non-interleaved): single NAL
//! unit packets, STAP-A aggregates and FU-A fragments.

use super::packer::{NalFormat, Packer, build};
use super::{FU_E, FU_S};
use super::{MAX_PAYLOADS_PER_FRAME, PacketizedFrame, RtpError, RtpPayload, check_max_payload};
use crate::media::h264::nal::{AUD, FILLER, FU_A, IDR, LAST_SINGLE, PPS, SPS, STAP_A, TYPE_MASK};
use crate::media::{Codec, Frame, Track, avcc_nal_units};
use bytes::Bytes;

/// NAL unit header: forbidden_zero_bit.
const NAL_F: u8 = 0x80;
/// NAL unit header: nal_ref_idc bits.
const NAL_NRI: u8 = 0x60;
/// Size of an AVCC length prefix.
const AVCC_PREFIX: usize = 4;
/// STAP-A header byte.
const STAP_A_HEADER: usize = 1;
/// STAP-A per-unit 16-bit size field.
const STAP_A_SIZE: usize = 2;
/// FU indicator plus FU header.
const FU_A_HEADER: usize = 2;

/// Packetizes one H.264 access unit (AVCC, 4-byte length prefixes) per RFC 6184,
/// packetization-mode 1.
///
/// - AUD (type 9), filler data (12), empty units and units of the RTP/reserved types
///   0 and 24..=31 are dropped.
/// - A keyframe (an IDR slice, or `frame.keyframe`) is preceded by the track's SPS and
///   PPS unless the frame carries both in-band.
/// - Consecutive units that fit together in `max_payload` are aggregated into STAP-A
///   (greedily, in order); a unit that fits alone becomes a single NAL unit packet;
///   a larger one is cut into FU-A fragments of nearly equal size, each at most
///   `max_payload` bytes.
/// - The marker bit is set on the last payload only.
///
/// Errors: empty frame, no sendable NAL unit, a truncated length prefix or unit,
/// `max_payload` out of range, more than [`MAX_PAYLOADS_PER_FRAME`] payloads (counted
/// before aggregation), or a non-H.264 track.
pub fn packetize_h264(
    track: &Track,
    frame: &Frame,
    max_payload: usize,
) -> Result<PacketizedFrame, RtpError> {
    check_max_payload(max_payload)?;
    if track.codec != Codec::H264 {
        return Err(RtpError::UnsupportedCodec(track.codec));
    }
    if frame.data.is_empty() {
        return Err(RtpError::EmptyFrame);
    }

    // First pass: validate the framing, see what the access unit carries and bound the
    // number of payloads before allocating any.
    let mut consumed = 0usize;
    let (mut has_sps, mut has_pps, mut has_idr) = (false, false, false);
    let mut bound = 0usize;
    for nal in avcc_nal_units(&frame.data) {
        consumed += AVCC_PREFIX + nal.len();
        let Some(kind) = sendable_type(&nal) else {
            continue;
        };
        has_sps |= kind == SPS;
        has_pps |= kind == PPS;
        has_idr |= kind == IDR;
        bound += payload_bound(nal.len(), max_payload);
    }
    if consumed != frame.data.len() {
        return Err(RtpError::Truncated { offset: consumed });
    }
    if bound == 0 {
        return Err(RtpError::NoNalUnits);
    }
    let keyframe = has_idr || frame.keyframe;
    let insert_params = keyframe && !(has_sps && has_pps);
    let params = track.params.sps.iter().chain(&track.params.pps);
    if insert_params {
        bound = params
            .clone()
            .filter(|ps| sendable_type(ps).is_some())
            .fold(bound, |b, ps| {
                b.saturating_add(payload_bound(ps.len(), max_payload))
            });
    }
    if bound > MAX_PAYLOADS_PER_FRAME {
        return Err(RtpError::TooManyPayloads(bound));
    }

    let mut packer = Packer::<H264>::new(max_payload, bound);
    if insert_params {
        for ps in params.filter(|ps| sendable_type(ps).is_some()) {
            packer.push(ps);
        }
    }
    for nal in avcc_nal_units(&frame.data) {
        if sendable_type(&nal).is_some() {
            packer.push(&nal);
        }
    }
    let mut payloads = packer.finish();
    if let Some(last) = payloads.last_mut() {
        last.marker = true;
    }
    Ok(PacketizedFrame {
        payloads,
        // Wrapping truncation to the 32-bit RTP clock is the intent.
        rtp_time: frame.pts as u32,
        keyframe,
    })
}

/// The NAL unit type if the unit is sent, `None` if it is dropped.
fn sendable_type(nal: &[u8]) -> Option<u8> {
    let kind = nal.first()? & TYPE_MASK;
    let plain = (0x01..=LAST_SINGLE).contains(&kind);
    (plain && kind != AUD && kind != FILLER).then_some(kind)
}

/// Most payloads a unit of `len` bytes can take (one, or its FU-A fragments).
fn payload_bound(len: usize, max_payload: usize) -> usize {
    if len <= max_payload {
        1
    } else {
        // The NAL header byte is carried in the FU headers, not in the fragments.
        (len - 1).div_ceil(max_payload - FU_A_HEADER)
    }
}

/// RFC 6184: STAP-A aggregation, FU-A fragmentation.
struct H264;

impl NalFormat for H264 {
    const AGG_HEADER: usize = STAP_A_HEADER;
    const AGG_SIZE: usize = STAP_A_SIZE;
    fn aggregate(units: &[Bytes], size: usize) -> RtpPayload {
        stap_a(units, size)
    }
    fn fragment(nal: &[u8], max: usize, out: &mut Vec<RtpPayload>) {
        fragment(nal, max, out)
    }
}

/// A STAP-A of `size` bytes: F is the OR of the units' F bits, NRI their maximum
/// (RFC 6184 §5.7.1), then each unit after its 16-bit size.
fn stap_a(units: &[Bytes], size: usize) -> RtpPayload {
    let (f, nri) = units.iter().fold((0u8, 0u8), |(f, nri), nal| {
        let h = nal.first().copied().unwrap_or(0);
        (f | (h & NAL_F), nri.max(h & NAL_NRI))
    });
    let data = build(size, |buf| {
        let Some((header, mut rest)) = buf.split_first_mut() else {
            return;
        };
        *header = f | nri | STAP_A;
        for nal in units {
            let Some((field, tail)) = std::mem::take(&mut rest).split_first_chunk_mut() else {
                return;
            };
            // Each unit is shorter than MAX_PAYLOAD_LIMIT, so its size fits 16 bits.
            *field = (nal.len() as u16).to_be_bytes();
            let Some((unit, tail)) = tail.split_at_mut_checked(nal.len()) else {
                return;
            };
            unit.copy_from_slice(nal);
            rest = tail;
        }
    });
    RtpPayload {
        data,
        marker: false,
    }
}

/// Cuts a unit longer than `max` into FU-A fragments of nearly equal size.
fn fragment(nal: &[u8], max: usize, out: &mut Vec<RtpPayload>) {
    let Some((&header, body)) = nal.split_first() else {
        return;
    };
    let indicator = (header & (NAL_F | NAL_NRI)) | FU_A;
    let kind = header & TYPE_MASK;
    let cap = max - FU_A_HEADER;
    let count = body.len().div_ceil(cap).max(1);
    let (base, extra) = (body.len() / count, body.len() % count);
    let mut rest = body;
    for i in 0..count {
        let take = (base + usize::from(i < extra)).min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let mut fu_header = kind;
        if i == 0 {
            fu_header |= FU_S;
        }
        if i + 1 == count {
            fu_header |= FU_E;
        }
        let data = build(FU_A_HEADER + chunk.len(), |buf| {
            if let [a, b, rest @ ..] = buf {
                *a = indicator;
                *b = fu_header;
                rest.copy_from_slice(chunk);
            }
        });
        out.push(RtpPayload {
            data,
            marker: false,
        });
    }
}

/// Reassembles the NAL units of one packetization-mode 1 payload sequence (single NAL
/// unit packets, STAP-A, FU-A), in order, with no loss.
///
/// Test-only, for round-tripping [`packetize_h264`] (ingest uses [`super::depack`]): it does no sequence-number,
/// loss or timestamp handling and is not an ingest depacketizer. Output is bounded by
/// the input size. Errors on empty payloads, truncated STAP-A entries, FU-A fragments out
/// of order (no start, a second start, an unfinished unit) and packet types other than
/// 1..=23, 24 and 28.
#[cfg(test)]
pub(crate) fn depacketize_h264(payloads: &[&[u8]]) -> Result<Vec<Vec<u8>>, RtpError> {
    let mut units = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    for payload in payloads {
        let (&header, body) = payload
            .split_first()
            .ok_or(RtpError::Malformed("empty payload"))?;
        let kind = header & TYPE_MASK;
        if kind != FU_A && partial.is_some() {
            return Err(RtpError::Malformed("FU-A interrupted before its end"));
        }
        match kind {
            0x01..=LAST_SINGLE => units.push(payload.to_vec()),
            STAP_A => {
                if body.is_empty() {
                    return Err(RtpError::Malformed("empty STAP-A"));
                }
                let mut rest = body;
                while !rest.is_empty() {
                    let (size, tail) = rest
                        .split_first_chunk::<STAP_A_SIZE>()
                        .ok_or(RtpError::Malformed("truncated STAP-A size"))?;
                    let size = usize::from(u16::from_be_bytes(*size));
                    if size == 0 {
                        return Err(RtpError::Malformed("empty STAP-A unit"));
                    }
                    let (unit, tail) = tail
                        .split_at_checked(size)
                        .ok_or(RtpError::Malformed("truncated STAP-A unit"))?;
                    units.push(unit.to_vec());
                    rest = tail;
                }
            }
            FU_A => {
                let (&fu_header, chunk) = body
                    .split_first()
                    .ok_or(RtpError::Malformed("FU-A without FU header"))?;
                let (start, end) = (fu_header & FU_S != 0, fu_header & FU_E != 0);
                let nal_header = (header & (NAL_F | NAL_NRI)) | (fu_header & TYPE_MASK);
                if start {
                    if end {
                        return Err(RtpError::Malformed("FU-A with both S and E"));
                    }
                    if partial.is_some() {
                        return Err(RtpError::Malformed("FU-A start inside a unit"));
                    }
                    let mut unit = Vec::with_capacity(1 + chunk.len());
                    unit.push(nal_header);
                    unit.extend_from_slice(chunk);
                    partial = Some(unit);
                } else {
                    let unit = partial
                        .as_mut()
                        .ok_or(RtpError::Malformed("FU-A continuation without start"))?;
                    if unit.first() != Some(&nal_header) {
                        return Err(RtpError::Malformed("FU-A header changed within a unit"));
                    }
                    unit.extend_from_slice(chunk);
                    if end && let Some(unit) = partial.take() {
                        units.push(unit);
                    }
                }
            }
            _ => return Err(RtpError::Malformed("unsupported packet type")),
        }
    }
    if partial.is_some() {
        return Err(RtpError::Malformed("unfinished FU-A"));
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::clip::Clip;
    use crate::media::flv::{DemuxOutput, Demuxer, TagType};
    use crate::media::{MediaKind, TrackId};
    use crate::rtp::{MAX_PAYLOAD, MAX_PAYLOAD_LIMIT};

    /// x264 `-profile:v baseline` SPS, 1280x720 at 30 fps.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xC0, 0x1F, 0xD9, 0x00, 0x50, 0x05, 0xBB, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
        0x10, 0x00, 0x00, 0x03, 0x03, 0xC0, 0xF1, 0x83, 0x24, 0x80,
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
        // Nearly equal sizes: no tiny tail fragment.
        let sizes: Vec<usize> = frags.iter().map(|f| f.data.len()).collect();
        let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(hi - lo <= 1, "{sizes:?}");
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
            let Some(DemuxOutput::Frame(frame)) = demux.video(tag.offset_ms, &tag.body).unwrap()
            else {
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
}
