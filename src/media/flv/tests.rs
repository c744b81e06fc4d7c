use super::*;
use crate::media::avcc_nal_units;

const FILE: &[u8] = include_bytes!("../../../tests/data/ffmpeg_320x240_baseline_aac.flv");

#[test]
fn header_parse() {
    assert_eq!(FlvHeader::parse(b""), Ok(None));
    assert_eq!(FlvHeader::parse(b"FL"), Ok(None));
    assert_eq!(FlvHeader::parse(b"FLV\x01\x05\x00\x00\x00"), Ok(None));
    let h = FlvHeader::parse(b"FLV\x01\x05\x00\x00\x00\x09")
        .unwrap()
        .unwrap();
    assert_eq!(
        h,
        FlvHeader {
            has_audio: true,
            has_video: true,
            data_offset: 9
        }
    );
    assert_eq!(h.first_tag_offset(), 13);
    assert_eq!(FlvHeader::parse(b"G"), Err(FlvError::BadSignature));
    assert_eq!(FlvHeader::parse(b"FLX\x01"), Err(FlvError::BadSignature));
    assert_eq!(
        FlvHeader::parse(b"FLV\x02\x05\x00\x00\x00\x09"),
        Err(FlvError::UnsupportedVersion(2))
    );
    assert_eq!(
        FlvHeader::parse(b"FLV\x01\x05\x00\x00\x00\x08"),
        Err(FlvError::BadDataOffset(8))
    );
    assert_eq!(
        FlvHeader::parse(b"FLV\x01\x05\xFF\x00\x00\x00"),
        Err(FlvError::BadDataOffset(0xFF00_0000))
    );
    assert_eq!(
        FlvHeader::parse(&FILE[..9])
            .unwrap()
            .unwrap()
            .first_tag_offset(),
        13
    );
}

#[test]
fn tag_round_trip() {
    let mut out = Vec::new();
    write_header(&mut out, true, false);
    assert_eq!(out, b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00");
    write_tag(&mut out, 0x09, 40, &[0x17, 0x01, 0, 0, 0, 0xAA]).unwrap();
    write_tag(&mut out, 0x08, 0x1234_5678, &[0xAF, 0x01, 0x21]).unwrap();
    write_tag(&mut out, 0x0F, 0, &[]).unwrap();
    let buf = Bytes::from(out);
    let mut pos = FlvHeader::parse(&buf).unwrap().unwrap().first_tag_offset();
    let mut tags = Vec::new();
    while let Some((tag, next)) = read_tag(&buf, pos, 1000).unwrap() {
        tags.push(tag);
        pos = next;
    }
    assert_eq!(pos, buf.len());
    assert_eq!(tags.len(), 3);
    assert_eq!(tags[0].tag_type, TagType::Video);
    assert_eq!(tags[0].timestamp, 40);
    assert_eq!(&tags[0].data[..], &[0x17, 0x01, 0, 0, 0, 0xAA]);
    // The extended timestamp byte (0x12) follows the low 24 bits (34 56 78).
    let t1 = 13 + 11 + 6 + 4;
    assert_eq!(&buf[t1..t1 + 8], &[0x08, 0, 0, 3, 0x34, 0x56, 0x78, 0x12]);
    assert_eq!(tags[1].timestamp, 0x1234_5678);
    assert_eq!(tags[1].tag_type, TagType::Audio);
    assert_eq!(tags[2].tag_type, TagType::Other(0x0F));
    assert!(tags[2].data.is_empty());
    // PreviousTagSize of the first tag: 11 + 6.
    assert_eq!(&buf[t1 - 4..t1], &[0, 0, 0, 17]);
    // Zero-copy.
    assert_eq!(tags[0].data.as_ptr(), buf[13 + 11..].as_ptr());
    assert_eq!(u8::from(TagType::Script), 0x12);
    assert_eq!(TagType::from(0x12), TagType::Script);
}

#[test]
fn truncated_oversize_and_encrypted_tags() {
    let mut out = Vec::new();
    write_tag(&mut out, 0x09, 7, &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41]).unwrap();
    let full = Bytes::from(out);
    for len in 0..full.len() {
        assert_eq!(read_tag(&full.slice(..len), 0, 100), Ok(None), "len {len}");
    }
    assert!(read_tag(&full, 0, 100).unwrap().is_some());
    assert_eq!(read_tag(&full, full.len() + 5, 100), Ok(None));
    assert_eq!(
        read_tag(&full, 0, 9),
        Err(FlvError::TagTooLarge { size: 10, max: 9 })
    );
    // Oversize is reported as soon as the header is complete.
    assert_eq!(
        read_tag(&full.slice(..11), 0, 9),
        Err(FlvError::TagTooLarge { size: 10, max: 9 })
    );
    let mut enc = full.to_vec();
    enc[0] |= 0x20;
    assert_eq!(
        read_tag(&Bytes::from(enc), 0, 100),
        Err(FlvError::Encrypted)
    );
    let mut out = Vec::new();
    assert_eq!(
        write_tag(&mut out, 0x09, 0, &vec![0; MAX_DATA_SIZE + 1]),
        Err(FlvError::BodyTooLarge(MAX_DATA_SIZE + 1))
    );
    assert!(out.is_empty());
}

