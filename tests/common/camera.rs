//! An RTSP camera stand-in for the integration tests: drives
//! `tests/camera/rtsp_camera.py` (GStreamer's RTSP server) on loopback.
//!
//! ```ignore
//! let cam = Camera::start(&CameraOpts::default()); // H.264 + AAC at rtsp://127.0.0.1:<port>/cam
//! // ... point corecast at cam.url ...
//! cam.wait_connections(Duration::from_secs(5), |opened, closed| opened == 1 && closed == 0);
//! ```
//!
//! The script needs Debian's `/usr/bin/python3` with python3-gi, gir1.2-gst-rtsp-server-1.0
//! and the GStreamer plugins; tests/run.sh installs them. A missing piece fails the test
//! with an install hint: it is never skipped.
#![allow(clippy::disallowed_methods)] // Tests drive real time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The interpreter that has Debian's python3-gi (a pyenv `python3` on PATH does not).
pub const PYTHON: &str = "/usr/bin/python3";

const INSTALL_HINT: &str = "install python3-gi gir1.2-gst-rtsp-server-1.0 \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-ugly gstreamer1.0-libav (tests/run.sh does)";

/// How long the script may take to print READY.
// Generous: the first GStreamer start on a loaded machine may rebuild its plugin registry.
const START_TIMEOUT: Duration = Duration::from_secs(45);
/// How long [`Camera::restart`] keeps retrying while the port is still busy.
const RESTART_RETRY: Duration = Duration::from_secs(5);

// The script's exit codes (see tests/camera/rtsp_camera.py).
const EXIT_NO_GI: i32 = 3;
const EXIT_ADDR_IN_USE: i32 = 4;

/// What the camera serves. `Default`: H.264 640x360 at 25 fps, 1000 kbit/s, AAC, no
/// authentication, TCP and UDP, one mount `/cam`, a free port.
#[derive(Clone, Debug)]
pub struct CameraOpts {
    /// `h264` or `h265`.
    pub video: &'static str,
    /// `none`, `aac`, `pcma`, `pcmu` or `opus`.
    pub audio: &'static str,
    /// `(method, user, password)`, method `basic` or `digest`; anonymous requests get 401.
    pub auth: Option<(&'static str, String, String)>,
    /// RTP transports offered: `tcp` (interleaved), `udp` or `both`.
    pub protocols: &'static str,
    pub size: (u32, u32),
    pub fps: u32,
    pub bitrate_kbit: u32,
    /// Mount paths, each an independent media (the first one is [`Camera::url`]).
    /// [`CameraOpts::numbered_mounts`] gives `/cam0 .. /cam<n-1>`.
    pub mounts: Vec<String>,
    /// videotestsrc pattern: `ball` (cheap to encode) or e.g. `smpte`.
    pub pattern: &'static str,
    /// 0 picks a free one.
    pub port: u16,
}

impl Default for CameraOpts {
    fn default() -> Self {
        CameraOpts {
            video: "h264",
            audio: "aac",
            auth: None,
            protocols: "both",
            size: (640, 360),
            fps: 25,
            bitrate_kbit: 1000,
            mounts: vec!["/cam".to_string()],
            pattern: "ball",
            port: 0,
        }
    }
}

impl CameraOpts {
    /// `/cam0 .. /cam<n-1>`.
    pub fn numbered_mounts(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("/cam{i}")).collect()
    }

    fn args(&self, port: u16) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--video".into(),
            self.video.into(),
            "--audio".into(),
            self.audio.into(),
            "--protocols".into(),
            self.protocols.into(),
            "--size".into(),
            format!("{}x{}", self.size.0, self.size.1),
            "--fps".into(),
            self.fps.to_string(),
            "--bitrate".into(),
            self.bitrate_kbit.to_string(),
            "--pattern".into(),
            self.pattern.into(),
            // The camera goes away with the test process, even when it dies without Drop.
            "--exit-on-stdin-eof".into(),
        ];
        for m in &self.mounts {
            a.push("--mount".into());
            a.push(m.clone());
        }
        if let Some((method, user, pass)) = &self.auth {
            a.extend([
                "--auth".into(),
                method.to_string(),
                "--user".into(),
                user.clone(),
                "--password".into(),
                pass.clone(),
            ]);
        }
        a
    }
}

