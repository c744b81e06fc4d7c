//! Connections that hold a slot without doing anything are closed by their time-outs:
//! one that sends nothing, one that stops after the handshake, and a publisher that only
//! answers pings (input, but no media). Others are served meanwhile.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::closed_within;
use common::rtmp::{after_handshake, publish_commands};
use common::{Server, demo_stream, test_config_sections};
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn server(name: &str) -> Server {
    Server::start(
        name,
        &test_config_sections(
            "",
            "handshake_timeout = \"2s\"\nidle_timeout = \"2s\"",
            &demo_stream("demo", 0),
        ),
    )
}

#[test]
fn a_connection_that_sends_nothing_is_closed_at_the_handshake_timeout() {
    let s = server("rtmp-silent");
    let mut c = TcpStream::connect(s.rtmp).expect("connect");
    let took = closed_within(&mut c, Duration::from_secs(6)).expect("closed");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}");
    let log = s.log_until("handshake", Duration::from_secs(5));
    assert!(log.contains("rtmp connection closed"), "{log}");
    assert_eq!(s.get("/api/v1/health").status, 200);
}

#[test]
fn a_connection_that_stops_after_the_handshake_is_closed_at_the_handshake_timeout() {
    let s = server("rtmp-handshake-only");
    let mut c = after_handshake(s.rtmp);
    let took = closed_within(&mut c, Duration::from_secs(6)).expect("closed");
    assert!(took >= Duration::from_millis(1000), "closed after {took:?}");
    assert_eq!(s.get("/api/v1/health").status, 200);
}

#[test]
fn a_publisher_that_only_answers_pings_is_closed_at_the_idle_timeout() {
    let s = server("rtmp-ping-only");
    let mut c = after_handshake(s.rtmp);
    let published = Instant::now();
    c.write_all(&publish_commands("live", "quiet"))
        .expect("publish");
    // The publish is accepted: the path appears.
    let end = Instant::now() + Duration::from_secs(5);
    while !s
        .get_json("/api/v1/streams")
        .to_string()
        .contains("live/quiet")
    {
        assert!(Instant::now() < end, "publish not accepted");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Ping responses (user control event 7) and acknowledgements every 200 ms, no media.
    let ping = {
        let mut w = bytes::BytesMut::new();
        corecast::rtmp::proto::chunk::encode_message(
            2,
            0x04,
            0,
            0,
            &[0, 7, 0, 0, 0, 1],
            128,
            &mut w,
        );
        corecast::rtmp::proto::chunk::encode_message(2, 0x03, 0, 0, &[0, 0, 0x10, 0], 128, &mut w);
        w.to_vec()
    };
    let mut closed = None;
    while published.elapsed() < Duration::from_secs(8) {
        if c.write_all(&ping).is_err()
            || closed_within(&mut c, Duration::from_millis(200)).is_some()
        {
            closed = Some(published.elapsed());
            break;
        }
    }
    let took = closed.expect("a publisher sending only pings is closed");
    assert!(took >= Duration::from_millis(1500), "closed after {took:?}");
    let log = s.log_until("publisher silent", Duration::from_secs(5));
    assert!(log.contains("publisher silent for 2s"), "{log}");
    // The path is gone; the configured stream still plays.
    let end = Instant::now() + Duration::from_secs(5);
    while s
        .get_json("/api/v1/streams")
        .to_string()
        .contains("live/quiet")
    {
        assert!(Instant::now() < end, "live/quiet still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        s.get_json("/api/v1/streams")
            .to_string()
            .contains("\"demo\"")
    );
}
