//! `corecast-load`: opens N light RTMP players (or, with `whep`, N WHEP viewers) against
//! a server and reports what they got.
//!
//! ```text
//! corecast-load --url rtmp://127.0.0.1:1935/live/load --players 500 --duration 20 \
//!     --ramp-per-sec 200 --cpu 1
//! corecast-load whep --url http://127.0.0.1:8080 --path demo --viewers 500 --ramp 50 \
//!     --duration 20 --cpu 1
//! ```
//!
//! The WebRTC mode is in [`whep`], the simulated RTSP cameras (`corecast-load camera`) in
//! [`camera`], the WHIP publishers (`corecast-load whip`) in [`whip`], the MSE viewers
//! (`corecast-load mse`) in [`mse`]; the rest of this file is the RTMP mode
//! (`corecast-load rtmp ...` or no mode word).
//!
//! Players are opened at a bounded rate on one glommio executor per `--threads`, each as a
//! task. When every player is playing or has failed (or the setup deadline passed), the
//! tool waits `--settle` seconds (the join bursts of GOP caches pass), prints
//! `corecast-load: window start` on stderr, measures for `--duration` seconds, prints
//! `corecast-load: window end`, then one line of JSON on stdout and exits. Scripts sample
//! the server's `/proc` counters at those two markers.
// The load tool measures real time (connect latency, bitrate over a window): it reads the
// clock, which the workspace's clippy.toml reserves for drivers.
#![allow(clippy::disallowed_methods)]

mod args;
mod camera;
mod camera_reel;
mod camera_rtsp;
mod client;
mod mse;
mod stats;
mod whep;
mod whep_board;
mod whep_io;
mod whip;

use client::{ClientError, PlayClient};
use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::json;
use stats::{Board, PlayerStat, Reason, Snap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

const USAGE: &str = "\
corecast-load: opens N light RTMP players and reports delivered bitrate, time to first
video frame and stalls as one line of JSON. (`corecast-load whep --help`: WebRTC viewers;
`corecast-load camera --help`: simulated RTSP cameras; `corecast-load whip --help`: WHIP
publishers; `corecast-load mse --help`: MSE viewers.)

usage: corecast-load [rtmp] --url rtmp://HOST[:PORT]/APP/KEY [options]

  --url URL                 stream to play (required)
  --players N               players to open (default 100)
  --duration S              length of the measurement window, seconds (default 20)
  --ramp-per-sec R          new connections per second (default 200)
  --threads T               executors (default 1)
  --cpu LIST                pin executors to these CPUs, e.g. 1 or 1,2 (default: unpinned)
  --settle S                wait after the last player started, before measuring (default 2)
  --connect-timeout S       TCP connect time-out (default 5)
  --setup-timeout S         handshake + connect + createStream + play time-out (default 10)
  --stall-secs S            a player with no bytes for this long at the end is stalled (default 2)
";

/// Bytes read from the socket at a time.
const READ_BUF: usize = 16 * 1024;
/// How long a write may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Args {
    url: String,
    players: usize,
    duration: f64,
    ramp_per_sec: f64,
    threads: usize,
    cpus: Vec<usize>,
    settle: f64,
    connect_timeout: f64,
    setup_timeout: f64,
    stall_secs: f64,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        players: 100,
        duration: 20.0,
        ramp_per_sec: 200.0,
        threads: 1,
        cpus: Vec::new(),
        settle: 2.0,
        connect_timeout: 5.0,
        setup_timeout: 10.0,
        stall_secs: 2.0,
    };
    for pair in crate::args::pairs(argv) {
        let (flag, value) = pair?;
        let num = |v: &str| crate::args::num(flag, v);
        let count = |v: &str| crate::args::count(flag, v);
        match flag {
            "--url" => a.url = value.to_owned(),
            "--players" => a.players = count(value)?,
            "--duration" => a.duration = num(value)?,
            "--ramp-per-sec" => a.ramp_per_sec = num(value)?,
            "--threads" => a.threads = count(value)?,
            "--cpu" => {
                a.cpus = value
                    .split(',')
                    .map(|c| count(c.trim()))
                    .collect::<Result<_, _>>()?;
            }
            "--settle" => a.settle = num(value)?,
            "--connect-timeout" => a.connect_timeout = num(value)?,
            "--setup-timeout" => a.setup_timeout = num(value)?,
            "--stall-secs" => a.stall_secs = num(value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.url.is_empty() {
        return Err("--url is required".into());
    }
    if a.players == 0 || a.players > 100_000 {
        return Err("--players must be 1..=100000".into());
    }
    if !(1..=64).contains(&a.threads) {
        return Err("--threads must be 1..=64".into());
    }
    if a.ramp_per_sec < 1.0 {
        return Err("--ramp-per-sec must be at least 1".into());
    }
    if a.duration < 1.0 || a.duration > 3600.0 {
        return Err("--duration must be 1..=3600 seconds".into());
    }
    if a.connect_timeout <= 0.0 || a.setup_timeout <= 0.0 || a.settle > 600.0 {
        return Err("time-outs must be positive and --settle at most 600".into());
    }
    Ok(a)
}

/// `rtmp://HOST[:PORT]/APP/KEY` split into what the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host_port: String,
    app: String,
    key: String,
    tc_url: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| format!("{url}: only rtmp:// URLs are supported"))?;
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("{url}: expected rtmp://HOST[:PORT]/APP/KEY"))?;
    let (app, key) = path
        .split_once('/')
        .ok_or_else(|| format!("{url}: expected rtmp://HOST[:PORT]/APP/KEY"))?;
    if authority.is_empty() || app.is_empty() || key.is_empty() {
        return Err(format!("{url}: expected rtmp://HOST[:PORT]/APP/KEY"));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
    });
    let host_port = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:1935")
    };
    Ok(Target {
        tc_url: format!("rtmp://{host_port}/{app}"),
        host_port,
        app: app.to_owned(),
        key: key.to_owned(),
    })
}