/// The script's stderr, shared with its reader thread.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    /// Index of the first line of the current process (after restarts).
    current: usize,
}

/// A running camera, killed when dropped.
pub struct Camera {
    child: Child,
    /// Held open: the script exits when it reaches end of file.
    stdin: Option<ChildStdin>,
    /// `rtsp://127.0.0.1:<port><first mount>`.
    pub url: String,
    /// One URL per mount, in [`CameraOpts::mounts`] order.
    pub urls: Vec<String>,
    pub port: u16,
    opts: CameraOpts,
    log: Arc<Mutex<Log>>,
    readers: Vec<JoinHandle<()>>,
}

enum StartError {
    AddrInUse(String),
    Failed(String),
}

fn script() -> PathBuf {
    super::root().join("tests/camera/rtsp_camera.py")
}

impl Camera {
    /// Starts the camera and waits (at most 45 s) until it listens. Panics with the
    /// script's stderr when it does not come up.
    pub fn start(opts: &CameraOpts) -> Camera {
        Self::try_start(opts).unwrap_or_else(|e| panic!("RTSP camera did not start: {e}"))
    }

    /// Like [`Camera::start`], returning the failure (with the script's stderr) instead,
    /// e.g. for a test that expects the port to be busy. Still panics when Python or
    /// GStreamer is missing.
    pub fn try_start(opts: &CameraOpts) -> Result<Camera, String> {
        assert!(!opts.mounts.is_empty(), "CameraOpts::mounts is empty");
        let log = Arc::new(Mutex::new(Log::default()));
        Self::spawn(opts, opts.port, log)
            .map_err(|(StartError::AddrInUse(e) | StartError::Failed(e))| e)
    }

    fn spawn(opts: &CameraOpts, port: u16, log: Arc<Mutex<Log>>) -> Result<Camera, StartError> {
        assert!(
            std::path::Path::new(PYTHON).exists(),
            "{PYTHON} is missing: the RTSP camera needs Debian's python3 with GStreamer; \
             {INSTALL_HINT}"
        );
        let script = script();
        let mut child = Command::new(PYTHON)
            .arg(&script)
            .args(opts.args(port))
            // Keep a pyenv or virtualenv setup from leaking into Debian's interpreter.
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {PYTHON} {}: {e}; {INSTALL_HINT}", script.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");

