//! Test harness: starts the real corecast binary on loopback with ephemeral ports and
//! talks to it with plain sockets.
#![allow(clippy::disallowed_methods)] // Tests and benchmarks drive real time.
#![allow(dead_code)]

pub mod camera;
pub mod rtmp;
pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running server, stopped (SIGTERM) when dropped.
pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub log: mpsc::Receiver<String>,
    pub dir: PathBuf,
    /// The log lines before the server said it listens.
    pub startup: Vec<String>,
    /// Lines read by `stop` after the process exited, not yet drained.
    tail: std::cell::RefCell<Vec<String>>,
}

/// A config for tests: loopback, ephemeral ports, 2 shards, the demo stream.
pub fn test_config(extra: &str) -> String {
    test_config_http("", extra)
}

/// Like [`test_config`], with extra lines in the `[http]` section.
pub fn test_config_http(http: &str, extra: &str) -> String {
    test_config_sections(http, "", extra)
}

/// Like [`test_config`], with extra lines in the `[http]` and `[rtmp]` sections.
pub fn test_config_sections(http: &str, rtmp: &str, extra: &str) -> String {
    format!(
        r#"
[runtime]
shards = 2
io_memory = "256KiB"
log = "info"
[http]
listen = "127.0.0.1:0"
{http}
[rtmp]
listen = "127.0.0.1:0"
{rtmp}
[webrtc]
udp_port = 0
bind = "127.0.0.1"
# WebRTC test traffic stays on loopback: the only candidate is 127.0.0.1.
advertised = ["127.0.0.1"]
{extra}
"#
    )
}

pub fn demo_stream(path: &str, shard: usize) -> String {
    format!(
        "[[streams]]\npath = \"{path}\"\nsource = \"file:{}\"\nshard = {shard}\n",
        root().join("configs/media/demo.flv").display()
    )
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "corecast-test-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() ^ (rand_u64() & 0xffff_ffff) as u128
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    h.finish()
}

/// Writes `config` to a temp file and returns the path.
pub fn write_config(tag: &str, config: &str) -> PathBuf {
    let dir = temp_dir(tag);
    let p = dir.join("corecast.toml");
    std::fs::write(&p, config).expect("write config");
    p
}

/// Spawns `cmd`, running `pre` in the child before it executes (e.g. to set a resource
/// limit).
fn spawn_with(cmd: &mut Command, pre: Option<fn()>) -> Child {
    if let Some(f) = pre {
        use std::os::unix::process::CommandExt;
        // SAFETY: the hooks tests pass only call setrlimit, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                f();
                Ok(())
            });
        }
    }
    cmd.spawn().expect("spawn corecast")
}