#[test]
fn video_bodies() {
    let seq = Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01, 0x42, 0xC0, 0x1E]);
    let tag = parse_video(&seq).unwrap();
    assert_eq!((tag.frame_type, tag.codec_id), (1, CODEC_AVC));
    assert_eq!(
        tag.packet,
        VideoPacket::AvcSequenceHeader(Bytes::from_static(&[0x01, 0x42, 0xC0, 0x1E]))
    );

    let mut body = video_tag_header(false, AVC_NALU, -2).to_vec();
    assert_eq!(body, [0x27, 0x01, 0xFF, 0xFF, 0xFE]);
    body.extend_from_slice(&[0, 0, 0, 2, 0x41, 0x9A]);
    let tag = parse_video(&Bytes::from(body)).unwrap();
    assert_eq!(tag.frame_type, FRAME_TYPE_INTER);
    let VideoPacket::AvcNalus { cts, data } = tag.packet else {
        panic!("{:?}", tag.packet)
    };
    assert_eq!(cts, -2);
    assert_eq!(&data[..], &[0, 0, 0, 2, 0x41, 0x9A]);

    for cts in [0x7F_FFFF, -0x80_0000, 1000, -1] {
        let h = Bytes::from(video_tag_header(true, AVC_NALU, cts).to_vec());
        let VideoPacket::AvcNalus { cts: back, .. } = parse_video(&h).unwrap().packet else {
            panic!()
        };
        assert_eq!(back, cts);
    }
    assert_eq!(video_tag_header(true, 1, i32::MAX)[2..], [0x7F, 0xFF, 0xFF]);
    assert_eq!(video_tag_header(true, 1, i32::MIN)[2..], [0x80, 0x00, 0x00]);

    let eos = parse_video(&Bytes::from_static(&[0x17, 0x02, 0, 0, 0])).unwrap();
    assert_eq!(eos.packet, VideoPacket::AvcEndOfSequence);
    // VP6 (codec 4) and an Enhanced-RTMP HEVC header are passed as Other.
    let vp6 = parse_video(&Bytes::from_static(&[0x14, 0x00, 0x11])).unwrap();
    assert_eq!(
        vp6.packet,
        VideoPacket::Other(Bytes::from_static(&[0x00, 0x11]))
    );
    let ex = parse_video(&Bytes::from_static(b"\x90hvc1\x01")).unwrap();
    assert!(matches!(ex.packet, VideoPacket::Other(_)));

    assert_eq!(parse_video(&Bytes::new()), Err(FlvError::EmptyBody));
    assert_eq!(
        parse_video(&Bytes::from_static(&[0x17, 0x01, 0])),
        Err(FlvError::Truncated)
    );
    assert_eq!(
        parse_video(&Bytes::from_static(&[0x17, 0x05, 0, 0, 0])),
        Err(FlvError::UnknownAvcPacketType(5))
    );
}

