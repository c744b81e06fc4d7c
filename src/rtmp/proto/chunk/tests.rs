use super::*;

fn read_all(r: &mut ChunkReader, bytes: &[u8]) -> Vec<Message> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(m) = r.read(&mut buf).unwrap() {
        out.push(m);
    }
    assert!(buf.is_empty(), "{} bytes left", buf.len());
    out
}

fn msg(csid: u32, ts: u32, type_id: u8, sid: u32, body: &[u8]) -> Message {
    Message {
        csid,
        timestamp: ts,
        type_id,
        stream_id: sid,
        body: Bytes::copy_from_slice(body),
    }
}

#[test]
fn basic_header_forms() {
    for (csid, header) in [
        (2u32, vec![0x02]),
        (63, vec![0x3F]),
        (64, vec![0x00, 0x00]),
        (319, vec![0x00, 0xFF]),
        (320, vec![0x01, 0x00, 0x01]),
        (65599, vec![0x01, 0xFF, 0xFF]),
    ] {
        let mut bytes = header.clone();
        bytes.extend_from_slice(&[0, 0, 0x0A, 0, 0, 2, 0x09, 1, 0, 0, 0, 0xAB, 0xCD]);
        let mut r = ChunkReader::new(DEFAULT_MAX_MESSAGE_LEN);
        let got = read_all(&mut r, &bytes);
        assert_eq!(got, [msg(csid, 10, 0x09, 1, &[0xAB, 0xCD])], "csid {csid}");
        assert_eq!(r.bytes_read(), bytes.len() as u64);
        // The writer produces the same header.
        let mut out = BytesMut::new();
        encode_message(csid, 0x09, 1, 10, &[0xAB, 0xCD], 128, &mut out);
        assert_eq!(&out[..], &bytes[..], "csid {csid}");
    }
}

#[test]
fn header_type_inheritance() {
    let mut b = Vec::new();
    // fmt 0: ts 1000, len 3, type 8, stream 1.
    b.extend_from_slice(&[0x04, 0x00, 0x03, 0xE8, 0, 0, 3, 0x08, 1, 0, 0, 0, 1, 2, 3]);
    // fmt 1: delta 20, len 2, type 9.
    b.extend_from_slice(&[0x44, 0, 0, 20, 0, 0, 2, 0x09, 4, 5]);
    // fmt 2: delta 30.
    b.extend_from_slice(&[0x84, 0, 0, 30, 6, 7]);
    // fmt 3 starting a new message: repeats delta 30.
    b.extend_from_slice(&[0xC4, 8, 9]);
    let mut r = ChunkReader::new(1 << 20);
    let got = read_all(&mut r, &b);
    assert_eq!(
        got,
        [
            msg(4, 1000, 8, 1, &[1, 2, 3]),
            msg(4, 1020, 9, 1, &[4, 5]),
            msg(4, 1050, 9, 1, &[6, 7]),
            msg(4, 1080, 9, 1, &[8, 9]),
        ]
    );
}

#[test]
fn fmt3_after_fmt0_repeats_the_field() {
    // As ffmpeg and SRS read it: the type-0 timestamp field is the delta.
    let b = [0x05, 0, 0, 40, 0, 0, 1, 0x12, 0, 0, 0, 0, 0xAA, 0xC5, 0xBB];
    let got = read_all(&mut ChunkReader::new(1024), &b);
    assert_eq!(got[1].timestamp, 80);
}

/// 300-byte message at chunk size 128 with timestamp 0x0100_0000 (extended).
fn extended_message(repeat_on_continuations: bool) -> (Vec<u8>, Vec<u8>) {
    let body: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let mut b = vec![0x06, 0xFF, 0xFF, 0xFF, 0x00, 0x01, 0x2C, 0x09, 1, 0, 0, 0];
    b.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
    for (i, c) in body.chunks(128).enumerate() {
        if i > 0 {
            b.push(0xC6);
            if repeat_on_continuations {
                b.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
            }
        }
        b.extend_from_slice(c);
    }
    (b, body)
}

#[test]
fn extended_timestamp_on_continuations() {
    for repeat in [true, false] {
        let (b, body) = extended_message(repeat);
        let got = read_all(&mut ChunkReader::new(1024), &b);
        assert_eq!(got, [msg(6, 0x0100_0000, 9, 1, &body)], "repeat {repeat}");
    }
    // The writer always repeats it, and matches the hand-built bytes.
    let (b, body) = extended_message(true);
    let mut out = BytesMut::new();
    encode_message(6, 9, 1, 0x0100_0000, &body, 128, &mut out);
    assert_eq!(&out[..], &b[..]);
}

