//! AAC to Opus for browsers: ffmpeg publishes H.264 + AAC (a 1 kHz tone) over RTMP; a
//! WHEP viewer gets Opus, which, written to an Ogg file, ffmpeg decodes to a 1 kHz tone as
//! long as the video; RTMP players still get the AAC; the transcoder stops after the last
//! browser left.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::{Server, require_tool, test_config};
use corecast_client::{ReceiveMode, TrackKind, WhepViewer};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ffmpeg publishing test video (a keyframe at the start of every second) and the lavfi
/// audio source `audio` as `channels`-channel AAC, live over RTMP.
fn publish(s: &Server, path: &str, audio: &str, channels: u32) -> Child {
    require_tool("ffmpeg");
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", audio])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
        ])
        .args([
            "-g",
            "30",
            "-keyint_min",
            "30",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ])
        .args([
            "-force_key_frames",
            "expr:gte(t,n_forced*1)",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-b:a", "128k", "-ac", &channels.to_string()])
        .args(["-f", "flv"])
        .arg(format!("rtmp://{}/{path}", s.rtmp))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg publisher")
}

/// The strongest frequency of `samples` (mono, 48 kHz) between 100 Hz and 4 kHz, in
/// 10 Hz steps.
fn peak_frequency(samples: &[f32]) -> f64 {
    let n = samples.len().min(48_000);
    let x = &samples[samples.len() - n..];
    let power = |f: f64| {
        let w = 2.0 * std::f64::consts::PI * f / 48_000.0;
        let (mut re, mut im) = (0.0, 0.0);
        for (i, s) in x.iter().enumerate() {
            re += f64::from(*s) * (w * i as f64).cos();
            im += f64::from(*s) * (w * i as f64).sin();
        }
        re * re + im * im
    };
    (10..=400)
        .map(|k| f64::from(k) * 10.0)
        .max_by(|a, b| power(*a).total_cmp(&power(*b)))
        .unwrap_or(0.0)
}

/// Writes Opus packets as an Ogg Opus file (RFC 7845): the ID and comment headers, then
/// one packet per frame with its granule position (48 kHz samples so far).
fn write_ogg_opus<'a>(
    path: &std::path::Path,
    channels: u32,
    packets: impl Iterator<Item = &'a [u8]>,
) {
    use ogg::writing::{PacketWriteEndInfo, PacketWriter};
    let file = std::fs::File::create(path).expect("ogg file");
    let mut w = PacketWriter::new(std::io::BufWriter::new(file));
    let serial = 0x636f_7265;
    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(channels as u8);
    head.extend_from_slice(&0u16.to_le_bytes()); // pre-skip
    head.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family 0
    w.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)
        .expect("write");
    let mut tags = b"OpusTags".to_vec();
    let vendor = b"corecast tests";
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    w.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)
        .expect("write");
    let packets: Vec<&[u8]> = packets.collect();
    let mut granule = 0u64;
    for (i, p) in packets.iter().enumerate() {
        granule += opus::packet::get_nb_samples(p, 48_000).expect("an Opus packet") as u64;
        let end = if i + 1 == packets.len() {
            PacketWriteEndInfo::EndStream
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        w.write_packet(p.to_vec(), serial, end, granule)
            .expect("write");
    }
}

