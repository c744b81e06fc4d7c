//! `corecast-load whip`: N WHIP publishers in one process, for the WHIP ingest load test
//! (`perf/whip_load.sh`).
//!
//! ```text
//! corecast-load whip --url http://127.0.0.1:8080 --path-template 'pub%d' --publishers 50 \
//!     --clip clip.flv --cpu 1 --duration 60
//! ```
//!
//! Each publisher is a `corecast_client::WhipPeer` on its own UDP socket, publishing the
//! H.264 video of `--clip` (looped with continuous timestamps, like corecast's file
//! source) to `/whip/<path>`; all of them run on one thread with one clock: at each
//! frame's due time the frame goes to every connected publisher (each starts at a
//! keyframe). str0m packetizes, keeps the retransmission history and answers NACKs;
//! PLIs are counted (the clip's keyframes come when they come).
//!
//! Prints `corecast-load whip: N publishing` on stderr once every publisher has
//! connected and sent a keyframe (or failed), progress lines every `--report` seconds,
//! and one line of JSON on stdout at the end (`--duration`, SIGTERM or SIGINT).
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::args;
use crate::camera_reel::Reel;
use corecast::media::clip::Clip;
use corecast_client::{Datagram, WhipOptions, WhipPeer, post_whip_offer};
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Usage of the `whip` mode.
pub const USAGE: &str = "\
corecast-load whip: N WHIP publishers of the H.264 video of an FLV clip, looped, to
/whip/<path> of a corecast server. Prints `corecast-load whip: N publishing` on stderr
once all have connected and sent a keyframe, progress lines on stderr, and one line of
JSON on stdout at exit (--duration, SIGTERM, SIGINT).

usage: corecast-load whip --url http://HOST:PORT --clip FILE.flv [options]

  --url URL                 the server's HTTP address (http://HOST:PORT)
  --clip FILE               FLV file with H.264 video (required; audio is left out)
  --path-template T         stream paths, %d replaced by 0..N-1 (default pub%d)
  --publishers N            publishers (default 1)
  --ramp R                  publishers started per second (default 50)
  --cpu C                   pin the process to CPU C
  --duration S              stop after S seconds of publishing (default: until a signal)
  --report S                progress line every S seconds, 0 for none (default 5)
";

/// Largest clip tag accepted.
const MAX_TAG: usize = 16 << 20;
/// Time allowed for a WHIP POST and for ICE+DTLS.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Args {
    http: SocketAddr,
    clip: String,
    template: String,
    publishers: usize,
    ramp: f64,
    cpu: Option<usize>,
    duration: Option<Duration>,
    report: Duration,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        http: SocketAddr::from(([127, 0, 0, 1], 8080)),
        clip: String::new(),
        template: "pub%d".into(),
        publishers: 1,
        ramp: 50.0,
        cpu: None,
        duration: None,
        report: Duration::from_secs(5),
    };
    let mut url = None;
    for pair in args::pairs(argv) {
        let (flag, v) = pair?;
        match flag {
            "--url" => url = Some(args::http_addr(v)?),
            "--clip" => a.clip = v.to_owned(),
            "--path-template" => a.template = v.to_owned(),
            "--publishers" => a.publishers = args::count(flag, v)?,
            "--ramp" => a.ramp = args::num(flag, v)?.max(0.1),
            "--cpu" => a.cpu = Some(args::count(flag, v)?),
            "--duration" => a.duration = Some(Duration::from_secs_f64(args::num(flag, v)?)),
            "--report" => a.report = Duration::from_secs_f64(args::num(flag, v)?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    a.http = url.ok_or("--url is required")?;
    if a.clip.is_empty() {
        return Err("--clip is required".into());
    }
    if a.publishers == 0 {
        return Err("--publishers must be at least 1".into());
    }
    Ok(a)
}

/// One publisher.
struct Pub {
    peer: WhipPeer,
    socket: UdpSocket,
    /// Sends frames (started at a keyframe).
    sending: bool,
    /// Set up at; failed or ended.
    since: Instant,
    failed: Option<String>,
}

/// The `whip` mode's entry: returns the exit code.
pub fn main(argv: &[String]) -> i32 {
    let args = match args::or_usage("whip", USAGE, parse_args(argv)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(cpu) = args.cpu
        && let Err(e) = crate::whep_io::pin_to(cpu)
    {
        eprintln!("corecast-load whip: cannot pin to CPU {cpu}: {e}");
        return 2;
    }
    crate::camera::install_signal_handlers();
    let reel = match std::fs::read(&args.clip)
        .map_err(|e| e.to_string())
        .and_then(|b| Clip::parse(b.into(), MAX_TAG).map_err(|e| e.to_string()))
        .and_then(|c| Reel::from_clip(&c))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("corecast-load whip: {}: {e}", args.clip);
            return 2;
        }
    };
    let summary = run(&args, &reel);
    println!("{summary}");
    0
}

fn path_of(template: &str, i: usize) -> String {
    template.replace("%d", &i.to_string())
}

/// Creates publisher `i`: socket, offer, WHIP POST, answer.
fn start(args: &Args, reel: &Reel, i: usize, now: Instant) -> Result<Pub, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let opts = WhipOptions {
        audio: false,
        ..WhipOptions::default()
    };
    let mut peer = WhipPeer::new(now, local, opts).map_err(|e| e.to_string())?;
    let params = &reel.track().params;
    peer.set_parameter_sets(
        params
            .sps
            .iter()
            .chain(params.pps.iter())
            .map(|b| b.to_vec())
            .collect(),
    );
    let path = path_of(&args.template, i);
    let answered = post_whip_offer(args.http, &path, None, &peer.offer(), SETUP_TIMEOUT)
        .map_err(|e| e.to_string())?;
    peer.accept_answer(Instant::now(), &answered.answer)
        .map_err(|e| e.to_string())?;
    Ok(Pub {
        peer,
        socket,
        sending: false,
        since: now,
        failed: None,
    })
}

