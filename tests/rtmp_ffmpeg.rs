//! RTMP against real clients: ffmpeg publishes, ffprobe and ffmpeg play.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn demo_file() -> String {
    root().join("configs/media/demo.flv").display().to_string()
}

/// `ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv URL`, running until killed.
fn publish(file: &str, url: &str, loops: bool) -> Child {
    require_tool("ffmpeg");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"]);
    if loops {
        cmd.args(["-stream_loop", "-1"]);
    }
    cmd.args(["-i", file, "-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg publisher")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until the API lists `path` with its tracks.
fn wait_published(s: &Server, path: &str) -> serde_json::Value {
    s.wait_stream(path, |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    })
}

/// ffprobe's view of a stream: codec, size and the first `n` video packets.
fn probe(url: &str, n: usize) -> (serde_json::Value, Vec<(f64, f64, bool)>) {
    let v = common::ffprobe_json(&[
        "-show_streams",
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time,dts_time,flags",
        "-read_intervals",
        &format!("%+#{n}"),
        url,
    ]);
    let packets = v["packets"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let f = |k: &str| {
                        p[k].as_str()
                            .and_then(|s| s.parse::<f64>().ok())
                            .unwrap_or(f64::NAN)
                    };
                    (
                        f("pts_time"),
                        f("dts_time"),
                        p["flags"].as_str().is_some_and(|s| s.starts_with('K')),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (v["streams"][0].clone(), packets)
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) for an ffmpeg player started with `-progress pipe:1` and returns its
/// exit status and the frames it reported.
fn finish_player(p: &mut Child) -> (std::process::ExitStatus, u64) {
    let status = wait_exit(p, Duration::from_secs(30)).expect("player did not finish");
    let mut out = String::new();
    if let Some(mut o) = p.stdout.take() {
        use std::io::Read;
        let _ = o.read_to_string(&mut out);
    }
    let frames = out
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0);
    (status, frames)
}

#[test]
fn ffmpeg_publishes_and_ffprobe_sees_h264_720p() {
    let s = Server::start("rtmp-pub", &test_config(""));
    let url = format!("rtmp://{}/live/t", s.rtmp);
    let _publisher = Killed(publish(&demo_file(), &url, true));
    let stream = wait_published(&s, "live/t");
    assert_eq!(stream["source"]["kind"], "rtmp");
    assert_eq!(stream["tracks"][0]["width"], 1280);
    let (v, packets) = probe(&url, 5);
    assert_eq!(v["codec_name"], "h264");
    assert_eq!(v["width"], 1280);
    assert_eq!(v["height"], 720);
    assert!(
        packets.first().is_some_and(|p| p.2),
        "first video packet is not a keyframe: {packets:?}"
    );
    // The demo clip has no B-frames, and the API says so.
    assert_eq!(s.stream("live/t")["tracks"][0]["bframes"], false);
}

#[test]
fn player_joining_mid_gop_starts_on_a_keyframe_from_the_cache() {
    let s = Server::start("rtmp-join", &test_config(&demo_stream("demo", 0)));
    wait_published(&s, "demo");
    // The demo has a keyframe every 2 s. Join at several points inside a GOP: the first
    // video packet is always a keyframe, and it comes from the GOP cache at once instead
    // of up to 2 s later with the next keyframe. ffprobe's whole run (process start,
    // connect, probe, first packet) is the bound on the wait.
    let url = format!("rtmp://{}/live/demo", s.rtmp);
    let dir = std::env::temp_dir().join(format!("corecast-join-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let first = dir.join("first.flv");
    let mut slowest = Duration::ZERO;
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(450));
        let t = Instant::now();
        // ffmpeg with probing minimised: it exits as soon as it has one video frame.
        let status = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-probesize",
                "32",
                "-analyzeduration",
                "0",
            ])
            .args([
                "-rw_timeout",
                "10000000",
                "-i",
                &url,
                "-map",
                "0:v:0",
                "-frames:v",
                "1",
                "-c",
                "copy",
            ])
            .arg(&first)
            .status()
            .expect("ffmpeg");
        slowest = slowest.max(t.elapsed());
        assert!(status.success());
        let (v, packets) = probe(first.to_str().expect("utf8"), 1);
        assert_eq!(v["width"], 1280);
        assert!(
            packets.first().is_some_and(|p| p.2),
            "first video frame is not a keyframe: {packets:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        slowest < Duration::from_millis(1000),
        "first keyframe took {slowest:?}"
    );
}

#[test]
fn twenty_concurrent_players_each_receive_frames() {
    let s = Server::start("rtmp-20", &test_config(&demo_stream("demo", 0)));
    wait_published(&s, "demo");
    let url = format!("rtmp://{}/live/demo", s.rtmp);
    let mut players: Vec<Child> = (0..20)
        .map(|_| {
            Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-nostats",
                    "-loglevel",
                    "error",
                    "-rw_timeout",
                    "10000000",
                ])
                .args(["-i", &url, "-t", "3", "-c", "copy", "-f", "null", "-"])
                .args(["-progress", "pipe:1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("ffmpeg player")
        })
        .collect();
    // While they play, the API counts them. Twenty ffmpegs can take seconds just to start
    // on a loaded machine: poll until all are counted, all have exited, or 20 s.
    let mut max_viewers = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && max_viewers < 20
        && players.iter_mut().any(|p| matches!(p.try_wait(), Ok(None)))
    {
        let v = s.get_json("/api/v1/streams");
        max_viewers = max_viewers.max(v["streams"][0]["viewers"]["total"].as_u64().unwrap_or(0));
        std::thread::sleep(Duration::from_millis(200));
    }
    for (i, p) in players.iter_mut().enumerate() {
        let (status, frames) = finish_player(p);
        assert!(status.success(), "player {i} failed");
        assert!(frames > 30, "player {i} got {frames} frames");
    }
    assert!(max_viewers >= 15, "API saw at most {max_viewers} viewers");
}

#[test]
fn publisher_disconnect_ends_players_and_second_publisher_is_refused() {
    let s = Server::start("rtmp-end", &test_config(""));
    let url = format!("rtmp://{}/live/e", s.rtmp);
    let mut publisher = publish(&demo_file(), &url, false); // one pass: ~4 s
    wait_published(&s, "live/e");
    // A second publisher on the same path is refused.
    let mut second = publish(&demo_file(), &url, false);
    let status = wait_exit(&mut second, Duration::from_secs(15)).expect("second publisher hung");
    assert!(!status.success(), "second publisher was accepted");
    let mut player = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "15000000",
            "-i",
            &url,
        ])
        .args(["-c", "copy", "-f", "null", "-"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("player");
    // When the publisher's file ends, the player is told and exits by itself.
    let _ = wait_exit(&mut publisher, Duration::from_secs(20)).expect("publisher did not finish");
    let status = wait_exit(&mut player, Duration::from_secs(10));
    let _ = player.kill();
    assert!(
        status.is_some(),
        "player still running after the publisher left"
    );
    let log = s.drain_log().join("\n");
    assert!(log.contains("publish refused"), "{log}");
    // The path is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.get_json("/api/v1/streams")["streams"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        assert!(Instant::now() < deadline, "stream still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn b_frames_keep_their_timestamps() {
    require_tool("ffmpeg");
    let s = Server::start("rtmp-bf", &test_config(""));
    let dir = std::env::temp_dir().join(format!("corecast-bf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let src = dir.join("bf.flv");
    let made = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
        ])
        .args([
            "-t", "6", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25",
            "-pix_fmt", "yuv420p",
        ])
        .arg(&src)
        .status()
        .expect("ffmpeg");
    assert!(made.success());
    let url = format!("rtmp://{}/live/bf", s.rtmp);
    let _publisher = Killed(publish(src.to_str().expect("utf8"), &url, true));
    wait_published(&s, "live/bf");
    let (_, packets) = probe(&url, 50);
    let _ = std::fs::remove_dir_all(&dir);
    // The API marks the video track as having B-frames (bounded wait: the list is a
    // snapshot the shards refresh).
    let listed = s.wait_stream("live/bf", |v| v["tracks"][0]["bframes"] == true);
    assert_eq!(listed["tracks"][0]["kind"], "video");
    assert!(packets.len() >= 50);
    // B-frames: presentation differs from decode order for some frames, never before it,
    // and decode times only grow.
    let reordered = packets.iter().filter(|p| (p.0 - p.1).abs() > 1e-6).count();
    assert!(reordered > 10, "no reordered frames: {packets:?}");
    assert!(
        packets.iter().all(|p| p.0 + 1e-6 >= p.1),
        "pts < dts: {packets:?}"
    );
    assert!(
        packets.windows(2).all(|w| w[1].1 > w[0].1),
        "dts not increasing: {packets:?}"
    );
    // The pts sequence within a GOP is a permutation of evenly spaced times (25 fps).
    let mut pts: Vec<f64> = packets.iter().map(|p| p.0).collect();
    pts.sort_by(|a, b| a.total_cmp(b));
    let steps = pts
        .windows(2)
        .filter(|w| ((w[1] - w[0]) - 0.04).abs() < 0.002)
        .count();
    assert!(steps >= pts.len() - 3, "pts are not evenly spaced: {pts:?}");
}

#[test]
fn file_source_on_shard_0_plays_from_a_connection_on_shard_1() {
    let s = Server::start("rtmp-shard", &test_config(&demo_stream("demo", 0)));
    wait_published(&s, "demo");
    let url = format!("rtmp://{}/live/demo", s.rtmp);
    // The kernel spreads connections over the shards; keep players until one is on shard 1.
    let mut players = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        players.push(Killed(
            Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-i",
                    &url,
                    "-c",
                    "copy",
                    "-f",
                    "null",
                    "-",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("player"),
        ));
        std::thread::sleep(Duration::from_millis(400));
        let v = s.get_json("/api/v1/streams");
        let by_shard = &v["streams"][0]["viewers"]["by_shard"];
        if by_shard[1].as_u64().unwrap_or(0) > 0 {
            assert_eq!(v["streams"][0]["owner_shard"], 0);
            assert_eq!(v["streams"][0]["relay_shards"][0], 1, "{v}");
            break;
        }
        assert!(
            Instant::now() < deadline && players.len() < 24,
            "no player landed on shard 1"
        );
    }
    // And what shard 1 relays is a real picture: ffprobe from the same shard-1 path works
    // whichever shard it lands on.
    let (v, packets) = probe(&url, 5);
    assert_eq!(v["width"], 1280);
    assert!(packets[0].2);
    // The relay's viewers see frames: bytes leave shard 1.
    let m = s.get("/metrics").body_text();
    let out1: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("corecast_bytes_out_total{shard=\"1\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(out1 > 100_000, "shard 1 sent {out1} bytes");
}

#[test]
fn publish_key_is_enforced() {
    let s = Server::start(
        "rtmp-auth",
        &test_config("[[streams]]\npath = \"live/sec\"\npublish_key = \"s3cret\"\n"),
    );
    let mut bad = publish(
        &demo_file(),
        &format!("rtmp://{}/live/sec?key=nope", s.rtmp),
        false,
    );
    let status = wait_exit(&mut bad, Duration::from_secs(15)).expect("unauthorized publisher hung");
    assert!(!status.success());
    let _good = Killed(publish(
        &demo_file(),
        &format!("rtmp://{}/live/sec?key=s3cret", s.rtmp),
        true,
    ));
    wait_published(&s, "live/sec");
    let log = s.drain_log().join("\n");
    assert!(log.contains("wrong or missing key"), "{log}");
}

#[test]
fn stalled_player_drops_frames_then_is_closed_and_others_keep_playing() {
    let s = Server::start(
        "rtmp-stall",
        &test_config_sections(
            "",
            "send_timeout = \"2s\"\nsend_buffer = \"64KiB\"",
            &format!("[media]\nsink_max_frames = 300\n{}", demo_stream("demo", 0)),
        )
        .replace("shards = 2", "shards = 1"),
    );
    wait_published(&s, "demo");
    let url = format!("rtmp://{}/live/demo", s.rtmp);
    let player = |secs: &str| {
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostats",
                "-loglevel",
                "error",
                "-i",
                &url,
                "-t",
                secs,
            ])
            .args(["-c", "copy", "-f", "null", "-", "-progress", "pipe:1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("player")
    };
    let mut stalled = Killed(player("60"));
    std::thread::sleep(Duration::from_millis(800));
    // Freeze the player: it stops reading, its socket fills up.
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(stalled.0.id() as i32, libc::SIGSTOP);
    }
    let mut healthy = player("6");
    let (status, frames) = finish_player(&mut healthy);
    assert!(status.success());
    // 6 s of 30 fps video, the first from the GOP cache: nothing held it back.
    assert!(frames >= 150, "healthy player got {frames} frames");
    let log = s.drain_log().join("\n");
    assert!(
        log.contains("rtmp connection closed: write"),
        "stalled player not closed: {log}"
    );
    let m = s.get("/metrics").body_text();
    let dropped: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("corecast_frames_dropped_total{shard=\"0\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped > 0, "no frames counted as dropped");
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(stalled.0.id() as i32, libc::SIGCONT);
    }
    let _ = stalled.0.kill();
}