#[test]
fn audio_bodies() {
    let mut seq = aac_tag_header(AAC_SEQUENCE_HEADER).to_vec();
    seq.extend_from_slice(&[0x12, 0x10]);
    let tag = parse_audio(&Bytes::from(seq)).unwrap();
    assert_eq!(tag.sound_format, SOUND_FORMAT_AAC);
    assert_eq!((tag.rate_index, tag.sample_size, tag.stereo), (3, 1, true));
    assert_eq!(
        tag.packet,
        AudioPacket::AacSequenceHeader(Bytes::from_static(&[0x12, 0x10]))
    );
    let raw = parse_audio(&Bytes::from_static(&[0xAF, 0x01, 0x21, 0x10])).unwrap();
    assert_eq!(
        raw.packet,
        AudioPacket::AacRaw(Bytes::from_static(&[0x21, 0x10]))
    );
    // MP3, 22 kHz, 16-bit, mono.
    let mp3 = parse_audio(&Bytes::from_static(&[0x2A, 0xFF, 0xFB])).unwrap();
    assert_eq!(
        (mp3.sound_format, mp3.rate_index, mp3.stereo),
        (2, 2, false)
    );
    assert_eq!(
        mp3.packet,
        AudioPacket::Other(Bytes::from_static(&[0xFF, 0xFB]))
    );

    assert_eq!(parse_audio(&Bytes::new()), Err(FlvError::EmptyBody));
    assert_eq!(
        parse_audio(&Bytes::from_static(&[0xAF])),
        Err(FlvError::Truncated)
    );
    assert_eq!(
        parse_audio(&Bytes::from_static(&[0xAF, 0x07])),
        Err(FlvError::UnknownAacPacketType(7))
    );
}

/// Reads every tag of `FILE` through a [`Demuxer`].
fn demux_file() -> (Demuxer, Vec<Frame>, usize) {
    let buf = Bytes::from_static(FILE);
    let header = FlvHeader::parse(&buf).unwrap().unwrap();
    assert!(header.has_audio && header.has_video);
    let mut pos = header.first_tag_offset();
    let mut demux = Demuxer::new();
    let (mut frames, mut changes) = (Vec::new(), 0);
    while let Some((tag, next)) = read_tag(&buf, pos, 1 << 20).unwrap() {
        pos = next;
        let ts = i64::from(tag.timestamp);
        let out = match tag.tag_type {
            TagType::Video => demux.video(ts, &tag.data).unwrap(),
            TagType::Audio => demux.audio(ts, &tag.data).unwrap(),
            _ => None,
        };
        match out {
            Some(DemuxOutput::Frame(f)) => frames.push(f),
            Some(DemuxOutput::TracksChanged) => changes += 1,
            None => {}
        }
    }
    assert_eq!(pos, buf.len());
    (demux, frames, changes)
}

