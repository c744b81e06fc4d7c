use super::*;
use crate::http::proto::{Limits, RequestParser};

const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn request(extra: &str) -> Request {
    let raw = format!(
        "GET /ws HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\n{extra}\r\n"
    );
    let mut buf = BytesMut::from(raw.as_bytes());
    RequestParser::new(Limits::default())
        .parse(&mut buf)
        .unwrap()
        .unwrap()
}

fn good_request() -> Request {
    request(&format!(
        "Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    ))
}

/// A client frame with the given first byte (FIN/opcode), masked with `mask`.
fn client_frame(b0: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![b0];
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[test]
fn accept_key_rfc_sample() {
    // RFC 6455 §1.3; checked independently: base64(sha1(key + GUID)).
    assert_eq!(
        accept_key(&good_request()).unwrap(),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn upgrade_response_bytes() {
    let resp = upgrade_response(&good_request()).unwrap();
    let mut out = BytesMut::new();
    resp.write(&mut out, true, false);
    assert_eq!(
        &out[..],
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn rejected_upgrades() {
    let version = "Sec-WebSocket-Version: 13\r\n";
    let key = format!("Sec-WebSocket-Key: {SAMPLE_KEY}\r\n");
    assert_eq!(
        accept_key(&request(version)),
        Err(WsError::BadUpgrade("missing Sec-WebSocket-Key"))
    );
    let err = accept_key(&request(&format!("{key}Sec-WebSocket-Version: 8\r\n"))).unwrap_err();
    assert_eq!(err, WsError::UnsupportedVersion);
    assert_eq!(err.status(), 426);
    let resp = err.to_response();
    assert!(
        resp.headers
            .iter()
            .any(|(n, v)| n == "Sec-WebSocket-Version" && v == "13")
    );
    assert!(matches!(
        accept_key(&request(&key)),
        Err(WsError::BadUpgrade(_))
    ));
    for bad_key in [
        "short==",
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25j!Q==",
    ] {
        let r = request(&format!("Sec-WebSocket-Key: {bad_key}\r\n{version}"));
        assert_eq!(
            accept_key(&r),
            Err(WsError::BadUpgrade("invalid Sec-WebSocket-Key")),
            "{bad_key}"
        );
    }

    let mut r = good_request();
    r.method = "POST".to_owned();
    assert!(matches!(accept_key(&r), Err(WsError::BadUpgrade(_))));
    let mut r = good_request();
    r.minor_version = 0;
    assert!(matches!(accept_key(&r), Err(WsError::BadUpgrade(_))));
    let mut r = good_request();
    r.headers.retain(|(n, _)| n != "Upgrade");
    assert!(matches!(upgrade_response(&r), Err(WsError::BadUpgrade(_))));
    let mut r = good_request();
    r.headers.retain(|(n, _)| n != "Connection");
    assert!(matches!(upgrade_response(&r), Err(WsError::BadUpgrade(_))));
    assert_eq!(WsError::BadUpgrade("x").status(), 400);
}

#[test]
fn masked_text_hello() {
    let mut s = WsSession::new(64 * 1024);
    // RFC 6455 §5.7 sample: masked "Hello".
    s.handle_input(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert_eq!(
        s.poll_message(),
        Ok(Some(WsMessage::Text("Hello".to_owned())))
    );
    s.handle_input(&client_frame(0x81, b"hello", MASK));
    assert_eq!(
        s.poll_message(),
        Ok(Some(WsMessage::Text("hello".to_owned())))
    );
    assert_eq!(s.poll_message(), Ok(None));
    assert!(s.take_output().is_empty());
    assert!(!s.is_closed());
}

#[test]
fn split_and_fragmented_frames() {
    let mut s = WsSession::new(64 * 1024);
    let mut bytes = client_frame(0x01, b"hel", MASK); // text, not final
    bytes.extend(client_frame(0x89, b"p", MASK)); // ping in between
    bytes.extend(client_frame(0x80, b"lo", MASK)); // continuation, final
    bytes.extend(client_frame(0x82, &[0, 1, 2, 255], MASK)); // binary
    let mut got = Vec::new();
    for b in &bytes {
        s.handle_input(&[*b]);
        while let Some(msg) = s.poll_message().unwrap() {
            got.push(msg);
        }
    }
    assert_eq!(
        got,
        vec![
            WsMessage::Text("hello".to_owned()),
            WsMessage::Binary(vec![0, 1, 2, 255])
        ]
    );
    assert_eq!(s.take_output(), vec![0x8a, 0x01, b'p']);
    s.handle_input(&[]);
    assert_eq!(s.poll_message(), Ok(None));

    let mut s = WsSession::new(64 * 1024);
    s.handle_input(&bytes);
    assert_eq!(
        s.poll_message(),
        Ok(Some(WsMessage::Text("hello".to_owned())))
    );
    assert_eq!(
        s.poll_message(),
        Ok(Some(WsMessage::Binary(vec![0, 1, 2, 255])))
    );
    assert_eq!(s.poll_message(), Ok(None));
}

#[test]
fn ping_answered_with_pong() {
    let mut s = WsSession::new(1024);
    s.handle_input(&client_frame(0x89, b"abc", MASK));
    assert_eq!(s.poll_message(), Ok(None));
    assert_eq!(s.take_output(), vec![0x8a, 0x03, b'a', b'b', b'c']);
    assert!(s.take_output().is_empty());
    // Pongs from the client are dropped silently.
    s.handle_input(&client_frame(0x8a, b"x", MASK));
    assert_eq!(s.poll_message(), Ok(None));
    assert!(s.take_output().is_empty());
}

#[test]
fn message_over_limit() {
    // An oversized frame is rejected from its header, before the payload arrives.
    let mut s = WsSession::new(1024);
    s.handle_input(&client_frame(0x82, &[7; 2000], MASK)[..10]);
    assert_eq!(
        s.poll_message(),
        Err(WsError::MessageTooLarge {
            size: 2000,
            max: 1024
        })
    );
    assert!(s.is_closed());
    assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xf1]);

    // Below the 125-byte control-frame floor the message limit still applies...
    let mut s = WsSession::new(16);
    s.handle_input(&client_frame(0x82, &[7; 17], MASK));
    assert_eq!(
        s.poll_message(),
        Err(WsError::MessageTooLarge { size: 17, max: 16 })
    );
    assert!(s.is_closed());
    // Close frame with 1009 (Message Too Big).
    assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xf1]);
    assert_eq!(s.poll_message(), Ok(None));
    assert_eq!(s.send_text("x".to_owned()), Err(WsError::Closed));

    // ...while control frames up to 125 bytes pass.
    let mut s = WsSession::new(16);
    s.handle_input(&client_frame(0x89, &[b'p'; 125], MASK));
    assert_eq!(s.poll_message(), Ok(None));
    assert_eq!(s.take_output().len(), 2 + 125);

    // Fragments that add up past the limit.
    let mut s = WsSession::new(16);
    s.handle_input(&client_frame(0x02, &[1; 10], MASK));
    s.handle_input(&client_frame(0x80, &[2; 10], MASK));
    assert!(matches!(
        s.poll_message(),
        Err(WsError::MessageTooLarge { .. })
    ));
    assert!(s.is_closed());
}

#[test]
fn input_overflow() {
    let mut s = WsSession::new(16);
    s.handle_input(&vec![0u8; 2 * 16 + INPUT_SLACK + 1]);
    assert_eq!(s.poll_message(), Err(WsError::InputOverflow));
    assert!(s.is_closed());
}

#[test]
fn protocol_violations() {
    let cases: &[(&[u8], &str)] = &[
        (&[0x81, 0x05, b'h', b'e', b'l', b'l', b'o'], "unmasked"),
        (&[0x83, 0x80, 0, 0, 0, 0], "reserved opcode"),
        (&[0xc1, 0x80, 0, 0, 0, 0], "rsv bit"),
        (&[0x09, 0x80, 0, 0, 0, 0], "fragmented ping"),
        (&[0x80, 0x80, 0, 0, 0, 0], "continuation without start"),
    ];
    for (bytes, what) in cases {
        let mut s = WsSession::new(1024);
        s.handle_input(bytes);
        assert!(
            matches!(s.poll_message(), Err(WsError::Protocol(_))),
            "{what}"
        );
        assert!(s.is_closed(), "{what}");
        // Close frame with 1002 (Protocol Error).
        assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xea], "{what}");
    }
    let mut s = WsSession::new(1024);
    s.handle_input(&client_frame(0x81, &[0xff, 0xfe], MASK));
    assert_eq!(s.poll_message(), Err(WsError::InvalidUtf8));
    assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xef]);
}

