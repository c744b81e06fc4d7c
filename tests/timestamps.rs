//! A publisher's clock that jumps (an hour forward; back to 0, as a restarted encoder's
//! does) must not reach viewers: a WHEP viewer plays on with monotonic RTP time and no
//! gap longer than a frame.
//!
//! The publisher is a minimal RTMP client written here, so that the timestamps on the
//! wire are exactly the ones the test chooses (ffmpeg's FLV muxer rewrites
//! non-monotonic DTS): it replays `tests/data/ffmpeg_320x240_baseline_aac.flv` (10 fps,
//! one GOP a second) in a loop, paced in real time, with the crate's own clip and chunk
//! encoding. `CORECAST_TEST_LOG=1` echoes the server's log.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use corecast::media::clip::Clip;
use corecast::media::flv::TagType;
use corecast::rtmp::proto::amf0::Amf0Value;
use corecast::rtmp::proto::chunk::{MSG_AUDIO, MSG_VIDEO, encode_message};
use corecast_client::{ReceiveMode, TrackKind, WhepViewer};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Live time at which the publisher's clock jumps.
const JUMP_AT_MS: i64 = 3000;
/// How long the publisher sends.
const PUBLISH_MS: i64 = 7000;
/// The clip's frame interval (10 fps) at 90 kHz.
const FRAME_TICKS: i64 = 9000;
/// RTMP's default chunk size (the publisher never changes it).
const CHUNK: usize = 128;
/// The message stream `createStream` gives the first time.
const STREAM_ID: u32 = 1;

/// Sends an AMF0 command on `c`.
fn command(c: &mut TcpStream, stream: u32, values: &[Amf0Value]) {
    c.write_all(&common::rtmp::command(stream, values))
        .expect("send command");
}

/// Reads (bounded) until the server's bytes contain `needle`.
fn read_until(c: &mut TcpStream, needle: &[u8]) {
    let end = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        assert!(
            Instant::now() < end,
            "no {:?} from the server",
            String::from_utf8_lossy(needle)
        );
        match c.read(&mut buf) {
            Ok(0) => panic!("server closed the publisher"),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("publisher read: {e}"),
        }
    }
}

/// Publishes `live/{name}`: connect, createStream, publish, then waits for
/// `NetStream.Publish.Start`.
fn start_publishing(s: &Server, name: &str) -> TcpStream {
    let mut c = common::rtmp::after_handshake(s.rtmp);
    let app = Amf0Value::object([
        ("app", Amf0Value::string("live")),
        ("type", Amf0Value::string("nonprivate")),
        (
            "tcUrl",
            Amf0Value::string(format!("rtmp://{}/live", s.rtmp)),
        ),
    ]);
    command(
        &mut c,
        0,
        &[Amf0Value::string("connect"), Amf0Value::Number(1.0), app],
    );
    read_until(&mut c, b"NetConnection.Connect.Success");
    let cmd = |name: &str, txn: f64, args: &[Amf0Value]| {
        let mut v = vec![
            Amf0Value::string(name),
            Amf0Value::Number(txn),
            Amf0Value::Null,
        ];
        v.extend_from_slice(args);
        v
    };
    command(&mut c, 0, &cmd("createStream", 2.0, &[]));
    command(
        &mut c,
        STREAM_ID,
        &cmd(
            "publish",
            3.0,
            &[Amf0Value::string(name), Amf0Value::string("live")],
        ),
    );
    read_until(&mut c, b"NetStream.Publish.Start");
    c
}

