//! `corecast-load whep`: opens N WHEP viewers against a server and reports what they got.
//!
//! ```text
//! corecast-load whep --url http://127.0.0.1:8080 --path demo --viewers 500 --ramp 50 \
//!     --duration 20 --cpu 1
//! corecast-load whep --url http://127.0.0.1:8080 --paths 'cam{0..199}' --viewers 200
//! ```
//!
//! With several paths (`--paths`, `--path-template`), viewer `i` watches path `i % M`;
//! the summary adds how many paths got every frame and the worst path's coverage.
//!
//! Each viewer is a [`corecast_client::WhepPeer`] in `Light` mode: str0m sees only STUN,
//! DTLS and RTCP (ICE consent stays alive), media is counted from the clear-text RTP
//! headers and never decrypted. Signaling threads `POST` the offers at `--ramp` per
//! second and hand each answered peer, with its own non-blocking UDP socket, to one of
//! `--threads` event loops ([`crate::whep_io`]: epoll over all sockets, `recvmmsg`, one
//! timer heap). Once every viewer plays or has failed, the tool waits `--settle` seconds
//! (the join bursts pass), prints `corecast-load: window start` on stderr, measures for
//! `--duration` seconds, prints `corecast-load: window end`, then a human summary on
//! stderr and one line of JSON on stdout.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::stats::{self, percentile, sorted};
use crate::whep_board::{Board, Reason, ViewerStat, state};
use crate::whep_io::{self, Loop, NewViewer, Waker};
use corecast_client::{self as client, ReceiveMode, WhepPeer};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, Sender};
use std::time::{Duration, Instant};

/// Usage of the `whep` mode.
pub const USAGE: &str = "\
corecast-load whep: opens N WHEP viewers (str0m, light receive mode: RTP headers are
counted, media is never decrypted) and reports delivered bitrate, packet loss, time to
first frame and failures: a human summary on stderr, one line of JSON on stdout.

usage: corecast-load whep --url http://HOST:PORT --path STREAM [options]
       corecast-load whep --url http://HOST:PORT --paths 'cam{0..199}' [options]
       corecast-load whep --url http://HOST:PORT --path-template 'cam%d' --path-count M [options]

  --url URL                 corecast's HTTP address (WHEP at URL/whep/STREAM) (required)
  --path STREAM             stream path (this, --paths or --path-template is required)
  --paths LIST              several paths, comma-separated; an item may hold one range
                            {A..B}, e.g. cam{0..199} or a,b,c; viewer i watches path i % M
  --path-template T         paths T with %d replaced by 0..M-1 (T without %d: one path)
  --path-count M            paths of --path-template (default: --viewers with %d, else 1)
  --viewers N               viewers to open (default 100)
  --ramp R                  new viewers per second, e.g. 50 or 50/s (default 50)
  --duration S              length of the measurement window, seconds (default 20, at
                            most 86400)
  --threads T               event loop threads (default 1)
  --signal-threads T        threads POSTing offers (default 2)
  --cpu LIST                pin the threads to these CPUs, e.g. 1 or 1,2 (default: unpinned)
  --settle S                wait after the last viewer started, before measuring (default 3)
  --http-timeout S          time-out of one WHEP POST (default 5)
  --connect-timeout S       answer to first video frame time-out (default 10)
  --stall-secs S            a viewer with no packets for this long at the end is stalled (default 2)
  --stream-bps B            the stream's bitrate, to compare delivered bitrates with
  --stream-fps F            the stream's frame rate, to count frames never sent (default 30)
  --rcvbuf BYTES            receive buffer asked for per UDP socket (default 2097152)
";