/// Reads every datagram waiting on the publisher's socket into its peer, then sends
/// what it has to send.
fn service(p: &mut Pub, now: Instant, buf: &mut [u8], out: &mut Vec<Datagram>) {
    let Ok(local) = p.socket.local_addr() else {
        return;
    };
    while let Ok((n, from)) = p.socket.recv_from(buf) {
        p.peer.handle_datagram(now, from, local, &buf[..n]);
    }
    p.peer.poll(now, out);
    for d in out.drain(..) {
        let _ = p.socket.send_to(&d.contents, d.destination);
    }
    if p.failed.is_none() {
        if let Some(c) = p.peer.closed() {
            p.failed = Some(format!("{c:?}"));
        } else if !p.peer.is_connected() && now.duration_since(p.since) > SETUP_TIMEOUT {
            p.failed = Some("ICE+DTLS did not come up".into());
        }
    }
}

fn run(args: &Args, reel: &Reel) -> serde_json::Value {
    let t0 = Instant::now();
    let mut pubs: Vec<Pub> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    let mut frame: u64 = 0;
    let mut announced = false;
    let mut publishing_since: Option<Instant> = None;
    let mut next_report = t0 + args.report;
    let mut frames_sent = 0u64;
    while !crate::camera::stop_requested() {
        let now = Instant::now();
        // Start the publishers at the ramp.
        let due = ((now - t0).as_secs_f64() * args.ramp) as usize + 1;
        while pubs.len() + errors.len() < due.min(args.publishers) {
            let i = pubs.len() + errors.len();
            match start(args, reel, i, now) {
                Ok(p) => pubs.push(p),
                Err(e) => errors.push(format!("publisher {i}: {e}")),
            }
        }
        // The frames that are due go to every connected publisher.
        while t0 + Duration::from_millis(reel.live(frame).due_ms.max(0) as u64) <= now {
            let f = reel.live(frame).frame;
            let pts = reel.pts(frame);
            for p in pubs.iter_mut().filter(|p| p.failed.is_none()) {
                if !p.sending && p.peer.is_connected() && f.keyframe {
                    p.sending = true;
                }
                if p.sending {
                    let _ = p.peer.send_video(now, pts, &f.data, f.keyframe);
                    frames_sent += 1;
                }
            }
            frame += 1;
        }
        for p in pubs.iter_mut() {
            service(p, now, &mut buf, &mut out);
        }
        let started = pubs.len() + errors.len() >= args.publishers;
        let settled = pubs.iter().all(|p| p.sending || p.failed.is_some());
        if !announced && started && settled {
            announced = true;
            publishing_since = Some(now);
            let ok = pubs.iter().filter(|p| p.failed.is_none()).count();
            eprintln!("corecast-load whip: {ok} publishing");
        }
        if let (Some(since), Some(d)) = (publishing_since, args.duration)
            && now.duration_since(since) >= d
        {
            break;
        }
        if !args.report.is_zero() && now >= next_report {
            next_report = now + args.report;
            let sending = pubs
                .iter()
                .filter(|p| p.sending && p.failed.is_none())
                .count();
            eprintln!(
                "corecast-load whip: {:.0} s: {sending} of {} publishing, {} failed, {frames_sent} frames sent",
                now.duration_since(t0).as_secs_f64(),
                args.publishers,
                errors.len() + pubs.iter().filter(|p| p.failed.is_some()).count()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    summary(args, &pubs, &errors, frames_sent, t0)
}

fn summary(
    args: &Args,
    pubs: &[Pub],
    errors: &[String],
    frames_sent: u64,
    t0: Instant,
) -> serde_json::Value {
    let failed: Vec<&String> = errors
        .iter()
        .chain(pubs.iter().filter_map(|p| p.failed.as_ref()))
        .collect();
    let sum = |f: fn(&corecast_client::WhipStats) -> u64| -> u64 {
        pubs.iter().map(|p| f(p.peer.stats())).sum()
    };
    json!({
        "publishers": args.publishers,
        "publishing": pubs.iter().filter(|p| p.sending && p.failed.is_none()).count(),
        "failed": failed.len(),
        "errors": failed.iter().take(5).collect::<Vec<_>>(),
        "seconds": t0.elapsed().as_secs_f64(),
        "frames_sent": frames_sent,
        "video_packets": sum(|s| s.video_packets),
        "retransmissions": sum(|s| s.retransmissions),
        "nacks": sum(|s| s.nacks),
        "plis": sum(|s| s.plis),
        "rembs": sum(|s| s.rembs),
        "remb_bps": pubs.iter().filter_map(|p| p.peer.stats().remb_bps).max(),
    })
}