#[test]
fn extended_timestamp_on_fmt0_and_new_fmt3() {
    let mut b = vec![0x07, 0xFF, 0xFF, 0xFF, 0, 0, 1, 0x08, 1, 0, 0, 0];
    b.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0xAA]);
    // A type-3 new message with the repeated extended field: delta 0x0100_0000.
    b.extend_from_slice(&[0xC7, 0x01, 0x00, 0x00, 0x00, 0xBB]);
    let got = read_all(&mut ChunkReader::new(1024), &b);
    assert_eq!(got[0].timestamp, 0x0100_0000);
    assert_eq!(got[1].timestamp, 0x0200_0000);
    assert_eq!(&got[1].body[..], &[0xBB]);
}

#[test]
fn interleaved_chunk_streams() {
    let a: Vec<u8> = vec![0xA0; 200];
    let v: Vec<u8> = vec![0xB0; 150];
    let mut b = vec![0x06, 0, 0, 1, 0, 0, 200, 0x08, 1, 0, 0, 0];
    b.extend_from_slice(&a[..128]);
    b.extend_from_slice(&[0x07, 0, 0, 2, 0, 0, 150, 0x09, 1, 0, 0, 0]);
    b.extend_from_slice(&v[..128]);
    b.push(0xC6);
    b.extend_from_slice(&a[128..]);
    b.push(0xC7);
    b.extend_from_slice(&v[128..]);
    let got = read_all(&mut ChunkReader::new(1024), &b);
    assert_eq!(got, [msg(6, 1, 8, 1, &a), msg(7, 2, 9, 1, &v)]);
}

#[test]
fn abort_drops_partial() {
    let mut b = vec![0x06, 0, 0, 1, 0, 0, 200, 0x08, 1, 0, 0, 0];
    b.extend_from_slice(&[0xA0; 128]);
    let mut r = ChunkReader::new(1024);
    let mut buf = BytesMut::from(&b[..]);
    assert_eq!(r.read(&mut buf).unwrap(), None);
    r.abort(6);
    // A type-3 chunk now starts a new 200-byte message with the same header.
    let mut next = vec![0xC6];
    next.extend_from_slice(&[0xCC; 128]);
    next.push(0xC6);
    next.extend_from_slice(&[0xCC; 72]);
    buf.extend_from_slice(&next);
    let m = r.read(&mut buf).unwrap().unwrap();
    assert_eq!(m.body, Bytes::from(vec![0xCC; 200]));
    assert_eq!(m.timestamp, 2);
    r.abort(99); // Unknown csid: no-op.
}

#[test]
fn set_chunk_size_mid_stream() {
    let mut r = ChunkReader::new(1 << 20);
    let body = vec![0x11; 300];
    let mut first = BytesMut::new();
    encode_message(5, 9, 1, 0, &body, 128, &mut first);
    let mut second = BytesMut::new();
    encode_message(5, 9, 1, 0, &body, 4096, &mut second);
    let mut buf = first;
    assert_eq!(r.read(&mut buf).unwrap().unwrap().body.len(), 300);
    r.set_chunk_size(4096).unwrap();
    buf.extend_from_slice(&second);
    assert_eq!(r.read(&mut buf).unwrap().unwrap().body.len(), 300);
    assert_eq!(
        r.set_chunk_size(0),
        Err(ChunkError::InvalidChunkSize { size: 0 })
    );
    assert!(r.set_chunk_size(0x8000_0000).is_err());
    assert_eq!(r.chunk_size(), 4096);
}

#[test]
fn max_length_error() {
    let mut r = ChunkReader::new(100);
    let mut buf = BytesMut::from(&[0x04, 0, 0, 0, 0, 0, 101, 0x09, 1, 0, 0, 0][..]);
    assert_eq!(
        r.read(&mut buf),
        Err(ChunkError::MessageTooLarge {
            csid: 4,
            type_id: 9,
            len: 101,
            max: 100
        })
    );
}

#[test]
fn pending_limit() {
    let mut r = ChunkReader::new(1000);
    let mut buf = BytesMut::new();
    for csid in 4..6u8 {
        buf.extend_from_slice(&[csid, 0, 0, 0, 0, 0x03, 0xE8, 0x09, 1, 0, 0, 0]);
        buf.extend_from_slice(&[0; 128]);
    }
    buf.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 200, 0x09, 1, 0, 0, 0]);
    buf.extend_from_slice(&[0; 128]);
    assert!(matches!(
        r.read(&mut buf),
        Err(ChunkError::TooMuchPending { csid: 6, .. })
    ));
}