/// What every player task of one executor shares.
struct Ctx {
    board: Arc<Board>,
    addr: SocketAddr,
    target: Target,
    t0: Instant,
    connect_timeout: Duration,
    setup_timeout: Duration,
}

impl Ctx {
    fn micros(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// Runs `f`, or gives up after `d`.
async fn within<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        glommio::timer::sleep(d).await;
        None
    })
    .await
}

fn protocol_reason(e: &ClientError) -> Reason {
    match e {
        ClientError::Refused(_) => Reason::Refused,
        _ => Reason::Protocol,
    }
}

/// One player: connect, set up, then read until the connection ends or the run stops.
async fn player(ctx: Rc<Ctx>, idx: usize) {
    let st = &ctx.board.players[idx];
    st.state.store(stats::STATE_SETUP, Relaxed);
    let (reason, text) = match play(&ctx, st, idx).await {
        Ok(()) => (Reason::ServerClosed, None),
        Err((reason, text)) => (reason, Some(text)),
    };
    st.finish(reason);
    if let Some(text) = text {
        ctx.board
            .note_error(format!("player {idx}: {}: {text}", reason.name()));
    }
}

/// Feeds bytes to the client and updates the player's counters.
fn absorb(
    ctx: &Ctx,
    st: &PlayerStat,
    client: &mut PlayClient,
    data: &[u8],
    started_us: u64,
) -> Result<(), ClientError> {
    let now = ctx.micros();
    st.bytes.fetch_add(data.len() as u64, Relaxed);
    st.last_rx_us.store(now, Relaxed);
    let counts = client.feed(data)?;
    if counts.audio > 0 {
        st.audio.fetch_add(counts.audio, Relaxed);
    }
    if counts.video > 0 && st.video.fetch_add(counts.video, Relaxed) == 0 {
        st.ttff_us.store(now.saturating_sub(started_us), Relaxed);
    }
    st.acks.store(client.acks_sent(), Relaxed);
    if client.is_playing() && st.state.load(Relaxed) == stats::STATE_SETUP {
        st.state.store(stats::STATE_PLAYING, Relaxed);
    }
    Ok(())
}