/// Runs the binary with `args` to completion (bounded), returning (exit code, stderr).
pub fn run_to_exit(args: &[&str], pre: Option<fn()>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecast"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn_with(&mut cmd, pre);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("corecast {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Server {
    /// Starts corecast with `config` and waits until it listens.
    pub fn start(tag: &str, config: &str) -> Server {
        Server::start_with(tag, config, None)
    }

    /// Like [`Server::start`], running `pre` in the child before it executes corecast
    /// (e.g. to set a resource limit).
    pub fn start_with(tag: &str, config: &str, pre: Option<fn()>) -> Server {
        let path = write_config(tag, config);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corecast"));
        cmd.arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn_with(&mut cmd, pre);
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("CORECAST_TEST_LOG").is_some() {
                    eprintln!("[server] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening http=").nth(1) {
                        let mut parts = rest.split_whitespace();
                        let http = parts
                            .next()
                            .and_then(|a| a.parse().ok())
                            .expect("http addr");
                        let rtmp = parts
                            .next()
                            .and_then(|a| a.strip_prefix("rtmp="))
                            .and_then(|a| a.parse().ok())
                            .expect("rtmp addr");
                        return Server {
                            child,
                            http,
                            rtmp,
                            log: rx,
                            dir,
                            startup: seen,
                            tail: Default::default(),
                        };
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("corecast did not start; log:\n{}", seen.join("\n"));
                }
            }
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit code.
    pub fn stop(&mut self) -> i32 {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                // The reader thread may still hold the last lines: take them until it
                // reaches end of file (bounded).
                let end = Instant::now() + Duration::from_secs(2);
                let mut tail = self.tail.borrow_mut();
                while let Ok(line) = self
                    .log
                    .recv_timeout(end.saturating_duration_since(Instant::now()))
                {
                    tail.push(line);
                }
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("corecast did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Log lines until one contains `needle` (bounded by `limit`; the line may reach the
    /// test after the effect it logs, e.g. a connection closed before its log line).
    pub fn log_until(&self, needle: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        let mut lines = self.drain_log();
        while !lines.iter().any(|l| l.contains(needle)) && Instant::now() < end {
            let left = end.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        lines.join("\n")
    }

    /// Log lines seen so far (drains the channel).
    pub fn drain_log(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.log.try_iter().collect();
        let mut tail = self.tail.borrow_mut();
        if !tail.is_empty() {
            tail.append(&mut lines);
            return std::mem::take(&mut *tail);
        }
        lines
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        request(
            self.http,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        )
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.body_text());
        serde_json::from_slice(&r.body).expect("json body")
    }

    /// The `/api/v1/streams` entry of `path` (null if not listed).
    pub fn stream(&self, path: &str) -> serde_json::Value {
        let v = self.get_json("/api/v1/streams");
        v["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|st| st["path"] == path)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits (bounded by `timeout`) until the source state of `path` satisfies `pred`;
    /// returns the stream's entry.
    pub fn wait_state(
        &self,
        path: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> serde_json::Value {
        let end = Instant::now() + timeout;
        loop {
            let st = self.stream(path);
            if let Some(state) = st["source"]["state"].as_str()
                && pred(state)
            {
                return st;
            }
            assert!(
                Instant::now() < end,
                "stream {path} never reached the expected state within {timeout:?}: {st}\nlog:\n{}",
                self.drain_log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A `/metrics` counter or gauge, summed over shards.
    pub fn metric(&self, name: &str) -> u64 {
        let body = self.get("/metrics").body_text();
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Polls `/api/v1/streams` until `pred` holds for the stream at `path` (bounded).
    pub fn wait_stream(
        &self,
        path: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.get_json("/api/v1/streams");
            if let Some(s) = v["streams"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["path"] == path))
                && pred(s)
            {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "stream {path} never matched: {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A response as the project's HTTP client reads it (status, headers, de-chunked body).
pub use corecast_client::http::Response as HttpResponse;

/// Connects with a read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Sends raw bytes and reads one response.
pub fn request(addr: SocketAddr, raw: &str) -> HttpResponse {
    let mut s = connect(addr);
    s.write_all(raw.as_bytes()).expect("write");
    let mut r = BufReader::new(s);
    read_response(&mut r).expect("response")
}

/// Reads one HTTP/1.1 response from a buffered stream with the project's HTTP client parser
/// (Content-Length or chunked; a pipelined response after it stays in the reader).
pub fn read_response(r: &mut impl BufRead) -> Option<HttpResponse> {
    use corecast_client::http::{Parsed, parse_response};
    let mut buf = Vec::new();
    loop {
        let avail = r.fill_buf().ok()?;
        let (eof, took) = (avail.is_empty(), avail.len());
        let before = buf.len();
        buf.extend_from_slice(avail);
        match parse_response(&buf, eof, false).ok()? {
            Parsed::Complete(resp, n) => {
                // Leave what follows (a pipelined response) in the reader.
                r.consume(n.saturating_sub(before));
                return Some(resp);
            }
            Parsed::NeedMore if eof => return None,
            Parsed::NeedMore => r.consume(took),
        }
    }
}

/// Runs `ffprobe -v error -rw_timeout 10000000 -of json ARGS` (bounded by its read
/// time-out) and returns its JSON; fails the test if ffprobe fails.
pub fn ffprobe_json(args: &[&str]) -> serde_json::Value {
    require_tool("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "10000000", "-of", "json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

/// Fails (never skips) when a tool the test needs is missing.
pub fn require_tool(name: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{name} is required for this test but is not installed (tests/run.sh installs it)"
    );
}

/// Reads (and discards) until the server closes the connection or `within` passes;
/// returns how long it took, or None if the connection is still open.
pub fn closed_within(c: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    while start.elapsed() < within {
        match c.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// A process's peak resident memory so far (VmHWM), KiB: a transient allocation that was
/// freed again still shows.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM")
}

/// Encodes `secs` of a 30 fps `testsrc2` picture of `size` with a 440 Hz tone into the FLV
/// file `out`: H.264 High (libx264 veryfast, with the `x264` options: B-frames, GOP,
/// bitrate) and AAC.
pub fn x264_aac_clip(out: &Path, size: &str, secs: u32, x264: &[&str]) -> PathBuf {
    require_tool("ffmpeg");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .arg("-i")
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .args(["-profile:v", "high", "-pix_fmt", "yuv420p"])
        .args(x264)
        .args(["-c:a", "aac", "-b:a", "96k", "-f", "flv"])
        .arg(out)
        .stdin(Stdio::null())
        .status()
        .expect("ffmpeg");
    assert!(
        status.success(),
        "ffmpeg could not encode {}",
        out.display()
    );
    out.to_path_buf()
}

/// `ffmpeg -re -stream_loop -1 -i FILE [OPTS] -c copy -f flv URL`: an encoder that
/// publishes `file` over and over (quiet, no stdin).
pub fn ffmpeg_publish_loop(file: &Path, opts: &[&str], url: &str) -> Child {
    require_tool("ffmpeg");
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(file)
        .args(opts)
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg publisher")
}

/// An ffmpeg RTMP player of `url` that keeps playing, writing nowhere (`-c copy -f null`),
/// ending on its own when the server ends the stream or after 10 s without data.
pub fn ffmpeg_player(url: &str) -> Child {
    require_tool("ffmpeg");
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
        ])
        .args(["-i", url, "-c", "copy", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg player")
}
