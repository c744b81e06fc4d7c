use super::*;
use crate::media::ParamSets;
use mp4_atom::Decode;

/// SPS and PPS from libx264 (`-profile:v high`, 640x360).
const H264_HIGH_SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
    0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16, 0x2d, 0x96,
];
const H264_HIGH_PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
/// VPS, SPS and PPS from libx265 (Main, 640x360, level 2.1).
const H265_VPS: &[u8] = &[
    0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03,
    0x00, 0x00, 0x03, 0x00, 0x3f, 0x95, 0x98, 0x09,
];
const H265_SPS: &[u8] = &[
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03,
    0x00, 0x3f, 0xa0, 0x05, 0x02, 0x01, 0x69, 0x65, 0x95, 0x9a, 0x49, 0x32, 0xbc, 0x05, 0xa0, 0x20,
    0x00, 0x00, 0x03, 0x00, 0x20, 0x00, 0x00, 0x03, 0x03, 0xc1,
];
const H265_PPS: &[u8] = &[0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40];
/// AudioSpecificConfig: AAC-LC, 48 kHz, stereo.
const AAC_LC_48K_STEREO: &[u8] = &[0x11, 0x90];

fn h264_track(id: u8) -> Track {
    let mut t = Track::new(TrackId(id), Codec::H264, 90_000);
    t.params.sps = vec![Bytes::from_static(H264_HIGH_SPS)];
    t.params.pps = vec![Bytes::from_static(H264_HIGH_PPS)];
    t.apply_params();
    t
}

fn h265_track(id: u8) -> Track {
    let mut t = Track::new(TrackId(id), Codec::H265, 90_000);
    t.params = ParamSets {
        vps: vec![Bytes::from_static(H265_VPS)],
        sps: vec![Bytes::from_static(H265_SPS)],
        pps: vec![Bytes::from_static(H265_PPS)],
        audio_config: None,
    };
    t.apply_params();
    t
}

fn aac_track(id: u8) -> Track {
    let mut t = Track::new(TrackId(id), Codec::Aac, 48_000);
    t.params.audio_config = Some(Bytes::from_static(AAC_LC_48K_STEREO));
    t.channels = Some(2);
    t
}

fn opus_track(id: u8) -> Track {
    let mut t = Track::new(TrackId(id), Codec::Opus, 48_000);
    t.channels = Some(2);
    t
}

fn video(id: u8, dts: i64, pts: i64, keyframe: bool, data: &'static [u8]) -> Frame {
    Frame {
        track: TrackId(id),
        kind: MediaKind::Video,
        keyframe,
        dts,
        pts,
        data: Bytes::from_static(data),
    }
}

fn audio_frame(id: u8, dts: i64, data: &'static [u8]) -> Frame {
    Frame {
        track: TrackId(id),
        kind: MediaKind::Audio,
        keyframe: true,
        dts,
        pts: dts,
        data: Bytes::from_static(data),
    }
}

/// Splits `data` into its boxes: (type, whole box). Panics when the sizes do not add up.
fn boxes(data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(size >= 8, "box at {pos} has size {size}");
        assert!(pos + size <= data.len(), "box at {pos} overruns its parent");
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        out.push((kind, &data[pos..pos + size]));
        pos += size;
    }
    assert_eq!(pos, data.len(), "box sizes do not add up");
    out
}

