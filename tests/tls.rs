//! HTTPS and RTMPS with real clients: curl reads the API over HTTPS, ffmpeg publishes and
//! ffprobe plays over RTMPS, a rustls client checks which certificate is served before and
//! after a SIGHUP reload, and garbage or a stalled handshake on a TLS port costs that
//! connection only. The certificates are made in the test (a CA and leaves for
//! `127.0.0.1`/`localhost`, with rcgen).
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::tls::Pki;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn pki(tag: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!(
        "corecast-test-pki-{tag}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    Pki::new(&dir)
}

/// The addresses the server logs as `listening KEY=ADDR`, for each of `keys` (log lines
/// read by one call are gone for the next, so all are read together).
fn tls_addrs<const N: usize>(s: &Server, keys: [&str; N]) -> [SocketAddr; N] {
    let mut log = String::new();
    keys.map(|key| {
        let needle = format!("listening {key}=");
        if !log.contains(&needle) {
            log += "\n";
            log += &s.log_until(&needle, Duration::from_secs(10));
        }
        log.split(&needle)
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no {key} address in {log:?}"))
    })
}

fn tls_addr(s: &Server, key: &str) -> SocketAddr {
    tls_addrs(s, [key])[0]
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(pki: &Pki, url: &str) -> (bool, String) {
    require_tool("curl");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&pki.ca_pem)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Reads until the peer closes (or `limit`); returns what was read and whether it closed.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

#[test]
fn curl_reads_the_api_over_https_and_garbage_or_silence_on_the_tls_port_costs_one_connection() {
    let pki = pki("https");
    let http = pki.http_lines() + "header_timeout = \"1s\"\n";
    let s = Server::start(
        "tls-https",
        &test_config_http(&http, &demo_stream("demo", 0)),
    );
    let https = tls_addr(&s, "https");
    let url = format!("https://127.0.0.1:{}/api/v1/streams", https.port());
    let (ok, body) = curl(&pki, &url);
    assert!(ok && body.contains("\"demo\""), "curl {url}: {body}");
    let (ok, body) = curl(
        &pki,
        &format!("https://localhost:{}/api/v1/streams", https.port()),
    );
    assert!(
        ok && body.contains("\"demo\""),
        "curl via localhost: {body}"
    );

    // Plain HTTP to the TLS port: no HTTP answer, the connection closes.
    let mut plain = connect(https);
    plain
        .write_all(b"GET /api/v1/streams HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let (got, closed) = read_until_closed(&mut plain, Duration::from_secs(5));
    assert!(closed, "plain HTTP on the TLS port was not closed");
    assert!(
        !String::from_utf8_lossy(&got).contains("HTTP/1.1"),
        "an HTTP answer in the clear: {got:?}"
    );
    // A handshake that never comes: closed at http.header_timeout (1 s).
    let mut silent = connect(https);
    let t = Instant::now();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5));
    assert!(closed, "a silent connection was kept past the time-out");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

    // Both counted; the server goes on serving both ports.
    assert!(s.metric("corecast_tls_handshake_failures_total") >= 2);
    let (ok, body) = curl(&pki, &url);
    assert!(ok && body.contains("\"demo\""), "after garbage: {body}");
    assert_eq!(s.get("/api/v1/streams").status, 200);
}

#[test]
fn https_same_origin_is_the_https_page_of_the_tls_port() {
    let pki = pki("origin");
    let s = Server::start(
        "tls-origin",
        &test_config_http(&pki.http_lines(), &demo_stream("demo", 0)),
    );
    let https = tls_addr(&s, "https");
    let ws = |origin: &str| {
        let mut c = pki.connect(https);
        let h = format!(
            "Origin: {origin}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        );
        c.get("/ws", &h).status
    };
    let own = format!("https://127.0.0.1:{}", https.port());
    assert_eq!(ws(&own), 101, "the HTTPS page's own origin");
    let plain_page = format!("http://127.0.0.1:{}", s.http.port());
    assert_eq!(ws(&plain_page), 403, "the plain page is another origin");
    let scheme_swapped = format!("http://127.0.0.1:{}", https.port());
    assert_eq!(ws(&scheme_swapped), 403);
    // The API answers CORS to its own HTTPS page only as same-origin (no header needed),
    // and the plain page's origin gets none.
    let mut c = pki.connect(https);
    let r = c.get("/api/v1/streams", &format!("Origin: {plain_page}\r\n"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

/// `ffmpeg -re -stream_loop -1 -i demo.flv -c copy -f flv URL` (no certificate check:
/// ffmpeg's TLS layer does not verify by default; the rustls client of the reload test
/// checks what is served).
fn publish(url: &str) -> Killed {
    Killed(ffmpeg_publish_loop(
        &root().join("configs/media/demo.flv"),
        &[],
        url,
    ))
}

/// An ffmpeg player of `url` reporting its progress on stdout.
fn player(url: &str) -> Killed {
    let child = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
        ])
        .args([
            "-i",
            url,
            "-c",
            "copy",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg player");
    Killed(child)
}

#[test]
fn ffmpeg_publishes_over_rtmps_and_ffprobe_plays_it_back_over_rtmps() {
    let pki = pki("rtmps");
    let rtmp = "tls_listen = \"127.0.0.1:0\"\n";
    let s = Server::start(
        "tls-rtmps",
        &test_config_sections(&pki.http_lines(), rtmp, ""),
    );
    let rtmps = tls_addr(&s, "rtmps");
    let url = format!("rtmps://127.0.0.1:{}/live/tls", rtmps.port());
    let _publisher = publish(&url);
    s.wait_stream("live/tls", |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
    let v = ffprobe_json(&["-show_streams", "-select_streams", "v:0", &url]);
    let st = &v["streams"][0];
    assert_eq!(st["codec_name"], "h264", "{v}");
    assert_eq!(st["width"], 1280, "{v}");
    assert_eq!(st["height"], 720, "{v}");
}

/// The highest `frame=` an ffmpeg player has reported so far (reads its progress pipe
/// for `wait`).
fn frames(p: &mut Killed, wait: Duration) -> u64 {
    use std::io::BufRead;
    let out = p.0.stdout.as_mut().expect("progress pipe");
    let (tx, rx) = std::sync::mpsc::channel();
    // The pipe is read on a thread for `wait`; it is given back through the channel.
    let mut reader = std::io::BufReader::new(out);
    let deadline = Instant::now() + wait;
    let mut max = 0;
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let mut line = String::new();
            while Instant::now() < deadline {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Some(n) = line.trim().strip_prefix("frame=") {
                            let _ = tx.send(n.parse::<u64>().unwrap_or(0));
                        }
                    }
                }
            }
        });
    });
    while let Ok(n) = rx.try_recv() {
        max = max.max(n);
    }
    max
}