#[derive(Debug, Clone)]
struct Args {
    url: String,
    /// The paths as given (`--path`, `--paths` or `--path-template`), for the summary.
    path_spec: String,
    /// The streams watched: viewer `i` watches `paths[i % paths.len()]`.
    paths: Vec<String>,
    viewers: usize,
    ramp: f64,
    duration: f64,
    threads: usize,
    signal_threads: usize,
    cpus: Vec<usize>,
    settle: f64,
    http_timeout: f64,
    connect_timeout: f64,
    stall_secs: f64,
    stream_bps: Option<f64>,
    stream_fps: f64,
    rcvbuf: usize,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        path_spec: String::new(),
        paths: Vec::new(),
        viewers: 100,
        ramp: 50.0,
        duration: 20.0,
        threads: 1,
        signal_threads: 2,
        cpus: Vec::new(),
        settle: 3.0,
        http_timeout: 5.0,
        connect_timeout: 10.0,
        stall_secs: 2.0,
        stream_bps: None,
        stream_fps: 30.0,
        rcvbuf: 2 << 20,
    };
    let (mut single, mut list, mut template, mut path_count) = (None, None, None, None);
    for pair in crate::args::pairs(argv) {
        let (flag, value) = pair?;
        let num = |v: &str| crate::args::num(flag, v);
        let count = |v: &str| crate::args::count(flag, v);
        match flag {
            "--url" => a.url = value.trim_end_matches('/').to_owned(),
            "--path" => single = Some(value.trim_matches('/').to_owned()),
            "--paths" => list = Some(value.to_owned()),
            "--path-template" => template = Some(value.trim_matches('/').to_owned()),
            "--path-count" => path_count = Some(count(value)?),
            "--viewers" => a.viewers = count(value)?,
            "--ramp" => a.ramp = num(value.strip_suffix("/s").unwrap_or(value))?,
            "--duration" => a.duration = num(value)?,
            "--threads" => a.threads = count(value)?,
            "--signal-threads" => a.signal_threads = count(value)?,
            "--cpu" => {
                a.cpus = value
                    .split(',')
                    .map(|c| count(c.trim()))
                    .collect::<Result<_, _>>()?;
            }
            "--settle" => a.settle = num(value)?,
            "--http-timeout" => a.http_timeout = num(value)?,
            "--connect-timeout" => a.connect_timeout = num(value)?,
            "--stall-secs" => a.stall_secs = num(value)?,
            "--stream-bps" => a.stream_bps = Some(num(value)?),
            "--stream-fps" => a.stream_fps = num(value)?,
            "--rcvbuf" => a.rcvbuf = count(value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.url.is_empty() {
        return Err("--url is required".into());
    }
    if a.viewers == 0 || a.viewers > 20_000 {
        return Err("--viewers must be 1..=20000".into());
    }
    if path_count.is_some() && template.is_none() {
        return Err("--path-count goes with --path-template".into());
    }
    (a.path_spec, a.paths) = match (single, list, template) {
        (Some(p), None, None) => (p.clone(), vec![p]),
        (None, Some(l), None) => {
            let paths = expand_paths(&l)?;
            (l, paths)
        }
        (None, None, Some(t)) => {
            let n = path_count.unwrap_or(if t.contains("%d") { a.viewers } else { 1 });
            if n > 1 && !t.contains("%d") {
                return Err("--path-template needs %d for --path-count above 1".into());
            }
            if n > MAX_PATHS {
                return Err(format!("--path-count must be at most {MAX_PATHS}"));
            }
            let paths = (0..n).map(|i| t.replace("%d", &i.to_string())).collect();
            (t, paths)
        }
        (None, None, None) => return Err("--path, --paths or --path-template is required".into()),
        _ => return Err("give one of --path, --paths and --path-template".into()),
    };
    if a.paths.is_empty() || a.paths.len() > MAX_PATHS {
        return Err(format!("1..={MAX_PATHS} paths, not {}", a.paths.len()));
    }
    if a.paths.iter().any(|p| p.is_empty()) {
        return Err("empty path".into());
    }
    if !(1..=64).contains(&a.threads) || !(1..=64).contains(&a.signal_threads) {
        return Err("--threads and --signal-threads must be 1..=64".into());
    }
    if !(1.0..=240.0).contains(&a.stream_fps) {
        return Err("--stream-fps must be 1..=240".into());
    }
    if a.ramp < 1.0 {
        return Err("--ramp must be at least 1 per second".into());
    }
    if a.duration < 1.0 || a.duration > MAX_DURATION {
        return Err(format!("--duration must be 1..={MAX_DURATION} seconds"));
    }
    if a.http_timeout <= 0.0 || a.connect_timeout <= 0.0 || a.settle > 600.0 {
        return Err("time-outs must be positive and --settle at most 600".into());
    }
    Ok(a)
}

/// Longest measurement window: a day (perf/soak.sh keeps viewers for its whole run).
const MAX_DURATION: f64 = 86_400.0;

/// Most paths one run watches.
const MAX_PATHS: usize = 20_000;

/// `--paths` items: comma-separated, each with at most one `{A..B}` range (inclusive,
/// ascending), e.g. `cam{0..199}`, `a,b`, `x{1..3}y`.
fn expand_paths(list: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(|s| s.trim().trim_matches('/')) {
        let Some((head, rest)) = item.split_once('{') else {
            out.push(item.to_owned());
            continue;
        };
        let bad = || format!("--paths: bad range in {item:?} (expected PREFIX{{A..B}}SUFFIX)");
        let (range, tail) = rest.split_once('}').ok_or_else(bad)?;
        let (a, b) = range.split_once("..").ok_or_else(bad)?;
        let (a, b): (usize, usize) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a > b || b - a >= MAX_PATHS || out.len() + (b - a) >= MAX_PATHS || tail.contains('{') {
            return Err(bad());
        }
        out.extend((a..=b).map(|i| format!("{head}{i}{tail}")));
    }
    Ok(out)
}

/// Runs the `whep` mode; returns the process exit code.
pub fn main(argv: &[String]) -> i32 {
    let args = match crate::args::or_usage("whep", USAGE, parse_args(argv)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let addr = match crate::args::http_addr(&args.url) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("corecast-load whep: {e}");
            return 2;
        }
    };
    raise_nofile();
    match run(args, addr) {
        Ok(summary) => {
            println!("{summary}");
            0
        }
        Err(e) => {
            eprintln!("corecast-load whep: {e}");
            1
        }
    }
}

/// Raises the open-file limit to its hard limit (one UDP socket per viewer).
pub(crate) fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit read and write a live rlimit struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// What every signaling thread shares.
struct Signal {
    args: Arc<Args>,
    addr: SocketAddr,
    board: Arc<Board>,
    t0: Instant,
    next: AtomicUsize,
    loops: Vec<(Sender<NewViewer>, Arc<Waker>)>,
    stop: Arc<AtomicBool>,
}

/// POSTs offers on schedule (viewer `i` at `t0 + i / ramp`) until every viewer started.
fn signal_loop(sig: &Signal) {
    let a = &sig.args;
    let timeout = Duration::from_secs_f64(a.http_timeout);
    loop {
        let idx = sig.next.fetch_add(1, Relaxed);
        if idx >= a.viewers || sig.stop.load(Relaxed) {
            return;
        }
        let at = sig.t0 + Duration::from_secs_f64(idx as f64 / a.ramp);
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let st = &sig.board.viewers[idx];
        st.state.store(state::SIGNALING, Relaxed);
        match open_viewer(sig, idx, timeout) {
            Ok(v) => {
                st.state.store(state::CONNECTING, Relaxed);
                let (tx, waker) = &sig.loops[idx % sig.loops.len()];
                if tx.send(v).is_ok() {
                    waker.wake();
                }
            }
            Err((reason, text)) => {
                st.finish(reason);
                sig.board
                    .note_error(format!("viewer {idx}: {}: {text}", reason.name()));
            }
        }
    }
}

fn open_viewer(sig: &Signal, idx: usize, timeout: Duration) -> Result<NewViewer, (Reason, String)> {
    let st = &sig.board.viewers[idx];
    let socket = whep_io::bind_udp(sig.addr, sig.args.rcvbuf)
        .map_err(|e| (Reason::Io, format!("bind: {e}")))?;
    let local = socket
        .local_addr()
        .map_err(|e| (Reason::Io, format!("local address: {e}")))?;
    let mut peer = WhepPeer::new(Instant::now(), local, ReceiveMode::Light)
        .map_err(|e| (Reason::of(&e), e.to_string()))?;
    // Frame records are for tests; a load tool keeps only counters.
    peer.set_max_frames(0);
    let t = Instant::now();
    let path = &sig.args.paths[idx % sig.args.paths.len()];
    let answered = client::post_offer(sig.addr, path, &peer.offer(), timeout);
    st.signal_us.store(t.elapsed().as_micros() as u64, Relaxed);
    let answered = answered.map_err(|e| (Reason::of(&e), e.to_string()))?;
    let now = Instant::now();
    peer.accept_answer(now, &answered.answer)
        .map_err(|e| (Reason::of(&e), e.to_string()))?;
    Ok(NewViewer {
        idx,
        socket,
        peer,
        answered: now,
    })
}

/// UDP counters of the whole machine (`/proc/net/snmp`): receive-buffer drops happen in
/// the kernel, before the tool can count a packet.
fn udp_snmp() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = lines.next()?.split_whitespace().collect();
    let values: Vec<&str> = lines.next()?.split_whitespace().collect();
    let get = |k: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == k)?;
        values.get(i)?.parse().ok()
    };
    Some((get("RcvbufErrors")?, get("InErrors")?))
}