fn kinds(list: &[([u8; 4], &[u8])]) -> Vec<String> {
    list.iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// Checks a fragment's layout (every size adds up, the data offset points at the mdat
/// body) and decodes its moof; returns it with the mdat body.
fn parse_fragment(frag: &[u8]) -> (mp4_atom::Moof, Vec<u8>) {
    let top = boxes(frag);
    assert_eq!(kinds(&top), ["moof", "mdat"]);
    let moof_box = top[0].1;
    let children = boxes(&moof_box[8..]);
    assert_eq!(kinds(&children), ["mfhd", "traf"]);
    let traf = boxes(&children[1].1[8..]);
    assert_eq!(kinds(&traf), ["tfhd", "tfdt", "trun"]);
    let moof = mp4_atom::Moof::decode(&mut &moof_box[..]).expect("moof decodes");
    let trun = &moof.traf[0].trun[0];
    let offset = trun.data_offset.expect("data offset") as usize;
    assert_eq!(
        offset,
        moof_box.len() + 8,
        "data offset points into the mdat"
    );
    let mdat = frag[offset..].to_vec();
    let size = trun
        .samples
        .get(0)
        .and_then(|e| e.size)
        .expect("sample size");
    assert_eq!(size as usize, mdat.len());
    (moof, mdat)
}

fn stsd(trak: &mp4_atom::Trak) -> &mp4_atom::Codec {
    &trak.mdia.minf.stbl.stsd.codecs[0]
}

#[test]
fn h264_high_and_aac_init_segment_parses_back() {
    let mux = Muxer::new(&[h264_track(0), aac_track(1)]).expect("muxer");
    assert_eq!(mux.codecs(), "avc1.64001e,mp4a.40.2");
    let init = mux.init_segment();
    let top = boxes(&init);
    assert_eq!(kinds(&top), ["ftyp", "moov"]);
    let moov = mp4_atom::Moov::decode(&mut &top[1].1[..]).expect("moov decodes");
    assert_eq!(moov.trak.len(), 2);
    let trex = &moov.mvex.as_ref().expect("mvex").trex;
    assert_eq!(trex.iter().map(|t| t.track_id).collect::<Vec<_>>(), [1, 2]);

    let v = &moov.trak[0];
    assert_eq!(v.tkhd.track_id, 1);
    assert_eq!(v.tkhd.width.integer(), 640);
    assert_eq!(v.tkhd.height.integer(), 360);
    assert_eq!(v.mdia.mdhd.timescale, 90_000);
    assert_eq!(v.mdia.hdlr.handler, b"vide".into());
    assert!(v.mdia.minf.vmhd.is_some());
    let mp4_atom::Codec::Avc1(avc1) = stsd(v) else {
        panic!("video entry is {:?}", stsd(v));
    };
    assert_eq!(avc1.visual.width, 640);
    assert_eq!(avc1.visual.height, 360);
    assert_eq!(avc1.avcc.avc_profile_indication, 100);
    assert_eq!(avc1.avcc.length_size, 4);
    assert_eq!(avc1.avcc.sequence_parameter_sets, [H264_HIGH_SPS.to_vec()]);
    assert_eq!(avc1.avcc.picture_parameter_sets, [H264_HIGH_PPS.to_vec()]);

    let a = &moov.trak[1];
    assert_eq!(a.tkhd.track_id, 2);
    assert_eq!(a.mdia.mdhd.timescale, 48_000);
    assert_eq!(a.mdia.hdlr.handler, b"soun".into());
    assert!(a.mdia.minf.smhd.is_some());
    let mp4_atom::Codec::Mp4a(mp4a) = stsd(a) else {
        panic!("audio entry is {:?}", stsd(a));
    };
    assert_eq!(mp4a.audio.channel_count, 2);
    assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
    let dc = &mp4a.esds.es_desc.dec_config;
    assert_eq!(dc.object_type_indication, 0x40);
    assert_eq!(dc.stream_type, 5);
    let ds = dc.dec_specific.as_ref().expect("decoder specific info");
    assert_eq!(ds.raw, AAC_LC_48K_STEREO);
    assert_eq!((ds.profile, ds.freq_index, ds.chan_conf), (2, 3, 2));
}

#[test]
fn h265_and_opus_init_segment_parses_back() {
    let mux = Muxer::new(&[h265_track(0), opus_track(1)]).expect("muxer");
    assert_eq!(mux.codecs(), "hvc1.1.6.L63.90,opus");
    let init = mux.init_segment();
    let top = boxes(&init);
    let moov = mp4_atom::Moov::decode(&mut &top[1].1[..]).expect("moov decodes");
    let v = &moov.trak[0];
    assert_eq!(v.tkhd.width.integer(), 640);
    let mp4_atom::Codec::Hvc1(hvc1) = stsd(v) else {
        panic!("video entry is {:?}", stsd(v));
    };
    let h = &hvc1.hvcc;
    assert_eq!(h.general_profile_idc, 1);
    assert!(!h.general_tier_flag);
    assert_eq!(h.general_level_idc, 63);
    assert_eq!(h.general_profile_compatibility_flags, [0x60, 0, 0, 0]);
    assert_eq!(h.general_constraint_indicator_flags, [0x90, 0, 0, 0, 0, 0]);
    assert_eq!(h.chroma_format_idc, 1);
    assert_eq!(h.bit_depth_luma_minus8, 0);
    assert_eq!(h.length_size_minus_one, 3);
    let arrays: Vec<(u8, bool, usize)> = h
        .arrays
        .iter()
        .map(|a| (a.nal_unit_type, a.completeness, a.nalus.len()))
        .collect();
    assert_eq!(arrays, [(32, true, 1), (33, true, 1), (34, true, 1)]);
    assert_eq!(h.arrays[1].nalus[0], H265_SPS);

    let a = &moov.trak[1];
    assert_eq!(a.mdia.mdhd.timescale, 48_000);
    let mp4_atom::Codec::Opus(opus) = stsd(a) else {
        panic!("audio entry is {:?}", stsd(a));
    };
    assert_eq!(opus.dops.output_channel_count, 2);
    assert_eq!(opus.dops.pre_skip, 312);
    assert_eq!(opus.dops.input_sample_rate, 48_000);
    assert_eq!(opus.dops.output_gain, 0);
    assert!(opus.dops.channel_mapping.is_none());
    assert_eq!(opus.audio.sample_rate.integer(), 48_000);
}

#[test]
fn uncarried_tracks_are_left_out_and_missing_params_refused() {
    let pcma = Track::new(TrackId(1), Codec::Pcma, 8000);
    assert!(matches!(
        Muxer::new(std::slice::from_ref(&pcma)),
        Err(Fmp4Error::NoTracks)
    ));
    let mut mux = Muxer::new(&[h264_track(0), pcma]).expect("muxer");
    assert!(mux.carries(TrackId(0)));
    assert!(!mux.carries(TrackId(1)));
    assert_eq!(mux.codecs(), "avc1.64001e");
    assert!(mux.push(&audio_frame(1, 0, b"x")).is_none());

    let bare = Track::new(TrackId(0), Codec::H264, 90_000);
    assert!(matches!(
        Muxer::new(&[bare]),
        Err(Fmp4Error::MissingParams { what: "SPS", .. })
    ));
    let aac = Track::new(TrackId(0), Codec::Aac, 44_100);
    assert!(matches!(
        Muxer::new(&[aac]),
        Err(Fmp4Error::MissingParams { .. })
    ));
    let mut hevc = h265_track(0);
    hevc.params.vps.clear();
    assert!(matches!(
        Muxer::new(&[hevc]),
        Err(Fmp4Error::MissingParams { what: "VPS", .. })
    ));
}

#[test]
fn fragment_trun_has_size_duration_flags_and_composition_offset() {
    let mut mux = Muxer::new(&[h264_track(0), aac_track(1)]).expect("muxer");
    let base = 123_456_789_i64 * 90;
    let key: &'static [u8] = &[0, 0, 0, 3, 0x65, 1, 2];
    let b: &'static [u8] = &[0, 0, 0, 2, 0x01, 9];
    assert!(mux.push(&video(0, base, base + 6000, true, key)).is_none());
    let frag = mux
        .push(&video(0, base + 3000, base + 3000, false, b))
        .expect("the keyframe is released");
    let (moof, mdat) = parse_fragment(&frag);
    assert_eq!(moof.mfhd.sequence_number, 1);
    let traf = &moof.traf[0];
    assert_eq!(traf.tfhd.track_id, 1);
    assert!(traf.tfhd.default_base_is_moof);
    assert_eq!(
        traf.tfdt.as_ref().expect("tfdt").base_media_decode_time,
        10 * 90_000
    );
    let e = traf.trun[0].samples.get(0).expect("one sample");
    assert_eq!(traf.trun[0].samples.len(), 1);
    assert_eq!(e.size, Some(key.len() as u32));
    assert_eq!(e.duration, Some(3000));
    assert_eq!(e.flags, Some(0x0200_0000));
    assert_eq!(e.cts, Some(6000));
    assert_eq!(mdat, key);

    // Audio 0.5 s older than the first video frame still fits after the margin.
    let a0 = base / 90 * 48 - 24_000;
    assert!(mux.push(&audio_frame(1, a0, b"aa")).is_none());
    let frag = mux.push(&audio_frame(1, a0 + 1024, b"bbb")).expect("audio");
    let (moof, mdat) = parse_fragment(&frag);
    assert_eq!(moof.mfhd.sequence_number, 2);
    let traf = &moof.traf[0];
    assert_eq!(traf.tfhd.track_id, 2);
    assert_eq!(
        traf.tfdt.as_ref().unwrap().base_media_decode_time,
        9 * 48_000 + 24_000
    );
    let e = traf.trun[0].samples.get(0).unwrap();
    assert_eq!(
        (e.duration, e.flags, e.cts),
        (Some(1024), Some(0x0200_0000), Some(0))
    );
    assert_eq!(mdat, b"aa");

    // Flush releases the held frames with the last durations; the B-frame is non-sync.
    let rest = mux.flush();
    assert_eq!(rest.len(), 2);
    let (moof, mdat) = parse_fragment(&rest[0]);
    assert_eq!(moof.mfhd.sequence_number, 3);
    let e = moof.traf[0].trun[0].samples.get(0).unwrap();
    assert_eq!(
        (e.duration, e.flags, e.cts),
        (Some(3000), Some(0x0101_0000), Some(0))
    );
    assert_eq!(mdat, b);
    let (moof, _) = parse_fragment(&rest[1]);
    assert_eq!(moof.traf[0].tfhd.track_id, 2);
    assert!(mux.flush().is_empty());
}

#[test]
fn negative_composition_offset_is_signed() {
    let mut mux = Muxer::new(&[h264_track(0)]).expect("muxer");
    mux.push(&video(0, 9000, 6000, true, b"\0\0\0\x01\x65"));
    let frag = mux.flush().pop().expect("fragment");
    let (moof, _) = parse_fragment(&frag);
    let e = moof.traf[0].trun[0].samples.get(0).unwrap();
    assert_eq!(e.cts, Some(-3000));
    // No duration measured: the default of 30 fps.
    assert_eq!(e.duration, Some(3000));
}

#[test]
fn dts_jump_uses_previous_duration() {
    let mut t = h264_track(0);
    t.fps = Some(25.0);
    let mut mux = Muxer::new(&[t]).expect("muxer");
    let f = |dts| video(0, dts, dts, true, b"\0\0\0\x01\x65");
    let duration = |frag: Bytes| {
        let (moof, _) = parse_fragment(&frag);
        moof.traf[0].trun[0].samples.get(0).unwrap().duration
    };
    assert!(mux.push(&f(0)).is_none());
    assert_eq!(mux.push(&f(3003)).map(duration), Some(Some(3003)));
    // A jump of 20 s forward, then a step backwards, then a repeat: previous duration.
    assert_eq!(
        mux.push(&f(3003 + 20 * 90_000)).map(duration),
        Some(Some(3003))
    );
    assert_eq!(mux.push(&f(6006)).map(duration), Some(Some(3003)));
    assert_eq!(mux.push(&f(6006)).map(duration), Some(Some(3003)));
    // Without any measured duration the track's frame rate gives it.
    let mut t = h264_track(0);
    t.fps = Some(25.0);
    let mut mux = Muxer::new(&[t]).expect("muxer");
    assert!(mux.push(&f(0)).is_none());
    assert_eq!(mux.push(&f(50 * 90_000)).map(duration), Some(Some(3600)));
    // A dts that does not fit the decode time is dropped; the held frame stays.
    assert!(mux.push(&f(i64::MAX)).is_none());
    assert_eq!(mux.flush().len(), 1);
}

#[test]
fn frames_before_the_origin_are_dropped() {
    let mut mux = Muxer::new(&[h264_track(0), aac_track(1)]).expect("muxer");
    assert!(
        mux.push(&video(
            0,
            90_000 * 100,
            90_000 * 100,
            true,
            b"\0\0\0\x01\x65"
        ))
        .is_none()
    );
    // 11 s older than the first frame: before the origin.
    assert!(mux.push(&audio_frame(1, 48_000 * 89, b"a")).is_none());
    assert!(
        mux.push(&video(0, i64::MIN, i64::MAX, false, b"x"))
            .is_none()
    );
    assert!(mux.push(&audio_frame(1, i64::MIN, b"a")).is_none());
    // Empty payloads are not samples.
    assert!(mux.push(&audio_frame(1, 48_000 * 100, b"")).is_none());
    let rest = mux.flush();
    assert_eq!(rest.len(), 1, "only the first video frame was held");
}

#[test]
fn extreme_first_timestamps_do_not_wrap() {
    for first in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
        let mut mux = Muxer::new(&[h264_track(0), aac_track(1)]).expect("muxer");
        let _ = mux.push(&video(0, first, first, true, b"\0\0\0\x01\x65"));
        let _ = mux.push(&audio_frame(1, first, b"a"));
        let _ = mux.push(&audio_frame(1, first.saturating_add(1024), b"a"));
        let _ = mux.push(&video(0, first.saturating_add(3000), first, false, b"x"));
        for frag in mux.flush() {
            let (moof, _) = parse_fragment(&frag);
            // Audio at the same number in its own clock is another time; video is the
            // first frame, at the margin.
            if moof.traf[0].tfhd.track_id == 1 {
                let t = moof.traf[0].tfdt.as_ref().unwrap().base_media_decode_time;
                assert!(t < 20 * 90_000, "decode time {t} from first dts {first}");
            }
        }
    }
}