fn sighup(s: &Server) {
    // SAFETY: kill(2) on the server process we started.
    let rc = unsafe { libc::kill(s.child.id() as libc::pid_t, libc::SIGHUP) };
    assert_eq!(rc, 0, "kill -HUP");
}

#[test]
fn sighup_serves_the_new_certificate_to_the_next_connection_while_open_ones_go_on() {
    let pki = pki("reload");
    let rtmp = "tls_listen = \"127.0.0.1:0\"\n";
    let s = Server::start(
        "tls-reload",
        &test_config_sections(&pki.http_lines(), rtmp, &demo_stream("demo", 0)),
    );
    let [https, rtmps] = tls_addrs(&s, ["https", "rtmps"]);
    s.wait_stream("demo", |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });

    // Before: a keep-alive HTTPS connection and an RTMPS player, on the first leaf.
    let mut kept = pki.connect(https);
    assert_eq!(kept.served(), pki.leaf.der);
    assert_eq!(kept.get("/api/v1/streams", "").status, 200);
    let mut play = player(&format!("rtmps://127.0.0.1:{}/live/demo", rtmps.port()));
    let before = frames(&mut play, Duration::from_secs(3));
    assert!(before > 0, "the RTMPS player got no frames");

    // Renewal: a new leaf (new key) on disk, then SIGHUP.
    let renewed = pki.issue();
    pki.install(&renewed);
    sighup(&s);
    s.log_until("TLS certificate reloaded", Duration::from_secs(5));
    let fresh = pki.connect(https);
    assert_eq!(fresh.served(), renewed.der, "the next HTTPS connection");
    assert_eq!(
        pki.connect(rtmps).served(),
        renewed.der,
        "the next RTMPS one"
    );
    // The connections opened before go on.
    let r = kept.get("/api/v1/streams", "");
    assert_eq!(r.status, 200, "the keep-alive connection after the reload");
    let after = frames(&mut play, Duration::from_secs(2));
    assert!(
        after > before,
        "the RTMPS player stopped at the reload: {before} then {after} frames"
    );
    assert!(play.0.try_wait().expect("wait").is_none(), "player exited");

    // A broken renewal: one error line naming the file; the served certificate stays.
    std::fs::write(&pki.cert, "not a certificate\n").expect("write");
    sighup(&s);
    let line = s.log_until("not reloaded", Duration::from_secs(5));
    assert!(line.contains(&pki.cert.display().to_string()), "{line}");
    assert_eq!(pki.connect(https).served(), renewed.der);
}

/// librtmp over GnuTLS (rtmpdump) fails its RTMP handshake when TLS 1.3 session tickets
/// arrive before the first RTMP bytes; RTMPS sends none, so rtmpdump plays.
#[test]
fn rtmpdump_plays_over_rtmps_without_session_tickets_in_the_way() {
    require_tool("rtmpdump");
    let pki = pki("rtmpdump");
    let rtmp = "tls_listen = \"127.0.0.1:0\"\n";
    let s = Server::start(
        "tls-rtmpdump",
        &test_config_sections(&pki.http_lines(), rtmp, &demo_stream("demo", 0)),
    );
    let rtmps = tls_addr(&s, "rtmps");
    s.wait_stream("demo", |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
    let url = format!("rtmps://127.0.0.1:{}/live/demo", rtmps.port());
    let mut p = Killed(
        Command::new("rtmpdump")
            .args(["--live", "-q", "-r", &url, "-o", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("rtmpdump"),
    );
    let mut out = p.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while got.len() < 64 * 1024 {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let _ = tx.send(got);
    });
    let got = rx.recv_timeout(Duration::from_secs(15)).unwrap_or_default();
    assert!(
        got.len() >= 64 * 1024 && got.starts_with(b"FLV"),
        "rtmpdump over RTMPS got {} bytes",
        got.len()
    );
}