        let (tx, rx) = mpsc::channel();
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let log2 = Arc::clone(&log);
        let err_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("CORECAST_TEST_LOG").is_some() {
                    eprintln!("[camera] {line}");
                }
                log2.lock().unwrap().lines.push(line);
            }
        });
        let mut cam = Camera {
            child,
            stdin,
            url: String::new(),
            urls: Vec::new(),
            port,
            opts: opts.clone(),
            log,
            readers: vec![out_reader, err_reader],
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let Some(url) = line.strip_prefix("READY ") else {
                        continue;
                    };
                    let port = url
                        .strip_prefix("rtsp://127.0.0.1:")
                        .and_then(|r| r.split('/').next())
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| panic!("RTSP camera: bad READY line {line:?}"));
                    cam.port = port;
                    cam.urls = opts
                        .mounts
                        .iter()
                        .map(|m| format!("rtsp://127.0.0.1:{port}{m}"))
                        .collect();
                    cam.url = cam.urls[0].clone();
                    assert_eq!(cam.url, url, "RTSP camera READY line");
                    return Ok(cam);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    cam.kill();
                    return Err(StartError::Failed(format!(
                        "no READY within {START_TIMEOUT:?}; stderr:\n{}",
                        cam.current_lines().join("\n")
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Stdout closed: the script exited.
                    let code = cam.kill();
                    let err = cam.current_lines().join("\n");
                    return Err(match code {
                        Some(EXIT_ADDR_IN_USE) => StartError::AddrInUse(err),
                        Some(EXIT_NO_GI) => panic!(
                            "{err}\nthe RTSP camera needs {PYTHON} with GStreamer: {INSTALL_HINT}"
                        ),
                        c => StartError::Failed(format!("exited with {c:?}; stderr:\n{err}")),
                    });
                }
            }
        }
    }

    /// Kills the process (SIGKILL), reaps it and drains its output; returns its exit code.
    fn kill(&mut self) -> Option<i32> {
        let _ = self.child.kill();
        let status = self.child.wait().ok();
        self.stdin = None;
        // The pipes reach end of file now that the process is gone (it has no children).
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status.and_then(|s| s.code())
    }

    fn current_lines(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.lines[log.current..].to_vec()
    }

    /// [`Camera::url`] with `user:pass@` (percent-encoded) after the scheme.
    pub fn url_with_credentials(&self, user: &str, pass: &str) -> String {
        with_credentials(&self.url, user, pass)
    }

    /// The URL of `mount` (`/name`) on this camera, served or not.
    pub fn mount_url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}{mount}", self.port)
    }

    /// Kills the camera (SIGKILL, like a power cut: clients see their connections drop)
    /// and starts it again with the same options on the same port, retrying for a few
    /// seconds while the port is busy. [`Camera::connections`] counts from zero again.
    pub fn restart(&mut self) {
        self.kill();
        self.log
            .lock()
            .unwrap()
            .lines
            .push("--- camera restarted ---".to_string());
        let deadline = Instant::now() + RESTART_RETRY;
        loop {
            {
                let mut log = self.log.lock().unwrap();
                log.current = log.lines.len();
            }
            match Self::spawn(&self.opts, self.port, Arc::clone(&self.log)) {
                Ok(cam) => {
                    // The old value holds the reaped process: its Drop does nothing.
                    *self = cam;
                    return;
                }
                Err(StartError::AddrInUse(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(StartError::AddrInUse(e) | StartError::Failed(e)) => {
                    panic!("RTSP camera did not restart on port {}: {e}", self.port)
                }
            }
        }
    }

    /// Stops the camera with SIGTERM and returns its exit code (0 expected); bounded.
    pub fn stop(&mut self) -> i32 {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                self.kill();
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("RTSP camera did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// RTSP connections (TCP) the current camera process has seen: (opened, closed).
    /// Counts restart from zero after [`Camera::restart`].
    pub fn connections(&self) -> (usize, usize) {
        let log = self.log.lock().unwrap();
        let lines = &log.lines[log.current..];
        let count = |p: &str| lines.iter().filter(|l| l.starts_with(p)).count();
        (count("CLIENT connected "), count("CLIENT closed "))
    }

    /// TEARDOWN requests the current camera process has received.
    pub fn teardowns(&self) -> usize {
        let log = self.log.lock().unwrap();
        let lines = &log.lines[log.current..];
        lines
            .iter()
            .filter(|l| l.starts_with("CLIENT teardown "))
            .count()
    }

    /// PLAY requests the current camera process has answered.
    pub fn plays(&self) -> usize {
        let log = self.log.lock().unwrap();
        let lines = &log.lines[log.current..];
        lines
            .iter()
            .filter(|l| l.starts_with("CLIENT play "))
            .count()
    }

    /// Waits (bounded) until `pred(opened, closed)` holds; panics with the log if not.
    pub fn wait_connections(
        &self,
        timeout: Duration,
        pred: impl Fn(usize, usize) -> bool,
    ) -> (usize, usize) {
        let deadline = Instant::now() + timeout;
        loop {
            let (opened, closed) = self.connections();
            if pred(opened, closed) {
                return (opened, closed);
            }
            assert!(
                Instant::now() < deadline,
                "RTSP camera connections (opened {opened}, closed {closed}) never matched \
                 within {timeout:?}; log:\n{}",
                self.stderr_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the script wrote to stderr so far, across restarts (each restart adds
    /// a `--- camera restarted ---` line).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().lines.clone()
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        if !self.readers.is_empty() {
            self.kill();
        }
        // A failing test shows what the camera said (a crash of the stand-in looks like
        // "camera closed the connection" then "connection refused" from the server).
        if std::thread::panicking()
            && let Ok(log) = self.log.lock()
        {
            let tail = log.lines.len().saturating_sub(40);
            eprintln!(
                "camera stderr (last lines):\n{}",
                log.lines[tail..].join("\n")
            );
        }
    }
}

/// `rtsp://host/..` → `rtsp://user:pass@host/..`, percent-encoding both.
pub fn with_credentials(url: &str, user: &str, pass: &str) -> String {
    let rest = url.strip_prefix("rtsp://").expect("rtsp:// URL");
    format!("rtsp://{}:{}@{rest}", pct(user), pct(pass))
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
