//! `corecast-load mse`: N MSE viewers (`GET /mse/{path}` WebSocket upgrades) in one
//! process, for comparing what an MSE viewer costs the server with a WebRTC viewer
//! (`perf/mse_load.sh`).
//!
//! ```text
//! corecast-load mse --url http://127.0.0.1:8080 --path demo --viewers 200 --duration 20 --cpu 1
//! ```
//!
//! Each viewer is a task on one glommio executor: it upgrades, then reads and parses the
//! WebSocket frames (headers only; payloads are skipped), counting bytes and binary
//! messages (the init segment, then one fragment per frame). Viewers are opened at
//! `--ramp` per second; once all are open (or failed) and `--settle` seconds passed, the
//! tool prints `corecast-load mse: window start` on stderr, measures `--duration` seconds,
//! prints `corecast-load mse: window end`, then one line of JSON on stdout.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::args;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Usage of the `mse` mode.
pub const USAGE: &str = "\
corecast-load mse: N MSE viewers (WebSocket /mse/<path>) of a corecast stream; reports
the bytes and fragments each got over a window as one line of JSON.

usage: corecast-load mse --url http://HOST:PORT --path PATH [options]

  --url URL                 the server's HTTP address (http://HOST:PORT)
  --path PATH               the stream (required)
  --viewers N               viewers (default 100)
  --ramp R                  viewers opened per second (default 100)
  --settle S                wait after the last viewer opened, before measuring (default 3)
  --duration S              length of the measurement window, seconds (default 20)
  --cpu C                   pin the executor to CPU C
";