/// A fixed-seed linear congruential generator (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

#[test]
fn random_frames_never_panic_and_box_sizes_add_up() {
    let mut rng = Lcg(0x00C0_FFEE);
    let payload: Vec<u8> = (0..4096).map(|i| (i * 7 + 3) as u8).collect();
    let payload = Bytes::from(payload);
    for round in 0..20 {
        let mut mux = Muxer::new(&[h264_track(0), aac_track(1), opus_track(2)]).expect("muxer");
        let mut dts = [0i64; 3];
        let mut fragments = 0;
        let mut last_sequence = 0;
        for _ in 0..500 {
            let track = (rng.next() % 4) as u8; // 3 is not carried
            let step = match rng.next() % 10 {
                0 => -(rng.next() as i64),
                1 => (rng.next() as i64) << 20,
                2 => 0,
                _ => (rng.next() % 4000) as i64,
            };
            let i = usize::from(track.min(2));
            dts[i] = if rng.next().is_multiple_of(200) {
                [i64::MIN, i64::MAX, 0][(rng.next() % 3) as usize]
            } else {
                dts[i].saturating_add(step)
            };
            let len = (rng.next() % 300) as usize;
            let start = (rng.next() % 3000) as usize;
            let frame = Frame {
                track: TrackId(track),
                kind: if track == 0 {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                },
                keyframe: rng.next().is_multiple_of(5),
                dts: dts[i],
                pts: dts[i].saturating_add(rng.next() as i64 - (1 << 30)),
                data: payload.slice(start..start + len),
            };
            if let Some(frag) = mux.push(&frame) {
                let (moof, mdat) = parse_fragment(&frag);
                assert!(moof.mfhd.sequence_number > last_sequence, "round {round}");
                last_sequence = moof.mfhd.sequence_number;
                assert!(!mdat.is_empty());
                fragments += 1;
            }
        }
        for frag in mux.flush() {
            parse_fragment(&frag);
            fragments += 1;
        }
        assert!(fragments > 50, "round {round}: only {fragments} fragments");
    }
}