#[derive(Debug, Clone, Copy)]
struct Snap {
    state: u8,
    packets: u64,
    audio_packets: u64,
    bytes: u64,
    lost: u64,
    frames: u64,
    expected_frames: u64,
    last_rx_us: u64,
}

impl Snap {
    fn of(v: &ViewerStat) -> Snap {
        Snap {
            state: v.state.load(Relaxed),
            packets: v.packets.load(Relaxed),
            audio_packets: v.audio_packets.load(Relaxed),
            bytes: v.bytes.load(Relaxed),
            lost: v.lost.load(Relaxed),
            frames: v.frames.load(Relaxed),
            expected_frames: v.expected_frames.load(Relaxed),
            last_rx_us: v.last_rx_us.load(Relaxed),
        }
    }
}

fn run(args: Args, addr: SocketAddr) -> Result<serde_json::Value, String> {
    client::init_crypto();
    let args = Arc::new(args);
    let board = Arc::new(Board::new(args.viewers));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let cpu_of = |k: usize| args.cpus.get(k % args.cpus.len().max(1)).copied();

    let mut loops = Vec::new();
    for k in 0..args.threads {
        let (tx, rx) = mpsc::channel();
        let waker = Arc::new(Waker::new().map_err(|e| format!("eventfd: {e}"))?);
        let mut lp = Loop::new(
            waker.clone(),
            rx,
            board.clone(),
            t0,
            Duration::from_secs_f64(args.connect_timeout),
            (90_000.0 / args.stream_fps).round() as i64,
        )
        .map_err(|e| format!("epoll: {e}"))?;
        let (cpu, stop) = (cpu_of(k), stop.clone());
        std::thread::Builder::new()
            .name(format!("whep-loop-{k}"))
            .spawn(move || {
                if let Some(c) = cpu {
                    let _ = whep_io::pin_to(c);
                }
                lp.run(&stop);
            })
            .map_err(|e| format!("cannot start loop {k}: {e}"))?;
        loops.push((tx, waker));
    }
    let sig = Arc::new(Signal {
        args: args.clone(),
        addr,
        board: board.clone(),
        t0,
        next: AtomicUsize::new(0),
        loops,
        stop: stop.clone(),
    });
    for k in 0..args.signal_threads {
        let (sig, cpu) = (sig.clone(), cpu_of(k));
        std::thread::Builder::new()
            .name(format!("whep-signal-{k}"))
            .spawn(move || {
                if let Some(c) = cpu {
                    let _ = whep_io::pin_to(c);
                }
                signal_loop(&sig);
            })
            .map_err(|e| format!("cannot start signaling thread {k}: {e}"))?;
    }

    // Wait until every viewer plays or has failed, or until the set-up deadline.
    let ramp = Duration::from_secs_f64(args.viewers as f64 / args.ramp);
    let deadline = t0
        + ramp
        + Duration::from_secs_f64(args.http_timeout + args.connect_timeout)
        + Duration::from_secs(2);
    let all_resolved = || board.viewers.iter().all(ViewerStat::resolved);
    while Instant::now() < deadline && !(t0.elapsed() >= ramp && all_resolved()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let setup_s = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs_f64(args.settle));

    let clk = stats::clock_ticks_per_sec();
    let start: Vec<Snap> = board.viewers.iter().map(Snap::of).collect();
    let cpu0 = stats::cpu_ticks("self");
    let snmp0 = udp_snmp();
    let w0 = Instant::now();
    eprintln!("corecast-load: window start");
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    let end: Vec<Snap> = board.viewers.iter().map(Snap::of).collect();
    let cpu1 = stats::cpu_ticks("self");
    let snmp1 = udp_snmp();
    let window = w0.elapsed().as_secs_f64();
    let end_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
    eprintln!("corecast-load: window end");
    stop.store(true, Relaxed);

    let load_cpu = match (cpu0, cpu1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / clk / window * 100.0),
        _ => None,
    };
    let rcvbuf_drops = match (snmp0, snmp1) {
        (Some(a), Some(b)) => Some((b.0.saturating_sub(a.0), b.1.saturating_sub(a.1))),
        _ => None,
    };
    let summary = summarize(
        &args,
        &board,
        &start,
        &end,
        Window {
            secs: window,
            end_us,
            setup_s,
            load_cpu,
            rcvbuf_drops,
        },
    );
    eprint!("{}", human(&summary));
    Ok(summary)
}