/// Bytes read at a time.
const READ_BUF: usize = 64 * 1024;
/// Time allowed for connect + upgrade.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Args {
    http: SocketAddr,
    path: String,
    viewers: usize,
    ramp: f64,
    settle: f64,
    duration: f64,
    cpu: Option<usize>,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        http: SocketAddr::from(([127, 0, 0, 1], 8080)),
        path: String::new(),
        viewers: 100,
        ramp: 100.0,
        settle: 3.0,
        duration: 20.0,
        cpu: None,
    };
    let mut url = None;
    for pair in args::pairs(argv) {
        let (flag, v) = pair?;
        match flag {
            "--url" => url = Some(args::http_addr(v)?),
            "--path" => a.path = v.trim_matches('/').to_owned(),
            "--viewers" => a.viewers = args::count(flag, v)?,
            "--ramp" => a.ramp = args::num(flag, v)?.max(0.1),
            "--settle" => a.settle = args::num(flag, v)?,
            "--duration" => a.duration = args::num(flag, v)?,
            "--cpu" => a.cpu = Some(args::count(flag, v)?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    a.http = url.ok_or("--url is required")?;
    if a.path.is_empty() {
        return Err("--path is required".into());
    }
    Ok(a)
}

/// What one viewer got.
#[derive(Debug, Default)]
struct Viewer {
    bytes: Cell<u64>,
    messages: Cell<u64>,
    open: Cell<bool>,
    failed: RefCell<Option<String>>,
}

/// The `mse` mode's entry: returns the exit code.
pub fn main(argv: &[String]) -> i32 {
    let args = match args::or_usage("mse", USAGE, parse_args(argv)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let placement = match args.cpu {
        Some(c) => Placement::Fixed(c),
        None => Placement::Unbound,
    };
    let run = LocalExecutorBuilder::new(placement)
        .name("load-mse")
        .io_memory(512 * 1024)
        .spawn(move || run(args));
    match run.map(|h| h.join()) {
        Ok(Ok(summary)) => {
            println!("{summary}");
            0
        }
        Ok(Err(e)) => {
            eprintln!("corecast-load mse: executor failed: {e:?}");
            1
        }
        Err(e) => {
            eprintln!("corecast-load mse: cannot start the executor: {e}");
            2
        }
    }
}

async fn run(args: Args) -> serde_json::Value {
    let viewers: Vec<Rc<Viewer>> = (0..args.viewers).map(|_| Rc::default()).collect();
    let gap = Duration::from_secs_f64(1.0 / args.ramp);
    let start = Instant::now();
    for v in &viewers {
        let (v, a) = (v.clone(), args.clone());
        glommio::spawn_local(async move {
            if let Err(e) = view(&a, &v).await {
                *v.failed.borrow_mut() = Some(e);
            }
            v.open.set(false);
        })
        .detach();
        glommio::timer::sleep(gap).await;
    }
    // Every viewer open or failed (bounded), then the settle time.
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while Instant::now() < deadline
        && viewers
            .iter()
            .any(|v| !v.open.get() && v.failed.borrow().is_none())
    {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    let ramped = start.elapsed().as_secs_f64();
    glommio::timer::sleep(Duration::from_secs_f64(args.settle)).await;
    let snap = |vs: &[Rc<Viewer>]| -> Vec<(u64, u64)> {
        vs.iter()
            .map(|v| (v.bytes.get(), v.messages.get()))
            .collect()
    };
    eprintln!("corecast-load mse: window start");
    let t0 = Instant::now();
    let before = snap(&viewers);
    glommio::timer::sleep(Duration::from_secs_f64(args.duration)).await;
    let after = snap(&viewers);
    let secs = t0.elapsed().as_secs_f64();
    eprintln!("corecast-load mse: window end");
    let mut mbit: Vec<f64> = Vec::new();
    let mut fps: Vec<f64> = Vec::new();
    for (b, a) in before.iter().zip(&after) {
        mbit.push((a.0 - b.0) as f64 * 8.0 / secs / 1e6);
        fps.push((a.1 - b.1) as f64 / secs);
    }
    let open = viewers.iter().filter(|v| v.open.get()).count();
    let failed: Vec<String> = viewers
        .iter()
        .filter_map(|v| v.failed.borrow().clone())
        .take(5)
        .collect();
    json!({
        "viewers": args.viewers,
        "open": open,
        "failed": viewers.iter().filter(|v| v.failed.borrow().is_some()).count(),
        "first_errors": failed,
        "ramp_s": ramped,
        "window_s": secs,
        "mbit_per_viewer": summary(&mut mbit),
        "messages_per_viewer_per_s": summary(&mut fps),
    })
}

/// Median, min and max of `xs`.
fn summary(xs: &mut [f64]) -> serde_json::Value {
    xs.sort_by(f64::total_cmp);
    let at = |q: f64| {
        xs.get(((xs.len() as f64 - 1.0) * q).round() as usize)
            .copied()
    };
    json!({ "median": at(0.5), "min": at(0.0), "max": at(1.0) })
}

/// One viewer: upgrade, then count frames until the server closes.
async fn view(args: &Args, v: &Viewer) -> Result<(), String> {
    let mut s = futures_lite::future::or(
        async {
            TcpStream::connect(args.http)
                .await
                .map_err(|e| e.to_string())
        },
        async {
            glommio::timer::sleep(SETUP_TIMEOUT).await;
            Err("connect timed out".to_string())
        },
    )
    .await?;
    let req = format!(
        "GET /mse/{} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        args.path, args.http
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; READ_BUF];
    let mut head = Vec::new();
    // The 101 head; what follows it is the first frames.
    let rest = loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed during the upgrade".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 101") {
                let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                return Err(format!(
                    "upgrade refused: {}",
                    String::from_utf8_lossy(line)
                ));
            }
            break head.split_off(end + 4);
        }
        if head.len() > 16 * 1024 {
            return Err("no end of the upgrade answer".into());
        }
    };
    v.open.set(true);
    let mut frames = Frames::default();
    frames.feed(&rest, v);
    loop {
        let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed by the server".into());
        }
        frames.feed(&buf[..n], v);
    }
}

/// An incremental reader of server-to-client WebSocket frames (unmasked): counts the
/// binary ones, skips every payload.
#[derive(Debug, Default)]
struct Frames {
    /// Header bytes gathered so far.
    head: Vec<u8>,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
}

impl Frames {
    fn feed(&mut self, mut data: &[u8], v: &Viewer) {
        v.bytes.set(v.bytes.get() + data.len() as u64);
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64) as usize;
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            self.head.push(data[0]);
            data = &data[1..];
            if let Some((opcode, len)) = header(&self.head) {
                if opcode == 0x2 {
                    v.messages.set(v.messages.get() + 1);
                }
                self.skip = len;
                self.head.clear();
            }
        }
    }
}

/// The opcode and payload length of a complete frame header, if `h` is one.
fn header(h: &[u8]) -> Option<(u8, u64)> {
    let (&b0, &b1) = (h.first()?, h.get(1)?);
    let opcode = b0 & 0x0f;
    let (len, need) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(h.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(h.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    (h.len() == need).then_some((opcode, len))
}