async fn flush(stream: &mut TcpStream, client: &mut PlayClient) -> std::io::Result<()> {
    while let Some(out) = client.take_output() {
        stream.write_all(&out).await?;
    }
    Ok(())
}

async fn play(ctx: &Ctx, st: &PlayerStat, idx: usize) -> Result<(), (Reason, String)> {
    let started_us = ctx.micros();
    let mut stream = TcpStream::connect_timeout(ctx.addr, ctx.connect_timeout)
        .await
        .map_err(|e| {
            let reason = match &e {
                glommio::GlommioError::IoError(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                    Reason::ConnectTimeout
                }
                _ => Reason::ConnectError,
            };
            (reason, e.to_string())
        })?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let seed = (idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ started_us;
    let t = &ctx.target;
    let mut client = PlayClient::new(&t.app, &t.tc_url, &t.key, seed);
    let mut buf = vec![0u8; READ_BUF];

    // Handshake, connect, createStream, play: bounded as a whole.
    let setup = within(ctx.setup_timeout, async {
        loop {
            flush(&mut stream, &mut client)
                .await
                .map_err(|e| (Reason::Io, format!("write: {e}")))?;
            if client.is_playing() {
                return Ok(());
            }
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| (Reason::Io, format!("read: {e}")))?;
            if n == 0 {
                return Err((Reason::ServerClosed, "closed during setup".to_owned()));
            }
            absorb(ctx, st, &mut client, &buf[..n], started_us)
                .map_err(|e| (protocol_reason(&e), e.to_string()))?;
        }
    })
    .await;
    match setup {
        Some(r) => r?,
        None => {
            return Err((
                Reason::SetupTimeout,
                format!("not playing after {:?}", ctx.setup_timeout),
            ));
        }
    }

    // Playing: count until the server closes (the run ends by dropping this task).
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| (Reason::Io, format!("read: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        absorb(ctx, st, &mut client, &buf[..n], started_us)
            .map_err(|e| (protocol_reason(&e), e.to_string()))?;
        flush(&mut stream, &mut client)
            .await
            .map_err(|e| (Reason::Io, format!("write: {e}")))?;
    }
}

/// One executor: starts its share of the players on schedule, then idles until told to stop.
async fn run_executor(
    thread: usize,
    args: Arc<Args>,
    ctx_parts: (Arc<Board>, SocketAddr, Target, Instant),
    stop: Arc<AtomicBool>,
) {
    let (board, addr, target, t0) = ctx_parts;
    let ctx = Rc::new(Ctx {
        board,
        addr,
        target,
        t0,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
        setup_timeout: Duration::from_secs_f64(args.setup_timeout),
    });
    for idx in (thread..args.players).step_by(args.threads) {
        let at = t0 + Duration::from_secs_f64(idx as f64 / args.ramp_per_sec);
        let wait = at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            glommio::timer::sleep(wait).await;
        }
        if stop.load(Relaxed) {
            return;
        }
        glommio::spawn_local(player(ctx.clone(), idx)).detach();
    }
    while !stop.load(Relaxed) {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("camera") => {
            let code = camera::main(&argv[1..]);
            // Executor threads still hold the sessions' sockets; exiting closes them all.
            std::process::exit(code);
        }
        Some("whep") => {
            let code = whep::main(&argv[1..]);
            // Loop threads still hold the viewers' sockets; exiting closes them all.
            std::process::exit(code);
        }
        Some("whip") => std::process::exit(whip::main(&argv[1..])),
        Some("mse") => std::process::exit(mse::main(&argv[1..])),
        Some("rtmp") => {
            argv.remove(0);
        }
        _ => {}
    }
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            print!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("corecast-load: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let target = match parse_url(&args.url) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("corecast-load: {e}");
            std::process::exit(2);
        }
    };
    let addr = match target.host_port.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => {
            eprintln!("corecast-load: cannot resolve {}", target.host_port);
            std::process::exit(2);
        }
    };
    match run(args, target, addr) {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("corecast-load: {e}");
            std::process::exit(1);
        }
    }
    // Executor threads still hold the players' sockets; exiting closes them all at once.
    std::process::exit(0);
}