/// What the viewers of one path got over the window.
#[derive(Debug, Clone, Copy, Default)]
struct PathAcc {
    viewers: usize,
    in_window: usize,
    frames: u64,
    expected: u64,
    lost: u64,
    /// A viewer was not playing at the window start, stalled, dropped out, lost packets
    /// or missed frames.
    incomplete: bool,
}

impl PathAcc {
    /// Frames received / frames the RTP timestamps span (0 with no viewer in window).
    fn coverage(&self) -> f64 {
        if self.in_window == 0 {
            0.0
        } else if self.expected == 0 {
            1.0
        } else {
            (self.frames as f64 / self.expected as f64).min(1.0)
        }
    }
}

/// The per-path part of the summary.
struct PathSummary {
    /// Paths every viewer of which got every frame and packet over the window.
    complete: usize,
    /// The first few other paths.
    incomplete: Vec<String>,
    coverage_min: f64,
    /// The path with the lowest coverage (most packets lost on ties), if any is
    /// incomplete.
    worst: serde_json::Value,
}

fn path_summary(paths: &[String], acc: &[PathAcc]) -> PathSummary {
    let complete = acc.iter().filter(|p| !p.incomplete).count();
    let incomplete = paths
        .iter()
        .zip(acc)
        .filter(|(_, a)| a.incomplete)
        .take(10)
        .map(|(p, _)| p.clone())
        .collect();
    let worst = paths.iter().zip(acc).min_by(|(_, a), (_, b)| {
        (a.coverage(), !a.incomplete, u64::MAX - a.lost)
            .partial_cmp(&(b.coverage(), !b.incomplete, u64::MAX - b.lost))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let coverage_min = worst.map_or(0.0, |(_, a)| a.coverage());
    let worst = match worst {
        Some((p, a)) if a.incomplete => json!({
            "path": p,
            "viewers": a.viewers,
            "viewers_in_window": a.in_window,
            "frames": a.frames,
            "frames_expected": a.expected,
            "lost": a.lost,
            "coverage": (a.coverage() * 10_000.0).round() / 10_000.0,
        }),
        _ => serde_json::Value::Null,
    };
    PathSummary {
        complete,
        incomplete,
        coverage_min: (coverage_min * 10_000.0).round() / 10_000.0,
        worst,
    }
}

struct Window {
    secs: f64,
    end_us: u64,
    setup_s: f64,
    load_cpu: Option<f64>,
    /// Receive-buffer errors and all receive errors of UDP on the machine.
    rcvbuf_drops: Option<(u64, u64)>,
}

fn summarize(
    args: &Args,
    board: &Board,
    start: &[Snap],
    end: &[Snap],
    w: Window,
) -> serde_json::Value {
    let stall_us = (args.stall_secs * 1e6) as u64;
    let (mut connected, mut playing, mut failed) = (0usize, 0usize, 0usize);
    let (mut in_window, mut dropped, mut stalled, mut lossy) = (0usize, 0usize, 0usize, 0usize);
    let (mut packets, mut bytes, mut lost, mut frames) = (0u64, 0u64, 0u64, 0u64);
    let mut audio_packets = 0u64;
    let (mut expected_frames, mut frame_gaps) = (0u64, 0usize);
    let mut states_at_start = [0usize; 7];
    let mut rates = Vec::new();
    let mut fps = Vec::new();
    // Video frames each viewer got over the window (null: not playing at its start).
    let mut viewer_frames = vec![serde_json::Value::Null; board.viewers.len()];
    let mut failures = serde_json::Map::new();
    let times = |f: fn(&ViewerStat) -> &AtomicU64| {
        sorted(
            board
                .viewers
                .iter()
                .map(|v| f(v).load(Relaxed))
                .filter(|t| *t != u64::MAX)
                .map(|t| t as f64 / 1000.0)
                .collect(),
        )
    };
    let ttff = times(|v| &v.ttff_us);
    let connect = times(|v| &v.connect_us);
    let signal = times(|v| &v.signal_us);
    // Connected to first frame: how long the server took to start sending once DTLS was up.
    let after_connect = sorted(
        board
            .viewers
            .iter()
            .filter_map(|v| {
                let (c, t) = (v.connect_us.load(Relaxed), v.ttff_us.load(Relaxed));
                (c != u64::MAX && t != u64::MAX).then(|| t.saturating_sub(c) as f64 / 1000.0)
            })
            .collect(),
    );
    let mut per_path = vec![PathAcc::default(); args.paths.len()];
    for (i, v) in board.viewers.iter().enumerate() {
        let (s, e) = (start[i], end[i]);
        let pa = &mut per_path[i % args.paths.len()];
        pa.viewers += 1;
        // Ever reached ICE+DTLS / a first frame, whatever happened later.
        connected += usize::from(v.connect_us.load(Relaxed) != u64::MAX);
        playing += usize::from(v.ttff_us.load(Relaxed) != u64::MAX);
        failed += usize::from(e.state == state::FAILED);
        if matches!(e.state, state::FAILED | state::ENDED) {
            let name = Reason::from_u8(v.reason.load(Relaxed)).name();
            let n = failures.get(name).and_then(|x| x.as_u64()).unwrap_or(0);
            failures.insert(name.to_owned(), json!(n + 1));
        }
        states_at_start[usize::from(s.state).min(6)] += 1;
        if s.state != state::PLAYING {
            pa.incomplete = true;
            continue;
        }
        in_window += 1;
        pa.in_window += 1;
        viewer_frames[i] = json!(e.frames - s.frames);
        let (df, de) = (
            e.frames - s.frames,
            e.expected_frames.saturating_sub(s.expected_frames),
        );
        expected_frames += de;
        frame_gaps += usize::from(de > df);
        let (dp, dl) = (e.packets - s.packets, e.lost.saturating_sub(s.lost));
        packets += dp;
        audio_packets += e.audio_packets.saturating_sub(s.audio_packets);
        lost += dl;
        lossy += usize::from(dl > 0);
        let db = e.bytes - s.bytes;
        bytes += db;
        frames += e.frames - s.frames;
        rates.push(db as f64 * 8.0 / w.secs);
        fps.push((e.frames - s.frames) as f64 / w.secs);
        if e.state != state::PLAYING {
            dropped += 1;
        }
        if e.state != state::PLAYING || w.end_us.saturating_sub(e.last_rx_us) > stall_us {
            stalled += 1;
            pa.incomplete = true;
        }
        pa.frames += df;
        pa.expected += de;
        pa.lost += dl;
        pa.incomplete |= dl > 0 || de > df;
    }
    let paths = path_summary(&args.paths, &per_path);
    let rates = sorted(rates);
    let fps = sorted(fps);
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    let pct = |v: &[f64]| {
        json!({
            "count": v.len(),
            "p50": r1(percentile(v, 50.0)),
            "p95": r1(percentile(v, 95.0)),
            "p99": r1(percentile(v, 99.0)),
            "max": r1(v.last().copied().unwrap_or(0.0)),
        })
    };
    let loss_pct = if packets + lost > 0 {
        lost as f64 * 100.0 / (packets + lost) as f64
    } else {
        0.0
    };
    let missing = expected_frames.saturating_sub(frames);
    let frame_loss_pct = if expected_frames > 0 {
        missing as f64 * 100.0 / expected_frames as f64
    } else {
        0.0
    };
    let errors = board.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let n = in_window.max(1) as f64;
    let names = [
        "pending",
        "signaling",
        "connecting",
        "connected",
        "playing",
        "failed",
        "ended",
    ];
    let at_start: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(states_at_start)
        .filter(|(_, c)| *c > 0)
        .map(|(n, c)| ((*n).to_owned(), json!(c)))
        .collect();
    let mut summary = json!({
        "url": args.url,
        "path": args.path_spec,
        "viewers_requested": args.viewers,
        "viewers_connected": connected,
        "viewers_playing": playing,
        "viewers_failed": failed,
        "viewers_pending": args.viewers.saturating_sub(playing + failed),
        "viewers_in_window": in_window,
        "viewers_dropped": dropped,
        "viewers_stalled": stalled,
        "viewers_with_loss": lossy,
        "failures": failures,
        "errors": errors,
        "setup_s": r1(w.setup_s),
        "window_s": (w.secs * 100.0).round() / 100.0,
        "stream_bps": args.stream_bps,
        "bytes": bytes,
        "bitrate_total_bps": r1(bytes as f64 * 8.0 / w.secs),
        "bitrate_per_viewer_bps": {
            "median": r1(percentile(&rates, 50.0)),
            "p5": r1(percentile(&rates, 5.0)),
            "min": r1(rates.first().copied().unwrap_or(0.0)),
            "mean": r1(mean(&rates)),
        },
        "bitrate_ratio_to_stream": args.stream_bps.filter(|b| *b > 0.0).map(|b| (percentile(&rates, 50.0) / b * 1000.0).round() / 1000.0),
        "packets": packets,
        "packets_per_s": r1(packets as f64 / w.secs),
        "packets_per_s_per_viewer": r1(packets as f64 / w.secs / n),
        "audio_packets_per_s_per_viewer": r1(audio_packets as f64 / w.secs / n),
        "frames_per_s_per_viewer": { "median": r1(percentile(&fps, 50.0)), "p5": r1(percentile(&fps, 5.0)) },
        "frames": frames,
        "frames_expected": expected_frames,
        "frames_missing": missing,
        "frame_loss_pct": (frame_loss_pct * 10_000.0).round() / 10_000.0,
        "viewers_with_frame_gaps": frame_gaps,
        "states_at_window_start": at_start,
        "lost": lost,
        "loss_pct": (loss_pct * 10_000.0).round() / 10_000.0,
        "udp_rcvbuf_errors": w.rcvbuf_drops.map(|d| d.0),
        "udp_in_errors": w.rcvbuf_drops.map(|d| d.1),
        "ttff_ms": pct(&ttff),
        "first_frame_after_connect_ms": pct(&after_connect),
        "connect_ms": pct(&connect),
        "signal_ms": pct(&signal),
        "load_cpu_pct": w.load_cpu.map(r1),
    });
    // Added apart: one json! literal this large exceeds the macro recursion limit.
    if let Some(m) = summary.as_object_mut() {
        m.insert("paths".into(), json!(args.paths.len()));
        m.insert("paths_complete".into(), json!(paths.complete));
        m.insert("paths_incomplete".into(), json!(paths.incomplete));
        m.insert("path_coverage_min".into(), json!(paths.coverage_min));
        m.insert("worst_path".into(), paths.worst);
        m.insert("viewer_frames".into(), json!(viewer_frames));
    }
    summary
}

/// The summary for people.
fn human(s: &serde_json::Value) -> String {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let mbps = |v: &serde_json::Value| f(v) / 1e6;
    let b = &s["bitrate_per_viewer_bps"];
    let stream = match s["stream_bps"].as_f64() {
        Some(x) => format!(
            " vs stream {:.2} Mbit/s ({:.1} %)",
            x / 1e6,
            f(&s["bitrate_ratio_to_stream"]) * 100.0
        ),
        None => String::new(),
    };
    let t = |k: &str| {
        let p = &s[k];
        format!(
            "{:.0} / {:.0} / {:.0} / {:.0}",
            f(&p["p50"]),
            f(&p["p95"]),
            f(&p["p99"]),
            f(&p["max"])
        )
    };
    format!(
        "corecast-load whep: {req} viewers: {con} connected, {play} playing, {fail} failed {failures}\n\
         \x20 window {win:.1} s over {inw} viewers: {stalled} stalled, {dropped} dropped\n\
         \x20 bitrate/viewer median {med:.3} Mbit/s (p5 {p5:.3}, min {min:.3}){stream}\n\
         \x20 packets {pps:.1}/s per viewer ({apps:.1} audio); loss {loss:.4} % ({lost} of {pk}; {lossy} viewers with loss); kernel UDP receive-buffer drops {rcv}\n\
         \x20 video frames {fps:.1}/s per viewer (median); never sent {floss:.4} % ({missing} of {fexp}; {gaps} viewers with gaps)\n\
         \x20 time to first frame p50/p95/p99/max ms: {ttff}\n\
         \x20 ICE+DTLS after answer ms: {conn}; first frame after ICE+DTLS ms: {after}\n\
         \x20 WHEP POST ms: {sig}\n\
         \x20 load tool CPU {cpu:.0} % of one core\n{paths}",
        req = s["viewers_requested"],
        con = s["viewers_connected"],
        play = s["viewers_playing"],
        fail = s["viewers_failed"],
        failures = s["failures"],
        win = f(&s["window_s"]),
        inw = s["viewers_in_window"],
        stalled = s["viewers_stalled"],
        dropped = s["viewers_dropped"],
        med = mbps(&b["median"]),
        p5 = mbps(&b["p5"]),
        min = mbps(&b["min"]),
        pps = f(&s["packets_per_s_per_viewer"]),
        apps = f(&s["audio_packets_per_s_per_viewer"]),
        loss = f(&s["loss_pct"]),
        lost = s["lost"],
        pk = s["packets"],
        lossy = s["viewers_with_loss"],
        rcv = s["udp_rcvbuf_errors"],
        fps = f(&s["frames_per_s_per_viewer"]["median"]),
        floss = f(&s["frame_loss_pct"]),
        missing = s["frames_missing"],
        fexp = s["frames_expected"],
        gaps = s["viewers_with_frame_gaps"],
        ttff = t("ttff_ms"),
        conn = t("connect_ms"),
        sig = t("signal_ms"),
        after = t("first_frame_after_connect_ms"),
        cpu = f(&s["load_cpu_pct"]),
        paths = if s["paths"].as_u64().unwrap_or(1) > 1 {
            format!(
                "  paths {}: {} got every frame; lowest coverage {:.2} % ({})\n",
                s["paths"],
                s["paths_complete"],
                f(&s["path_coverage_min"]) * 100.0,
                s["worst_path"]["path"].as_str().unwrap_or("-"),
            )
        } else {
            String::new()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        let v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        parse_args(&v)
    }

    #[test]
    fn flags() {
        let a = args("--url http://127.0.0.1:8080/ --path /demo --viewers 7 --ramp 20/s --cpu 1")
            .unwrap();
        assert_eq!(a.url, "http://127.0.0.1:8080");
        assert_eq!(
            (a.path_spec.as_str(), a.paths.clone()),
            ("demo", vec!["demo".to_owned()])
        );
        assert_eq!((a.viewers, a.ramp, a.cpus.clone()), (7, 20.0, vec![1]));
        assert!(args("--url http://h:1").is_err());
        assert!(args("--url http://h:1 --path p --viewers 0").is_err());
        assert!(args("--url http://h:1 --path p --ramp 0").is_err());
        assert!(args("--url http://h:1 --path p --bogus 1").is_err());
        assert_eq!(args("--help").unwrap_err(), "");
    }

    #[test]
    fn many_paths() {
        let a = args("--url http://h:1 --paths cam{0..199} --viewers 200").unwrap();
        assert_eq!(a.paths.len(), 200);
        assert_eq!(
            (a.paths[0].as_str(), a.paths[199].as_str()),
            ("cam0", "cam199")
        );
        assert_eq!(a.path_spec, "cam{0..199}");
        let a = args("--url http://h:1 --paths a,/b/,x{1..2}y").unwrap();
        assert_eq!(a.paths, ["a", "b", "x1y", "x2y"]);
        let a = args("--url http://h:1 --path-template cam%d --viewers 3").unwrap();
        assert_eq!(a.paths, ["cam0", "cam1", "cam2"]);
        let a = args("--url http://h:1 --path-template cam%d --path-count 2 --viewers 9").unwrap();
        assert_eq!(a.paths, ["cam0", "cam1"]);
        let a = args("--url http://h:1 --path-template demo --viewers 9").unwrap();
        assert_eq!(a.paths, ["demo"]);
        for bad in [
            "--paths cam{3..1}",
            "--paths cam{0..x}",
            "--paths cam{0..1",
            "--paths cam{0..99999}",
            "--paths a,,b",
            "--path-template demo --path-count 2",
            "--path-template c%d --path-count 1000000000",
            "--path a --paths b",
            "--path a --path-count 2",
        ] {
            assert!(args(&format!("--url http://h:1 {bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_summary_finds_the_worst_path() {
        let paths: Vec<String> = ["a", "b", "c"].map(str::to_owned).to_vec();
        let ok = PathAcc {
            viewers: 1,
            in_window: 1,
            frames: 600,
            expected: 600,
            lost: 0,
            incomplete: false,
        };
        let lossy = PathAcc {
            frames: 590,
            lost: 12,
            incomplete: true,
            ..ok
        };
        let s = path_summary(&paths, &[ok, lossy, ok]);
        assert_eq!(
            (s.complete, s.incomplete.clone()),
            (2, vec!["b".to_owned()])
        );
        assert_eq!(s.worst["path"], "b");
        assert_eq!(s.worst["lost"], 12);
        assert!((s.coverage_min - 0.9833).abs() < 1e-9, "{}", s.coverage_min);
        let s = path_summary(&paths, &[ok, ok, ok]);
        assert_eq!((s.complete, s.coverage_min), (3, 1.0));
        assert!(s.worst.is_null());
        // A path nobody watched in the window has no coverage.
        let s = path_summary(
            &paths,
            &[
                ok,
                PathAcc {
                    in_window: 0,
                    incomplete: true,
                    ..ok
                },
                ok,
            ],
        );
        assert_eq!((s.complete, s.coverage_min), (2, 0.0));
    }

    #[test]
    fn summary_counts_loss_over_the_window() {
        let a = args("--url http://h:1 --path p --viewers 2 --stream-bps 1000").unwrap();
        let board = Board::new(2);
        let snap = |state, packets, lost| Snap {
            state,
            packets,
            audio_packets: packets / 4,
            bytes: packets * 100,
            lost,
            frames: packets / 10,
            expected_frames: packets / 10 + lost,
            last_rx_us: 9_000_000,
        };
        let start = [snap(state::PLAYING, 100, 5), snap(state::PLAYING, 100, 0)];
        let end = [snap(state::PLAYING, 1100, 5), snap(state::PLAYING, 1099, 1)];
        for v in &board.viewers {
            v.state.store(state::PLAYING, Relaxed);
            v.ttff_us.store(50_000, Relaxed);
        }
        let s = summarize(
            &a,
            &board,
            &start,
            &end,
            Window {
                secs: 10.0,
                end_us: 10_000_000,
                setup_s: 1.0,
                load_cpu: None,
                rcvbuf_drops: None,
            },
        );
        assert_eq!(s["viewers_in_window"], 2);
        // Frames per viewer over the window (null for a viewer not playing at its start).
        assert_eq!(s["viewer_frames"], json!([100, 99]));
        // One path: the second viewer's lost packet makes it incomplete.
        assert_eq!(
            (s["paths"].as_u64(), s["paths_complete"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(s["lost"], 1);
        assert_eq!(s["packets"], 1999);
        // A quarter of them audio: (250 + 249) over 10 s and 2 viewers, to 0.1.
        let audio = s["audio_packets_per_s_per_viewer"].as_f64().unwrap_or(0.0);
        assert!((audio - 24.95).abs() <= 0.051, "{audio}");
        assert_eq!(s["loss_pct"], 0.05);
        assert_eq!(s["viewers_with_loss"], 1);
        assert_eq!(s["ttff_ms"]["p95"], 50.0);
        assert_eq!(s["bitrate_per_viewer_bps"]["median"], 79920.0);
        assert!(human(&s).contains("loss 0.0500 %"));
    }
}