#[test]
fn demux_ffmpeg_file() {
    let (demux, frames, changes) = demux_file();
    assert_eq!(changes, 2);
    let tracks = demux.tracks();
    assert_eq!(tracks.len(), 2);
    let (v, a) = (&tracks[0], &tracks[1]);
    assert_eq!(
        (v.id, v.codec, v.clock_rate),
        (VIDEO_TRACK, Codec::H264, 90_000)
    );
    assert_eq!((v.width, v.height), (Some(320), Some(240)));
    assert_eq!(v.profile.as_deref(), Some("Constrained Baseline"));
    assert_eq!(v.fps, Some(10.0));
    assert_eq!((v.params.sps.len(), v.params.pps.len()), (1, 1));
    assert_eq!(
        (a.id, a.codec, a.clock_rate),
        (AUDIO_TRACK, Codec::Aac, 44_100)
    );
    assert_eq!(a.channels, Some(1));
    assert_eq!(
        a.params.audio_config.as_deref(),
        Some(&[0x12, 0x08, 0x56, 0xE5, 0x00][..])
    );

    let video: Vec<&Frame> = frames.iter().filter(|f| f.track == VIDEO_TRACK).collect();
    let audio: Vec<&Frame> = frames.iter().filter(|f| f.track == AUDIO_TRACK).collect();
    assert_eq!(video.len(), 10);
    assert_eq!(audio.len(), 45);
    assert!(video[0].keyframe);
    assert_eq!(video.iter().filter(|f| f.keyframe).count(), 1);
    assert_eq!(video[0].dts, 23 * 90);
    assert!(video.windows(2).all(|w| w[0].dts < w[1].dts));
    assert!(
        video
            .iter()
            .all(|f| f.pts >= f.dts && f.kind == MediaKind::Video)
    );
    assert!(audio.windows(2).all(|w| w[0].dts <= w[1].dts));
    assert!(
        audio
            .iter()
            .all(|f| f.keyframe && f.kind == MediaKind::Audio)
    );
    // Every video payload is well-formed AVCC.
    for f in &video {
        let total: usize = avcc_nal_units(&f.data).map(|n| n.len() + 4).sum();
        assert_eq!(total, f.data.len());
    }
}

fn avc_seq_header(record: &[u8]) -> Bytes {
    let mut b = video_tag_header(true, AVC_SEQUENCE_HEADER, 0).to_vec();
    b.extend_from_slice(record);
    Bytes::from(b)
}

/// The file's AVCDecoderConfigurationRecord.
const RECORD: &[u8] = &[
    0x01, 0x42, 0xC0, 0x0B, 0xFF, 0xE1, 0x00, 0x18, 0x67, 0x42, 0xC0, 0x0B, 0xD9, 0x01, 0x41, 0xFB,
    0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x01, 0x40, 0xF1, 0x42, 0xA4, 0x80,
    0x01, 0x00, 0x05, 0x68, 0xCB, 0x83, 0xCB, 0x20,
];

#[test]
fn demux_video_rules() {
    let mut d = Demuxer::new();
    let mut nalus = video_tag_header(false, AVC_NALU, 80).to_vec();
    nalus.extend_from_slice(&[0, 0, 0, 3, 0x65, 0x88, 0x84]);
    let nalus = Bytes::from(nalus);
    // Before any sequence header: dropped.
    assert_eq!(d.video(0, &nalus), Ok(None));
    assert!(d.tracks().is_empty());
    assert_eq!(
        d.video(0, &avc_seq_header(RECORD)),
        Ok(Some(DemuxOutput::TracksChanged))
    );
    // The same header again changes nothing.
    assert_eq!(d.video(0, &avc_seq_header(RECORD)), Ok(None));
    let Ok(Some(DemuxOutput::Frame(f))) = d.video(1000, &nalus) else {
        panic!()
    };
    // An IDR makes a keyframe even with frame type 2; pts includes the cts.
    assert!(f.keyframe);
    assert_eq!((f.dts, f.pts), (90_000, 97_200));
    assert_eq!(f.data, nalus.slice(5..));
    assert_eq!(f.data.as_ptr(), nalus[5..].as_ptr());

    // A record with 2-byte NAL lengths: the payload is rewritten to 4-byte AVCC.
    let mut rec2 = RECORD.to_vec();
    rec2[4] = 0xFD;
    assert_eq!(
        d.video(0, &avc_seq_header(&rec2)),
        Ok(Some(DemuxOutput::TracksChanged))
    );
    let short = Bytes::from_static(&[0x27, 0x01, 0, 0, 0, 0, 2, 0x41, 0x9A, 0, 1, 0x06]);
    let Ok(Some(DemuxOutput::Frame(f))) = d.video(40, &short) else {
        panic!()
    };
    assert!(!f.keyframe);
    assert_eq!(&f.data[..], &[0, 0, 0, 2, 0x41, 0x9A, 0, 0, 0, 1, 0x06]);
    let cut = Bytes::from_static(&[0x27, 0x01, 0, 0, 0, 0, 9, 0x41]);
    assert!(d.video(40, &cut).is_err());

    // Bad records are errors and leave the track alone.
    let before = d.tracks();
    assert!(d.video(0, &avc_seq_header(&RECORD[..20])).is_err());
    assert_eq!(d.tracks(), before);
    assert_eq!(d.video(0, &Bytes::new()), Err(FlvError::EmptyBody));
    assert_eq!(d.video(0, &Bytes::from_static(&[0x12, 0x00])), Ok(None));
    assert_eq!(
        d.video(0, &Bytes::from_static(&[0x17, 0x02, 0, 0, 0])),
        Ok(None)
    );
}

