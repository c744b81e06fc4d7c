//! G.711 pass-through: ffmpeg publishes H.264 + A-law over RTMP; a WebRTC viewer gets
//! PCMA audio frames (reassembled by str0m) next to the video, and an RTMP player
//! (ffprobe) still sees pcm_alaw.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::{Server, require_tool, test_config};
use corecast_client::{ReceiveMode, TrackKind, WhepViewer};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn streams(s: &Server) -> serde_json::Value {
    let r = common::request(
        s.http,
        "GET /api/v1/streams HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    serde_json::from_slice(&r.body).expect("streams json")
}

#[test]
fn alaw_published_over_rtmp_reaches_webrtc_and_rtmp_viewers() {
    require_tool("ffmpeg");
    require_tool("ffprobe");
    let s = Server::start("webrtc-alaw", &test_config(""));
    let url = format!("rtmp://{}/live/phone", s.rtmp);
    // 20 ms of samples per frame (160 bytes), as telephony sources send them.
    let _publisher = Kill(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"])
            .args(["-af", "asetnsamples=n=160"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", "25", "-bf", "0", "-pix_fmt", "yuv420p"])
            .args(["-c:a", "pcm_alaw", "-ar", "8000", "-ac", "1"])
            .args(["-t", "30", "-f", "flv", &url])
            .stdin(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    );
    let end = Instant::now() + Duration::from_secs(15);
    let codecs = loop {
        let v = streams(&s);
        let codecs: Vec<String> = v["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|st| st["path"] == "live/phone")
            .flat_map(|st| st["tracks"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["codec"].as_str().map(str::to_string))
            .collect();
        if codecs.len() == 2 {
            break codecs;
        }
        assert!(Instant::now() < end, "stream never got two tracks: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(codecs, ["h264", "pcma"]);

    let mut v = WhepViewer::connect(
        s.http,
        "live/phone",
        ReceiveMode::Full,
        Duration::from_secs(5),
    )
    .expect("whep");
    assert!(v.answer().contains("PCMA/8000"), "answer: {}", v.answer());
    v.run_for(Duration::from_secs(3)).expect("run");
    let audio: Vec<_> = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Audio)
        .collect();
    let video = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .count();
    // 3 s of 20 ms frames is 150; audio starts with the first live frame.
    assert!(
        audio.len() >= 100,
        "{} audio frames, {video} video",
        audio.len()
    );
    assert!(
        audio.iter().all(|f| f.size == 160),
        "A-law frames of 160 samples"
    );
    assert!(video >= 50, "{video} video frames");
    assert_eq!(v.stats().lost, 0);
    assert_eq!(v.close().expect("delete"), 200);

    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rw_timeout",
            "5000000",
            "-show_entries",
            "stream=codec_name,sample_rate",
        ])
        .args(["-of", "json", &url])
        .output()
        .expect("ffprobe");
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let names: Vec<&str> = probe["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|st| st["codec_name"].as_str())
        .collect();
    assert!(names.contains(&"pcm_alaw"), "ffprobe saw {probe}");
    assert!(names.contains(&"h264"), "ffprobe saw {probe}");
}