/// ffmpeg's decode of `path`: mono 48 kHz float samples (the first channel).
fn ffmpeg_decode_mono(path: &std::path::Path) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-af", "pan=mono|c0=c0", "-ar", "48000", "-f", "f32le", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg decode");
    assert!(
        out.status.success(),
        "ffmpeg could not decode the Ogg Opus: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn tracks(s: &Server, path: &str) -> Vec<Value> {
    s.stream(path)["tracks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn transcoding(s: &Server, path: &str) -> bool {
    s.stream(path)["transcoding"] == true
}

fn check(rate: u32, channels: u32) {
    let s = Server::start(&format!("transcode-{rate}"), &test_config(""));
    let path = "live/tone";
    let sine = format!("sine=frequency=1000:sample_rate={rate}");
    let mut ffmpeg = publish(&s, path, &sine, channels);
    s.wait_stream(path, |st| {
        st["tracks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["codec"] == "opus"))
    });
    let t = tracks(&s, path);
    let opus = t.iter().find(|t| t["codec"] == "opus").expect("opus track");
    let aac = t.iter().find(|t| t["codec"] == "aac").expect("aac track");
    assert_eq!(opus["transcoded_from"], aac["id"], "{t:?}");
    assert_eq!(opus["channels"], channels, "{t:?}");
    assert!(
        !transcoding(&s, path),
        "nothing to transcode for before a browser comes"
    );

    let mut v = WhepViewer::connect(s.http, path, ReceiveMode::Full, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("whep: {e:?}\n{}", s.drain_log().join("\n")));
    // Long enough for sender reports of both tracks (str0m reports audio every 5 s).
    v.run_for(Duration::from_secs(9)).expect("run");
    let audio: Vec<_> = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Audio)
        .collect();
    assert!(
        audio.len() >= 300,
        "{} Opus frames in 9 s (50 a second expected)",
        audio.len()
    );
    assert!(
        audio
            .iter()
            .all(|f| f.codec == Some(str0m::format::Codec::Opus)),
        "not Opus"
    );
    assert!(transcoding(&s, path));
    // Its cost and errors are in /metrics.
    let cpu = s.metric("corecast_stream_transcode_cpu_microseconds_total");
    let errors = s.metric("corecast_stream_transcode_errors_total");
    eprintln!("transcoding {rate} Hz x{channels}: {cpu} µs of CPU so far, {errors} errors");
    assert!(cpu > 0, "transcoding CPU time is counted");
    assert_eq!(errors, 0);
    // The Opus, written to an Ogg file and decoded by ffmpeg, is the publisher's 1 kHz
    // tone, and lasts as long as the video over the same stretch of sender time.
    let timed: Vec<_> = audio.iter().filter(|f| f.sender_micros.is_some()).collect();
    assert!(
        timed.len() >= 100,
        "{} audio frames with a sender time",
        timed.len()
    );
    let ogg = std::env::temp_dir().join(format!(
        "corecast-transcode-{}-{rate}.ogg",
        std::process::id()
    ));
    write_ogg_opus(&ogg, channels, timed.iter().map(|f| f.payload.as_slice()));
    let mono = ffmpeg_decode_mono(&ogg);
    let _ = std::fs::remove_file(&ogg);
    let peak = peak_frequency(&mono);
    assert!(
        (peak - 1000.0).abs() <= 20.0,
        "the decoded audio peaks at {peak} Hz"
    );
    let rms = (mono.iter().map(|s| s * s).sum::<f32>() / mono.len().max(1) as f32).sqrt();
    assert!(rms > 0.05, "the tone is heard, not silence (rms {rms})");
    let audio_ms = mono.len() as f64 / 48.0;
    // The video frames whose sender time falls in the audio's (first frame to the end of
    // the last), at 30 fps.
    let first = timed.first().and_then(|f| f.sender_micros).unwrap_or(0);
    let end = timed.last().and_then(|f| f.sender_micros).unwrap_or(0) + 20_000;
    let video = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .filter(|f| f.sender_micros.is_some_and(|t| t >= first && t < end))
        .count();
    let video_ms = video as f64 * 1000.0 / 30.0;
    eprintln!(
        "{} Opus frames decode to {audio_ms:.1} ms at {peak} Hz; {video} video frames = {video_ms:.1} ms",
        timed.len()
    );
    assert!(
        (audio_ms - video_ms).abs() <= 50.0,
        "the decoded audio lasts {audio_ms:.1} ms, the video over the same time {video_ms:.1} ms"
    );

    // RTMP players still get the AAC as published.
    let url = format!("rtmp://{}/{path}", s.rtmp);
    let probe = common::ffprobe_json(&["-show_entries", "stream=codec_name", &url]);
    let codecs: Vec<&str> = probe["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"aac") && !codecs.contains(&"opus"),
        "{codecs:?}"
    );

    // The last browser leaves: transcoding stops 10 s of stream time later.
    let _ = v.close();
    drop(v);
    let deadline = Instant::now() + Duration::from_secs(25);
    while transcoding(&s, path) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(!transcoding(&s, path), "transcoding did not stop");
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}

#[test]
fn aac_44100_stereo_reaches_a_whep_viewer_as_opus() {
    check(44_100, 2);
}

#[test]
fn aac_48000_mono_reaches_a_whep_viewer_as_opus() {
    check(48_000, 1);
}

/// `ffmpeg ... -f framemd5` of the audio packets of `input` (extra input options first):
/// one MD5 per packet.
fn audio_md5s(input_opts: &[&str], input: &str, packets: usize) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(input_opts)
        .args(["-i", input, "-map", "0:a", "-c", "copy"])
        .args(["-frames:a", &packets.to_string(), "-f", "framemd5", "-"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("ffmpeg framemd5");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|m| m.trim().to_string()))
        .collect()
}

