//! The RTSP camera stand-in (tests/camera/rtsp_camera.py) against an independent client:
//! ffprobe over interleaved TCP and over UDP, with and without authentication.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::camera::{Camera, CameraOpts};
use common::require_tool;
use std::collections::HashMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One stream as ffprobe reports it (`codec_type`, `codec_name`, `width`, ...).
type Stream = HashMap<String, String>;

/// Probes `url` with ffprobe over `transport` (`tcp` or `udp`), bounded to 15 s.
/// Ok: the streams; Err: ffprobe's stderr.
fn probe(url: &str, transport: &str) -> Result<Vec<Stream>, String> {
    require_tool("ffprobe");
    let mut child = Command::new("ffprobe")
        .args(["-v", "error", "-rtsp_transport", transport])
        // Socket I/O timeout (microseconds) so a silent server fails instead of hanging.
        .args(["-timeout", "5000000"])
        .args([
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate,channels",
            "-of",
            "compact=p=0",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffprobe");
    // Read both pipes on threads so a chatty ffprobe cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait ffprobe") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ffprobe {url} ({transport}) did not finish within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    if !status.success() {
        return Err(err);
    }
    Ok(out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split('|')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect())
}

fn stream<'a>(streams: &'a [Stream], kind: &str) -> &'a Stream {
    streams
        .iter()
        .find(|s| s.get("codec_type").map(String::as_str) == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} stream in {streams:?}"))
}

fn assert_video(streams: &[Stream], codec: &str, size: (u32, u32)) {
    let v = stream(streams, "video");
    assert_eq!(v["codec_name"], codec, "{streams:?}");
    assert_eq!(v["width"], size.0.to_string(), "{streams:?}");
    assert_eq!(v["height"], size.1.to_string(), "{streams:?}");
}

fn assert_audio(streams: &[Stream], codec: &str, rate: u32, channels: u32) {
    let a = stream(streams, "audio");
    assert_eq!(a["codec_name"], codec, "{streams:?}");
    assert_eq!(a["sample_rate"], rate.to_string(), "{streams:?}");
    assert_eq!(a["channels"], channels.to_string(), "{streams:?}");
}

fn probe_ok(cam: &Camera, url: &str, transport: &str) -> Vec<Stream> {
    probe(url, transport).unwrap_or_else(|e| {
        panic!(
            "ffprobe {url} over {transport} failed: {e}\ncamera log:\n{}",
            cam.stderr_lines().join("\n")
        )
    })
}

#[test]
fn h264_aac_over_tcp_and_udp() {
    let cam = Camera::start(&CameraOpts::default());
    assert!(cam.url.starts_with("rtsp://127.0.0.1:") && cam.url.ends_with("/cam"));
    assert_eq!(cam.connections(), (0, 0), "no client yet");
    for transport in ["tcp", "udp"] {
        let s = probe_ok(&cam, &cam.url, transport);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_video(&s, "h264", (640, 360));
        assert_audio(&s, "aac", 48000, 2);
    }
    // One RTSP connection per probe, each logged opened and closed.
    cam.wait_connections(Duration::from_secs(5), |o, c| o == 2 && c == 2);
    assert_eq!(cam.plays(), 2);
    // An unknown mount is a 404, not a hang.
    assert!(probe(&cam.mount_url("/nope"), "tcp").is_err());
}

#[test]
fn h265_pcma_custom_size_and_mounts() {
    let opts = CameraOpts {
        video: "h265",
        audio: "pcma",
        size: (320, 240),
        fps: 15,
        mounts: CameraOpts::numbered_mounts(2),
        ..CameraOpts::default()
    };
    let cam = Camera::start(&opts);
    assert_eq!(cam.urls.len(), 2);
    assert!(cam.url.ends_with("/cam0") && cam.urls[1].ends_with("/cam1"));
    let s = probe_ok(&cam, &cam.urls[1], "udp");
    assert_video(&s, "hevc", (320, 240));
    assert_audio(&s, "pcm_alaw", 8000, 1);
    let s = probe_ok(&cam, &cam.url, "tcp");
    assert_video(&s, "hevc", (320, 240));
}

#[test]
fn tcp_only_camera_refuses_udp() {
    let opts = CameraOpts {
        audio: "none",
        protocols: "tcp",
        ..CameraOpts::default()
    };
    let cam = Camera::start(&opts);
    let s = probe_ok(&cam, &cam.url, "tcp");
    assert_eq!(s.len(), 1, "{s:?}");
    assert_video(&s, "h264", (640, 360));
    let err = probe(&cam.url, "udp").expect_err("UDP must be refused");
    assert!(err.contains("461"), "{err}");
}

#[test]
fn digest_auth_then_restart_on_the_same_port() {
    let opts = CameraOpts {
        audio: "pcmu",
        auth: Some(("digest", "alice".into(), "s3cr:t@/".into())),
        ..CameraOpts::default()
    };
    let mut cam = Camera::start(&opts);
    let good = cam.url_with_credentials("alice", "s3cr:t@/");
    let s = probe_ok(&cam, &good, "tcp");
    assert_video(&s, "h264", (640, 360));
    assert_audio(&s, "pcm_mulaw", 8000, 1);

    let err = probe(&cam.url_with_credentials("alice", "wrong"), "tcp")
        .expect_err("a wrong password must fail");
    assert!(err.contains("401"), "{err}");
    let err = probe(&cam.url, "tcp").expect_err("anonymous must fail");
    assert!(err.contains("401"), "{err}");
    assert_eq!(cam.plays(), 1, "only the authorized client plays");

    // Killed and started again on the same port: the same URL works at once.
    let (port, url) = (cam.port, cam.url.clone());
    cam.restart();
    assert_eq!((cam.port, cam.url.as_str()), (port, url.as_str()));
    assert_eq!(cam.connections(), (0, 0), "counts restart with the process");
    let s = probe_ok(&cam, &good, "udp");
    assert_video(&s, "h264", (640, 360));
    cam.wait_connections(Duration::from_secs(5), |o, c| o == 1 && c == 1);
    assert!(
        cam.stderr_lines()
            .iter()
            .any(|l| l == "--- camera restarted ---")
    );
    assert_eq!(cam.stop(), 0, "SIGTERM exits 0");
}

#[test]
fn basic_auth() {
    let opts = CameraOpts {
        audio: "opus",
        auth: Some(("basic", "bob".into(), "hunter2".into())),
        ..CameraOpts::default()
    };
    let cam = Camera::start(&opts);
    let s = probe_ok(&cam, &cam.url_with_credentials("bob", "hunter2"), "tcp");
    assert_audio(&s, "opus", 48000, 2);
    let err = probe(&cam.url_with_credentials("bob", "nope"), "tcp").expect_err("wrong password");
    assert!(err.contains("401"), "{err}");
}

#[test]
fn port_in_use_is_an_error() {
    let cam = Camera::start(&CameraOpts {
        audio: "none",
        ..CameraOpts::default()
    });
    let opts = CameraOpts {
        port: cam.port,
        ..CameraOpts::default()
    };
    let err = Camera::try_start(&opts).err().expect("the port is taken");
    assert!(err.contains("Address already in use"), "{err}");
    // The first camera is unaffected.
    probe_ok(&cam, &cam.url, "tcp");
}