#[test]
fn demux_audio_rules() {
    let mut d = Demuxer::new();
    let raw = Bytes::from_static(&[0xAF, 0x01, 0x21, 0x1B]);
    assert_eq!(d.audio(0, &raw), Ok(None));
    let seq = Bytes::from_static(&[0xAF, 0x00, 0x11, 0x90]);
    assert_eq!(d.audio(0, &seq), Ok(Some(DemuxOutput::TracksChanged)));
    assert_eq!(d.audio(0, &seq), Ok(None));
    let t = &d.tracks()[0];
    assert_eq!(
        (t.codec, t.clock_rate, t.channels),
        (Codec::Aac, 48_000, Some(2))
    );
    assert_eq!(t.profile.as_deref(), Some("LC"));
    let Ok(Some(DemuxOutput::Frame(f))) = d.audio(1000, &raw) else {
        panic!()
    };
    assert_eq!((f.dts, f.pts, f.keyframe), (48_000, 48_000, true));
    assert_eq!(&f.data[..], &[0x21, 0x1B]);
    assert!(
        d.audio(0, &Bytes::from_static(&[0xAF, 0x00, 0x16, 0x90]))
            .is_err()
    );

    // MP3 passthrough: the first body announces the track, later ones are frames
    // carrying the whole body on a 1 kHz clock.
    let mp3 = Bytes::from_static(&[0x2F, 0xFF, 0xFB, 0x90]);
    assert_eq!(d.audio(10, &mp3), Ok(Some(DemuxOutput::TracksChanged)));
    let t = &d.tracks()[0];
    assert_eq!(
        (t.codec, t.clock_rate, t.channels),
        (Codec::FlvAudio(2), 1000, Some(2))
    );
    let Ok(Some(DemuxOutput::Frame(f))) = d.audio(36, &mp3) else {
        panic!()
    };
    assert_eq!((f.dts, f.pts), (36, 36));
    assert_eq!(f.data, mp3);
    assert_eq!(d.audio(0, &Bytes::new()), Err(FlvError::EmptyBody));
}

#[test]
fn g711_becomes_raw_samples_at_8khz_and_muxes_back() {
    let mut d = Demuxer::new();
    // ffmpeg's A-law header byte: format 7, 16-bit flag, mono.
    let body = Bytes::from(vec![0x72, 0xD5, 0xD5, 0x55, 0x54]);
    assert!(matches!(
        d.audio(0, &body),
        Ok(Some(DemuxOutput::TracksChanged))
    ));
    let t = d.tracks()[0].clone();
    assert_eq!(
        (t.codec, t.clock_rate, t.channels),
        (Codec::Pcma, 8000, Some(1))
    );
    let Ok(Some(DemuxOutput::Frame(f))) = d.audio(20, &body) else {
        panic!("no frame");
    };
    assert_eq!((f.pts, &f.data[..]), (160, &body[1..]));
    let tag = mux_frame(&t, &f).expect("muxes");
    assert_eq!(tag.timestamp, 20);
    let [head, payload] = tag.parts();
    assert_eq!(head, &[0x72]);
    assert_eq!(payload, &f.data[..]);
    // µ-law likewise; an empty body is no frame.
    let mu = Bytes::from(vec![0x82, 0xFF]);
    assert!(matches!(
        d.audio(40, &mu),
        Ok(Some(DemuxOutput::TracksChanged))
    ));
    assert_eq!(d.tracks()[0].codec, Codec::Pcmu);
    assert!(matches!(
        d.audio(60, &Bytes::from_static(&[0x82])),
        Ok(None)
    ));
}