/// Replays the test clip on `c` for [`PUBLISH_MS`] in real time; each tag's wire
/// timestamp is its live time plus `shift(live time)` (ms). Returns when the jump was
/// sent.
fn replay(mut c: TcpStream, shift: impl Fn(i64) -> i64) -> Instant {
    let file = std::fs::read(root().join("tests/data/ffmpeg_320x240_baseline_aac.flv"))
        .expect("test clip");
    let clip = Clip::parse(Bytes::from(file), 1 << 20).expect("clip");
    // Whatever the server sends now (acknowledgements) is read and dropped.
    let mut drain = c.try_clone().expect("clone");
    let drainer = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match drain.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
    let start = Instant::now();
    let mut jumped = None;
    let mut out = BytesMut::new();
    for index in 0.. {
        let (live_ms, tag) = clip.live_tag(index);
        if live_ms >= PUBLISH_MS {
            break;
        }
        let due = start + Duration::from_millis(live_ms as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if live_ms >= JUMP_AT_MS && jumped.is_none() {
            jumped = Some(Instant::now());
        }
        let (type_id, csid) = match tag.kind {
            TagType::Audio => (MSG_AUDIO, 4),
            _ => (MSG_VIDEO, 6),
        };
        let wire = (live_ms + shift(live_ms)) as u32;
        out.clear();
        encode_message(csid, type_id, STREAM_ID, wire, &tag.body, CHUNK, &mut out);
        c.write_all(&out).expect("send media");
    }
    let _ = c.shutdown(Shutdown::Both);
    let _ = drainer.join();
    jumped.expect("the replay reached the jump")
}

/// Publishes `live/{name}` with timestamps shifted by `shift` and watches it with a
/// WHEP viewer; checks the viewer's video RTP time across the jump and the server's log
/// line for it.
fn plays_on_across(tag: &str, shift: fn(i64) -> i64, logged: &str) {
    let s = Server::start(tag, &test_config(""));
    let path = format!("live/{tag}");
    let publisher = start_publishing(&s, tag);
    let replay = std::thread::spawn(move || replay(publisher, shift));
    s.wait_stream(&path, |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
    let mut viewer = WhepViewer::connect(s.http, &path, ReceiveMode::Light, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("WHEP {path}: {e}"));
    // The publisher sends for 7 s; the viewer watches until it is done.
    let until = Instant::now() + Duration::from_millis(PUBLISH_MS as u64);
    while Instant::now() < until && !replay.is_finished() {
        viewer
            .run_for(Duration::from_millis(200))
            .expect("the session stays up");
    }
    let jumped = replay.join().expect("publisher");
    viewer
        .run_for(Duration::from_millis(300))
        .expect("the session stays up");

    let video: Vec<_> = viewer
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .collect();
    let times: Vec<i64> = video.iter().map(|f| f.rtp_time).collect();
    let after = video.iter().filter(|f| f.arrival > jumped).count();
    eprintln!(
        "{tag}: {} video frames, {after} after the jump; RTP steps {:?}",
        video.len(),
        times.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
    );
    // At 10 fps: about 4 s before the jump was watched, 4 s after it.
    assert!(video.len() >= 30, "{} video frames", video.len());
    assert!(after >= 30, "{after} video frames after the jump");
    for (i, w) in times.windows(2).enumerate() {
        let step = w[1] - w[0];
        assert!(
            step > 0 && step < 1 << 31,
            "RTP time not monotonic at frame {i}: {} -> {}",
            w[0],
            w[1]
        );
        assert!(
            step <= FRAME_TICKS * 3 / 2,
            "gap of {step} ticks (more than 1.5 frames) at frame {i}"
        );
    }
    let metrics = String::from_utf8_lossy(&s.get("/metrics").body).into_owned();
    let jumps: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("corecast_timeline_jumps_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    eprintln!("{tag}: {jumps} clock jumps counted");
    // Both tracks jumped; the first one seen moved the stream's offset, and the other
    // followed it (in sync) without a jump of its own.
    assert_eq!(jumps, 1, "clock jumps counted in /metrics:\n{metrics}");
    let log = s.log_until(logged, Duration::from_secs(5));
    let line = log.lines().find(|l| l.contains(logged));
    assert!(
        line.is_some_and(|l| l.contains(&path) && l.contains("timeline continued")),
        "no {logged:?} line for {path} in the log:\n{log}"
    );
}

#[test]
fn a_publisher_jumping_an_hour_forward_plays_on_with_continuous_rtp_time() {
    plays_on_across(
        "fwd",
        |ms| if ms >= JUMP_AT_MS { 3_600_000 } else { 0 },
        "publisher's clock jumped +3600.0 s",
    );
}

#[test]
fn a_publisher_restarting_its_clock_at_zero_plays_on_with_continuous_rtp_time() {
    // 60 s into its clock, the publisher starts again at 0.
    plays_on_across(
        "restart",
        |ms| {
            if ms >= JUMP_AT_MS {
                -JUMP_AT_MS
            } else {
                60_000
            }
        },
        "publisher's clock jumped -6",
    );
}