fn run(args: Args, target: Target, addr: SocketAddr) -> Result<serde_json::Value, String> {
    let args = Arc::new(args);
    let board = Arc::new(Board::new(args.players));
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for thread in 0..args.threads {
        let placement = match args.cpus.get(thread % args.cpus.len().max(1)) {
            Some(&cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let parts = (board.clone(), addr, target.clone(), t0);
        let (a, s) = (args.clone(), stop.clone());
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("load-{thread}"))
            // Network I/O only: the io_uring buffer for file I/O can stay small.
            .io_memory(512 * 1024)
            .spawn(move || run_executor(thread, a, parts, s))
            .map_err(|e| format!("cannot start executor {thread}: {e}"))?;
        handles.push(handle);
    }

    // Wait until every player plays or has failed, or until the setup deadline.
    let ramp = Duration::from_secs_f64(args.players as f64 / args.ramp_per_sec);
    let deadline = t0
        + ramp
        + Duration::from_secs_f64(args.connect_timeout + args.setup_timeout)
        + Duration::from_secs(1);
    let all_resolved = || board.players.iter().all(PlayerStat::resolved);
    while Instant::now() < deadline && !(t0.elapsed() >= ramp && all_resolved()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let setup_s = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs_f64(args.settle));

    let clk = stats::clock_ticks_per_sec();
    let start: Vec<Snap> = board.players.iter().map(Snap::of).collect();
    let self_cpu0 = stats::cpu_ticks("self");
    let w0 = Instant::now();
    eprintln!("corecast-load: window start");
    std::thread::sleep(Duration::from_secs_f64(args.duration));
    let end: Vec<Snap> = board.players.iter().map(Snap::of).collect();
    let self_cpu1 = stats::cpu_ticks("self");
    let window = w0.elapsed().as_secs_f64();
    let end_us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
    eprintln!("corecast-load: window end");
    stop.store(true, Relaxed);

    Ok(summarize(
        &args,
        &board,
        &start,
        &end,
        window,
        end_us,
        setup_s,
        match (self_cpu0, self_cpu1) {
            (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / clk / window * 100.0),
            _ => None,
        },
    ))
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    args: &Args,
    board: &Board,
    start: &[Snap],
    end: &[Snap],
    window: f64,
    end_us: u64,
    setup_s: f64,
    load_cpu_pct: Option<f64>,
) -> serde_json::Value {
    let stall_us = (args.stall_secs * 1e6) as u64;
    let mut connected = 0usize;
    let mut failed = 0usize;
    let mut in_window = 0usize;
    let mut dropped = 0usize;
    let mut stalled = 0usize;
    let mut rates = Vec::new();
    let (mut bytes, mut audio, mut video) = (0u64, 0u64, 0u64);
    let mut ttff = Vec::new();
    let mut failures = serde_json::Map::new();
    for (i, p) in board.players.iter().enumerate() {
        let (s, e) = (start[i], end[i]);
        match e.state {
            stats::STATE_PLAYING | stats::STATE_ENDED => connected += 1,
            stats::STATE_FAILED => failed += 1,
            _ => {}
        }
        if matches!(e.state, stats::STATE_FAILED | stats::STATE_ENDED) {
            let name = p.reason().name();
            let n = failures.get(name).and_then(|v| v.as_u64()).unwrap_or(0);
            failures.insert(name.to_owned(), json!(n + 1));
        }
        let t = p.ttff_us.load(Relaxed);
        if t != u64::MAX {
            ttff.push(t as f64 / 1000.0);
        }
        if s.state != stats::STATE_PLAYING {
            continue;
        }
        in_window += 1;
        let b = e.bytes.saturating_sub(s.bytes);
        bytes += b;
        audio += e.audio.saturating_sub(s.audio);
        video += e.video.saturating_sub(s.video);
        rates.push(b as f64 * 8.0 / window);
        if e.state != stats::STATE_PLAYING {
            dropped += 1;
        }
        if e.state != stats::STATE_PLAYING || end_us.saturating_sub(e.last_rx_us) > stall_us {
            stalled += 1;
        }
    }
    let rates = stats::sorted(rates);
    let ttff = stats::sorted(ttff);
    let mean = if rates.is_empty() {
        0.0
    } else {
        rates.iter().sum::<f64>() / rates.len() as f64
    };
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let errors = board.errors.lock().map(|e| e.clone()).unwrap_or_default();
    json!({
        "url": args.url,
        "players_requested": args.players,
        "players_connected": connected,
        "players_failed": failed,
        "players_pending": args.players - connected - failed,
        "players_in_window": in_window,
        "players_dropped": dropped,
        "players_stalled": stalled,
        "failures": failures,
        "errors": errors,
        "setup_s": round(setup_s),
        "window_s": round(window * 100.0) / 100.0,
        "bytes": bytes,
        "bitrate_total_bps": round(bytes as f64 * 8.0 / window),
        "bitrate_per_player_bps": {
            "median": round(stats::percentile(&rates, 50.0)),
            "p5": round(stats::percentile(&rates, 5.0)),
            "min": round(rates.first().copied().unwrap_or(0.0)),
            "mean": round(mean),
        },
        "messages_per_s": round((audio + video) as f64 / window),
        "video_messages_per_s": round(video as f64 / window),
        "audio_messages_per_s": round(audio as f64 / window),
        "ttff_ms": {
            "count": ttff.len(),
            "p50": round(stats::percentile(&ttff, 50.0)),
            "p95": round(stats::percentile(&ttff, 95.0)),
            "max": round(ttff.last().copied().unwrap_or(0.0)),
        },
        "acks_sent": board.players.iter().map(|p| p.acks.load(Relaxed)).sum::<u64>(),
        "load_cpu_pct": load_cpu_pct.map(round),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        let v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        parse_args(&v)
    }

    #[test]
    fn urls() {
        let t = parse_url("rtmp://127.0.0.1:19350/live/load").unwrap();
        assert_eq!(t.host_port, "127.0.0.1:19350");
        assert_eq!((t.app.as_str(), t.key.as_str()), ("live", "load"));
        assert_eq!(t.tc_url, "rtmp://127.0.0.1:19350/live");
        let t = parse_url("rtmp://localhost/live/a/b").unwrap();
        assert_eq!(t.host_port, "localhost:1935");
        assert_eq!(t.key, "a/b");
        assert!(parse_url("http://x/live/k").is_err());
        assert!(parse_url("rtmp://x/live").is_err());
        assert!(parse_url("rtmp:///live/k").is_err());
    }

    #[test]
    fn flags() {
        let a = args("--url rtmp://h/a/k --players 7 --cpu 1,3 --duration 5").unwrap();
        assert_eq!(
            (a.players, a.cpus.clone(), a.duration),
            (7, vec![1, 3], 5.0)
        );
        assert_eq!(a.ramp_per_sec, 200.0);
        assert!(args("--players 7").is_err());
        assert!(args("--url rtmp://h/a/k --players").is_err());
        assert!(args("--url rtmp://h/a/k --players 0").is_err());
        assert!(args("--url rtmp://h/a/k --bogus 1").is_err());
        assert!(args("--url rtmp://h/a/k --duration -1").is_err());
        assert_eq!(args("--help").unwrap_err(), "");
    }
}