#[test]
fn rtmp_players_get_the_aac_byte_for_byte_while_browsers_get_opus() {
    let s = Server::start("transcode-rtmp", &test_config(""));
    let clip = common::root().join("tests/data/ffmpeg_320x240_baseline_aac.flv");
    let url = format!("rtmp://{}/live/clip", s.rtmp);
    let mut publisher = common::ffmpeg_publish_loop(&clip, &[], &url);
    s.wait_stream("live/clip", |st| {
        st["tracks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["codec"] == "opus"))
    });
    let mut v = WhepViewer::connect(
        s.http,
        "live/clip",
        ReceiveMode::Full,
        Duration::from_secs(15),
    )
    .expect("whep");
    v.run_for(Duration::from_secs(1)).expect("run");
    assert!(transcoding(&s, "live/clip"));
    let source: std::collections::HashSet<String> =
        audio_md5s(&[], &clip.display().to_string(), 100_000)
            .into_iter()
            .collect();
    let played = audio_md5s(&["-rw_timeout", "10000000"], &url, 100);
    assert_eq!(played.len(), 100, "the RTMP player got 100 audio packets");
    let foreign: Vec<&String> = played.iter().filter(|m| !source.contains(*m)).collect();
    assert!(
        foreign.is_empty(),
        "{} of 100 AAC packets played over RTMP differ from the published ones",
        foreign.len()
    );
    v.run_for(Duration::from_secs(1)).expect("run");
    assert!(
        v.frames().iter().any(|f| f.kind == TrackKind::Audio),
        "the browser got Opus meanwhile"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// A lavfi source that beeps (1 kHz, 50 ms) at the start of every second, when the
/// video has its keyframes.
const BEEPS: &str = "aevalsrc=if(lt(mod(t\\,1)\\,0.05)\\,0.5*sin(2*PI*1000*t)\\,0):s=44100";

#[test]
fn audio_and_video_stay_in_sync_through_the_sender_reports() {
    let s = Server::start("transcode-sync", &test_config(""));
    let path = "live/beeps";
    let mut ffmpeg = publish(&s, path, BEEPS, 1);
    s.wait_stream(path, |st| {
        st["tracks"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["codec"] == "opus"))
    });
    let mut v = WhepViewer::connect(s.http, path, ReceiveMode::Full, Duration::from_secs(15))
        .expect("whep");
    v.run_for(Duration::from_secs(10)).expect("run");
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    // Keyframes on the sender's clock (after the joining burst, once reports came).
    let keyframes: Vec<i64> = v
        .frames()
        .iter()
        .filter(|f| f.kind == TrackKind::Video && f.is_idr())
        .filter_map(|f| f.sender_micros)
        .collect();
    // Beep onsets on the sender's clock: the first loud sample after a silence.
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Mono).expect("decoder");
    let mut pcm = vec![0f32; 5760];
    let mut onsets = Vec::new();
    let mut quiet = 0usize;
    for f in v.frames().iter().filter(|f| f.kind == TrackKind::Audio) {
        let Ok(n) = dec.decode_float(&f.payload, &mut pcm, false) else {
            continue;
        };
        for (i, x) in pcm[..n].iter().enumerate() {
            if x.abs() > 0.1 {
                if quiet > 24_000
                    && let Some(t) = f.sender_micros
                {
                    onsets.push(t + i as i64 * 1_000_000 / 48_000);
                }
                quiet = 0;
            } else {
                quiet += 1;
            }
        }
    }
    let pairs: Vec<i64> = onsets
        .iter()
        .filter_map(|o| keyframes.iter().map(|k| o - k).min_by_key(|d| d.abs()))
        .collect();
    eprintln!("keyframes {keyframes:?}\nonsets {onsets:?}\naudio - video (µs): {pairs:?}");
    assert!(pairs.len() >= 3, "too few beeps matched: {pairs:?}");
    assert!(
        pairs.iter().all(|d| d.abs() < 20_000),
        "audio and video apart by more than 20 ms: {pairs:?} µs"
    );
}