#[test]
fn chunk_streams_are_bounded() {
    // Single-chunk messages on ever new ids (the 3-byte basic header form reaches 65,599):
    // the first MAX_CHUNK_STREAMS are read, the next one is refused, nothing else is kept.
    let mut r = ChunkReader::new(1024);
    let mut buf = BytesMut::new();
    for i in 0..65_000u32 {
        let csid = 320 + i;
        let id = csid - 64;
        buf.extend_from_slice(&[0x01, id as u8, (id >> 8) as u8]);
        buf.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0x09, 1, 0, 0, 0, 0xAB]);
    }
    let mut read = 0;
    let err = loop {
        match r.read(&mut buf) {
            Ok(Some(_)) => read += 1,
            Ok(None) => panic!("all {read} messages read"),
            Err(e) => break e,
        }
    };
    assert_eq!(read, MAX_CHUNK_STREAMS);
    assert_eq!(
        err,
        ChunkError::TooManyChunkStreams {
            csid: 320 + MAX_CHUNK_STREAMS as u32,
            max: MAX_CHUNK_STREAMS
        }
    );
    // Ids already open stay usable.
    let mut again = BytesMut::from(&[0x01, 0, 1, 0, 0, 0, 0, 0, 1, 0x09, 1, 0, 0, 0, 0xCD][..]);
    assert!(matches!(r.read(&mut again), Ok(Some(m)) if m.csid == 320));
}

#[test]
fn partial_messages_hold_what_arrived_not_what_was_announced() {
    // A header announcing 8 MiB followed by one 128-byte chunk reserves far less than 8 MiB.
    let mut r = ChunkReader::new(DEFAULT_MAX_MESSAGE_LEN);
    let len = 8 * 1024 * 1024 - 1;
    let mut buf = BytesMut::from(
        &[
            0x04,
            0,
            0,
            0,
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            0x09,
            1,
            0,
            0,
            0,
        ][..],
    );
    buf.extend_from_slice(&[7; 128]);
    assert_eq!(r.read(&mut buf), Ok(None));
    let held = r.direct[4]
        .as_ref()
        .and_then(|s| s.partial.as_ref())
        .map(BytesMut::capacity);
    assert!(held.is_some_and(|c| c <= PARTIAL_RESERVE), "{held:?}");
}

#[test]
fn unknown_csid_errors() {
    for (fmt, b) in [
        (3u8, vec![0xC9, 0]),
        (1, vec![0x49, 0, 0, 0, 0, 0, 1, 8, 0]),
    ] {
        let mut r = ChunkReader::new(1024);
        assert_eq!(
            r.read(&mut BytesMut::from(&b[..])),
            Err(ChunkError::UnknownChunkStream { csid: 9, fmt })
        );
    }
}

#[test]
fn byte_by_byte_multi_chunk() {
    let body: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let mut enc = BytesMut::new();
    encode_message(320, 9, 1, 0x0123_4567, &body, 128, &mut enc);
    encode_message(3, 0x14, 0, 5, b"x", 128, &mut enc);
    let mut r = ChunkReader::new(1 << 20);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in enc.iter() {
        buf.put_u8(b);
        while let Some(m) = r.read(&mut buf).unwrap() {
            got.push(m);
        }
    }
    assert_eq!(
        got,
        [msg(320, 0x0123_4567, 9, 1, &body), msg(3, 5, 0x14, 0, b"x")]
    );
    assert_eq!(r.bytes_read(), enc.len() as u64);
}

#[test]
fn single_chunk_is_zero_copy() {
    let mut enc = BytesMut::new();
    encode_message(7, 9, 1, 0, &[0x42; 64], 128, &mut enc);
    let start = enc.as_ptr() as usize;
    let m = ChunkReader::new(1024).read(&mut enc).unwrap().unwrap();
    assert_eq!(m.body.as_ptr() as usize, start + 12);
}

#[test]
fn writer_matches_encode_message_and_round_trips() {
    let body: Vec<u8> = (0..10_000u32).map(|i| (i * 31) as u8).collect();
    for chunk_size in [1u32, 128, 4096, 0xFF_FFFF] {
        for ts in [0u32, 0xFF_FFFE, 0xFF_FFFF, u32::MAX] {
            let m = msg(7, ts, 9, 1, &body);
            let mut w = ChunkWriter::new();
            w.set_chunk_size(chunk_size).unwrap();
            let mut a = BytesMut::new();
            w.write(&m, &mut a);
            let mut b = BytesMut::new();
            encode_message(7, 9, 1, ts, &body, chunk_size as usize, &mut b);
            assert_eq!(a, b);
            let mut r = ChunkReader::new(1 << 20);
            r.set_chunk_size(chunk_size).unwrap();
            assert_eq!(read_all(&mut r, &a), [m]);
        }
    }
    // An empty body is one bare header.
    let mut e = BytesMut::new();
    encode_message(2, 4, 0, 0, &[], 128, &mut e);
    assert_eq!(e.len(), 12);
    assert_eq!(
        read_all(&mut ChunkReader::new(16), &e),
        [msg(2, 0, 4, 0, &[])]
    );
}