#[test]
fn garbage_never_panics() {
    let mut d = Demuxer::new();
    let _ = d.video(0, &avc_seq_header(RECORD));
    let _ = d.audio(0, &Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]));
    let mut x = 0x1234_5678u32;
    for len in 0..300usize {
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            v.push(x as u8);
        }
        let b = Bytes::from(v);
        let _ = FlvHeader::parse(&b);
        let _ = read_tag(&b, 0, 64);
        let _ = d.video(i64::from(x), &b);
        let _ = d.audio(i64::MAX, &b);
        let _ = d.video(i64::MIN, &b);
    }
}

#[test]
fn mux_round_trips_through_the_demuxer() {
    let data = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/ffmpeg_320x240_baseline_aac.flv"
    ))
    .expect("test file");
    let file = Bytes::from(data);
    let header = FlvHeader::parse(&file).expect("header").expect("complete");
    let mut pos = header.first_tag_offset();
    let mut demux = Demuxer::new();
    let mut frames = Vec::new();
    while let Some((tag, next)) = read_tag(&file, pos, MAX_DATA_SIZE).expect("tag") {
        pos = next;
        let out = match tag.tag_type {
            TagType::Video => demux.video(i64::from(tag.timestamp), &tag.data),
            TagType::Audio => demux.audio(i64::from(tag.timestamp), &tag.data),
            _ => continue,
        };
        if let Ok(Some(DemuxOutput::Frame(f))) = out {
            frames.push((tag.timestamp, tag.data.clone(), f));
        }
    }
    let tracks = demux.tracks();
    // Sequence headers re-muxed parse back to the same parameters.
    let mut again = Demuxer::new();
    for t in &tracks {
        let sh = mux_sequence_header(t).expect("sequence header");
        let out = if sh.tag_type == 0x09 {
            again.video(0, &Bytes::from(sh.to_vec()))
        } else {
            again.audio(0, &Bytes::from(sh.to_vec()))
        };
        assert!(matches!(out, Ok(Some(DemuxOutput::TracksChanged))));
    }
    assert_eq!(again.tracks(), tracks);
    // Frames re-muxed are byte-identical to what ffmpeg wrote.
    for (ts, body, f) in &frames {
        let t = tracks.iter().find(|t| t.id == f.track).expect("track");
        let m = mux_frame(t, f).expect("muxable");
        assert_eq!(m.timestamp, *ts);
        assert_eq!(&m.to_vec()[..], &body[..], "frame at {ts} ms");
        assert_eq!(m.payload.as_ptr(), f.data.as_ptr(), "payload copied");
    }
    assert!(frames.len() > 40);
}

#[test]
fn mux_keeps_composition_time_for_b_frames() {
    let track = Track::new(VIDEO_TRACK, Codec::H264, 90_000);
    let f = Frame {
        track: VIDEO_TRACK,
        kind: MediaKind::Video,
        keyframe: false,
        dts: 90 * 1000,
        pts: 90 * 1080,
        data: Bytes::from_static(&[0, 0, 0, 1, 0x41]),
    };
    let m = mux_frame(&track, &f).expect("h264");
    assert_eq!(m.timestamp, 1000);
    assert_eq!(m.head(), &[0x27, 0x01, 0x00, 0x00, 80]);
    assert_eq!(to_millis(-90, 90_000), u32::MAX);
}