#[test]
fn send_text_frames() {
    let mut s = WsSession::new(1024);
    s.send_text("hi".to_owned()).unwrap();
    s.send_binary(vec![1, 2]).unwrap();
    assert_eq!(s.output_len(), 8);
    assert_eq!(
        s.take_output(),
        vec![0x81, 0x02, b'h', b'i', 0x82, 0x02, 1, 2]
    );
}

#[test]
fn random_input_never_panics() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    };
    for _ in 0..5_000 {
        let mut s = WsSession::new(64);
        // Mostly well-formed frame starts so the payload paths are reached too.
        let mut d = vec![
            [0x81, 0x82, 0x01, 0x89, 0x88, 0x80][usize::from(rnd()) % 6],
            0x80 | (rnd() & 0x7f),
        ];
        d.extend((0..usize::from(rnd()) % 96).map(|_| rnd()));
        for chunk in d.chunks(1 + usize::from(rnd()) % 8) {
            s.handle_input(chunk);
            while let Ok(Some(_)) = s.poll_message() {}
            let _ = s.take_output();
        }
        let _ = s.send_text("x".to_owned());
        s.close();
    }
}

#[test]
fn close_initiated_by_peer() {
    let mut s = WsSession::new(1024);
    s.handle_input(&client_frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e'], MASK));
    assert_eq!(s.poll_message(), Ok(Some(WsMessage::Close)));
    assert!(s.is_closed());
    assert_eq!(
        s.take_output(),
        vec![0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']
    );
    assert_eq!(s.poll_message(), Ok(None));
    assert_eq!(s.send_text("late".to_owned()), Err(WsError::Closed));
    assert!(s.take_output().is_empty());
}

#[test]
fn close_initiated_by_server() {
    let mut s = WsSession::new(1024);
    s.close();
    assert!(!s.is_closed());
    assert_eq!(s.take_output(), vec![0x88, 0x02, 0x03, 0xe8]);
    assert_eq!(s.send_text("after close".to_owned()), Err(WsError::Closed));
    s.close(); // idempotent
    assert!(s.take_output().is_empty());
    // Data the client sent before seeing our close is still delivered.
    s.handle_input(&client_frame(0x81, b"late", MASK));
    assert_eq!(
        s.poll_message(),
        Ok(Some(WsMessage::Text("late".to_owned())))
    );
    s.handle_input(&client_frame(0x88, &[0x03, 0xe8], MASK));
    assert_eq!(s.poll_message(), Ok(Some(WsMessage::Close)));
    assert!(s.is_closed());
    assert!(s.take_output().is_empty());
}

#[allow(clippy::disallowed_methods)] // Tests need an origin; time then moves by hand.
fn origin() -> Instant {
    Instant::now()
}

#[test]
fn keep_alive_pings_and_an_answering_peer_stays() {
    let t0 = origin();
    let sec = Duration::from_secs(1);
    let mut s = WsSession::new(1024);
    assert_eq!(s.poll_timeout(), None, "off until asked for");
    s.keep_alive(sec, t0);
    assert_eq!(s.poll_timeout(), Some(t0 + sec));
    s.handle_timeout(t0 + sec / 2);
    assert!(s.take_output().is_empty(), "not due yet");
    // Ten minutes of pings, each answered by a Pong: never closed.
    for i in 1..=600u32 {
        let now = t0 + sec * i;
        s.handle_timeout(now);
        assert_eq!(s.take_output(), [0x89, 0x00], "ping {i}");
        assert_eq!(s.poll_timeout(), Some(now + sec));
        s.handle_input(&client_frame(0x8A, b"", MASK)); // Pong
        assert_eq!(s.poll_message().unwrap(), None);
    }
    assert!(!s.is_closed() && !s.timed_out());
}

#[test]
fn keep_alive_closes_a_peer_that_leaves_two_pings_unanswered() {
    let t0 = origin();
    let sec = Duration::from_secs(1);
    let mut s = WsSession::new(1024);
    s.keep_alive(sec, t0);
    s.handle_timeout(t0 + sec);
    s.handle_timeout(t0 + sec * 2);
    assert_eq!(s.take_output(), [0x89, 0x00, 0x89, 0x00], "two pings");
    assert!(!s.is_closed());
    s.handle_timeout(t0 + sec * 3);
    assert!(s.is_closed() && s.timed_out());
    let out = s.take_output();
    assert_eq!(&out[..4], [0x88, 0x02, 0x03, 0xE9], "close 1001 going away");
    assert_eq!(s.poll_timeout(), None);
    // Any frame from the peer counts as an answer, not only a Pong.
    let mut s = WsSession::new(1024);
    s.keep_alive(sec, t0);
    s.handle_timeout(t0 + sec);
    s.handle_timeout(t0 + sec * 2);
    s.handle_input(&client_frame(0x81, b"{}", MASK));
    assert_eq!(
        s.poll_message().unwrap(),
        Some(WsMessage::Text("{}".into()))
    );
    s.handle_timeout(t0 + sec * 3);
    assert!(!s.is_closed());
    // A zero interval is off.
    let mut s = WsSession::new(1024);
    s.keep_alive(Duration::ZERO, t0);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn binary_header_frames_a_payload_as_tungstenite_would_and_not_after_close() {
    for len in [0usize, 5, 125, 126, 300, 0xFFFF, 0x1_0000, 70_000] {
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut own = WsSession::new(1024);
        own.send_binary(payload.clone()).unwrap();
        let mut ours = WsSession::new(1024);
        let mut framed = ours.binary_header(len).unwrap().to_vec();
        framed.extend_from_slice(&payload);
        assert_eq!(framed, own.take_output(), "{len} bytes");
    }
    let mut s = WsSession::new(1024);
    s.close_with(1000, "bye");
    assert_eq!(s.binary_header(1), Err(WsError::Closed));
}