#[test]
fn control_messages() {
    let cases = [
        (
            ControlMessage::SetChunkSize(4096),
            vec![0x01, 0, 0, 0x10, 0],
        ),
        (ControlMessage::Abort { csid: 6 }, vec![0x02, 0, 0, 0, 6]),
        (
            ControlMessage::Acknowledgement {
                sequence: 0x0102_0304,
            },
            vec![0x03, 1, 2, 3, 4],
        ),
        (
            ControlMessage::WindowAckSize(2_500_000),
            vec![0x05, 0x00, 0x26, 0x25, 0xA0],
        ),
        (
            ControlMessage::SetPeerBandwidth {
                size: 2_500_000,
                limit: LIMIT_DYNAMIC,
            },
            vec![0x06, 0x00, 0x26, 0x25, 0xA0, 0x02],
        ),
        (
            ControlMessage::UserControl(UserControlEvent::StreamBegin(1)),
            vec![0x04, 0, 0, 0, 0, 0, 1],
        ),
        (
            ControlMessage::UserControl(UserControlEvent::StreamEof(1)),
            vec![0x04, 0, 1, 0, 0, 0, 1],
        ),
        (
            ControlMessage::UserControl(UserControlEvent::StreamDry(1)),
            vec![0x04, 0, 2, 0, 0, 0, 1],
        ),
        (
            ControlMessage::UserControl(UserControlEvent::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000,
            }),
            vec![0x04, 0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
        ),
        (
            ControlMessage::UserControl(UserControlEvent::StreamIsRecorded(1)),
            vec![0x04, 0, 4, 0, 0, 0, 1],
        ),
        (
            ControlMessage::UserControl(UserControlEvent::PingRequest(77)),
            vec![0x04, 0, 6, 0, 0, 0, 77],
        ),
        (
            ControlMessage::UserControl(UserControlEvent::PingResponse(77)),
            vec![0x04, 0, 7, 0, 0, 0, 77],
        ),
        (
            ControlMessage::UserControl(UserControlEvent::Other {
                event_type: 0x1F,
                data: Bytes::from_static(&[0, 0, 0, 1]),
            }),
            vec![0x04, 0, 0x1F, 0, 0, 0, 1],
        ),
    ];
    for (cm, wire) in cases {
        let m = cm.to_message();
        assert_eq!(m.type_id, wire[0]);
        assert_eq!(&m.body[..], &wire[1..], "{cm:?}");
        assert_eq!((m.csid, m.stream_id), (2, 0));
        assert_eq!(ControlMessage::parse(wire[0], &m.body), Ok(Some(cm)));
    }
    assert_eq!(ControlMessage::parse(0x09, &Bytes::new()), Ok(None));
    for t in 1..=6u8 {
        assert!(ControlMessage::parse(t, &Bytes::from_static(&[0])).is_err());
    }
    assert!(ControlMessage::parse(4, &Bytes::from_static(&[0, 3, 0, 0, 0, 1])).is_err());
    // The reserved top bit of Set Chunk Size is ignored.
    assert_eq!(
        ControlMessage::parse(1, &Bytes::from_static(&[0x80, 0, 0x10, 0])),
        Ok(Some(ControlMessage::SetChunkSize(4096)))
    );
}

#[test]
fn parts_encode_like_the_joined_body() {
    let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    for chunk_size in [1, 5, 128, 4096, 20_000] {
        for ts in [0, 0xFF_FFFF + 3] {
            let mut joined = BytesMut::new();
            encode_message(7, 0x09, 1, ts, &body, chunk_size, &mut joined);
            for split in [0, 1, 5, 127, 128, 129, 4096, 9_999, 10_000] {
                let mut parts = BytesMut::new();
                let (a, b) = body.split_at(split);
                encode_message_parts(7, 0x09, 1, ts, &[a, &[], b], chunk_size, &mut parts);
                assert_eq!(parts, joined, "chunk size {chunk_size}, split {split}");
            }
        }
    }
}
