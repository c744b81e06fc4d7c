//! A tiny blocking HTTP/1.1 client for signaling (WHEP `POST` and `DELETE`), over
//! [`std::net::TcpStream`].
//!
//! [`parse_response`] is the sans-IO part: it takes the bytes received so far (and whether
//! the server has closed) and says "need more bytes" or returns the response. Every
//! length it reads is bounded ([`MAX_HEAD`], [`MAX_HEADERS`], [`MAX_BODY`]). Bodies are
//! framed by `Content-Length`, `Transfer-Encoding: chunked`, or the end of the
//! connection. [`request`] is the driver: one request per connection (`Connection:
//! close`, so that each request is a new TCP connection and the kernel spreads them over
//! the server's shards), bounded by one deadline for connect, write and read.
#![allow(clippy::disallowed_methods)] // A driver: the request deadline reads the clock.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Largest response head (status line, headers, blank line).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields in a response.
pub const MAX_HEADERS: usize = 64;
/// Largest response body.
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Connecting, writing or reading failed.
    #[error("HTTP {method} {path} to {addr}: {source}")]
    Io {
        /// Method of the request.
        method: String,
        /// Path of the request.
        path: String,
        /// Server address.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// No complete response before the deadline.
    #[error("HTTP {method} {path} to {addr}: no response within {timeout:?}")]
    Timeout {
        /// Method of the request.
        method: String,
        /// Path of the request.
        path: String,
        /// Server address.
        addr: SocketAddr,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The response is not valid HTTP/1.1 or exceeds a bound.
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    /// The server closed the connection before the response was complete.
    #[error("connection closed before the response was complete")]
    Truncated,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order received (names as sent).
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy UTF-8).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Outcome of [`parse_response`].
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// More bytes are needed.
    NeedMore,
    /// A complete response, which took this many bytes from the front of the buffer.
    Complete(Response, usize),
}

/// How the body is framed.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Parses one response from the front of `buf`. `eof` says the server closed the
/// connection after these bytes (it completes a body framed by the connection's end, and
/// turns "need more" into [`HttpError::Truncated`]). `head_request` says the request was
/// `HEAD` (no body follows whatever the headers say).
pub fn parse_response(buf: &[u8], eof: bool, head_request: bool) -> Result<Parsed, HttpError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut slots);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD {
                return Err(HttpError::Malformed("response head too large"));
            }
            return if eof {
                Err(HttpError::Truncated)
            } else {
                Ok(Parsed::NeedMore)
            };
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::Malformed("too many header fields"));
        }
        Err(_) => return Err(HttpError::Malformed("invalid status line or header")),
    };
    if head_len > MAX_HEAD {
        return Err(HttpError::Malformed("response head too large"));
    }
    let status = r.code.ok_or(HttpError::Malformed("no status code"))?;
    let reason = r.reason.unwrap_or("").to_string();
    let mut headers = Vec::with_capacity(r.headers.len());
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::Malformed("header value is not UTF-8"))?;
        headers.push((h.name.to_string(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let no_body = head_request || (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if no_body {
        Framing::Length(0)
    } else if find("transfer-encoding").is_some_and(|v| {
        v.rsplit(',')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
    }) {
        Framing::Chunked
    } else if let Some(v) = find("content-length") {
        let n: usize = v
            .parse()
            .map_err(|_| HttpError::Malformed("invalid Content-Length"))?;
        if n > MAX_BODY {
            return Err(HttpError::Malformed("body too large"));
        }
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    let rest = &buf[head_len..];
    let (body, used) = match framing {
        Framing::Length(n) => {
            if rest.len() < n {
                return if eof {
                    Err(HttpError::Truncated)
                } else {
                    Ok(Parsed::NeedMore)
                };
            }
            (rest[..n].to_vec(), n)
        }
        Framing::UntilClose => {
            if rest.len() > MAX_BODY {
                return Err(HttpError::Malformed("body too large"));
            }
            if !eof {
                return Ok(Parsed::NeedMore);
            }
            (rest.to_vec(), rest.len())
        }
        Framing::Chunked => match dechunk(rest)? {
            Some(v) => v,
            None if eof => return Err(HttpError::Truncated),
            None => return Ok(Parsed::NeedMore),
        },
    };
    Ok(Parsed::Complete(
        Response {
            status,
            reason,
            headers,
            body,
        },
        head_len + used,
    ))
}

/// Decodes a chunked body from the front of `buf`: the body and the bytes it took, or
/// `None` if incomplete. Trailers are skipped.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            if buf.len() - pos > 1024 {
                return Err(HttpError::Malformed("chunk size line too long"));
            }
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[pos..pos + eol])
            .map_err(|_| HttpError::Malformed("chunk size is not ASCII"))?;
        let size_str = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| HttpError::Malformed("invalid chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailer section: header lines up to an empty line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(HttpError::Malformed("body too large"));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size;
        if &buf[pos..pos + 2] != b"\r\n" {
            return Err(HttpError::Malformed("chunk not followed by CRLF"));
        }
        pos += 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Serializes a request with `Host`, `Connection: close` and, when `body` is given,
/// `Content-Type` and `Content-Length`.
pub fn encode_request(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    let mut out;
    match body {
        Some((content_type, b)) => {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                b.len()
            ));
            out = head.into_bytes();
            out.extend_from_slice(b);
        }
        None => {
            if method == "POST" || method == "PUT" || method == "PATCH" {
                head.push_str("Content-Length: 0\r\n");
            }
            head.push_str("\r\n");
            out = head.into_bytes();
        }
    }
    out
}

/// Sends one request on a new connection and reads its response, all within `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    request_from(None, addr, method, path, headers, body, timeout)
}

/// Opens a TCP connection to `addr` from the local address `from` (any port), or from
/// whatever address the kernel picks when `None` (127.0.0.2 is another client address
/// on loopback).
pub fn connect_from(
    from: Option<IpAddr>,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let Some(ip) = from else {
        return TcpStream::connect_timeout(&addr, timeout);
    };
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    s.bind(&SocketAddr::new(ip, 0).into())?;
    s.connect_timeout(&addr.into(), timeout)?;
    Ok(s.into())
}

/// Like [`request`], from the local address `from` (e.g. `127.0.0.2`, to be another
/// client address on loopback).
pub fn request_from(
    from: Option<IpAddr>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let deadline = Instant::now() + timeout;
    let io = |source| HttpError::Io {
        method: method.to_string(),
        path: path.to_string(),
        addr,
        source,
    };
    let timed_out = || HttpError::Timeout {
        method: method.to_string(),
        path: path.to_string(),
        addr,
        timeout,
    };
    let mut s = connect_from(from, addr, timeout).map_err(io)?;
    let _ = s.set_nodelay(true);
    let req = encode_request(method, path, &addr.to_string(), headers, body);
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    s.write_all(&req).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => timed_out(),
        _ => io(e),
    })?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_request = method.eq_ignore_ascii_case("HEAD");
    let mut eof = false;
    loop {
        match parse_response(&buf, eof, head_request)? {
            Parsed::Complete(r, _) => return Ok(r),
            Parsed::NeedMore => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        s.set_read_timeout(Some(left)).map_err(io)?;
        match s.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            // A reset after a complete response framed by close still ends it.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !buf.is_empty() => {
                eof = true;
            }
            Err(e) => return Err(io(e)),
        }
    }
}

/// `POST path` with a body of `content_type`.
pub fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response, HttpError> {
    request(addr, "POST", path, &[], Some((content_type, body)), timeout)
}

/// `DELETE path`.
pub fn delete(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, HttpError> {
    request(addr, "DELETE", path, &[], None, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8], eof: bool) -> (Response, usize) {
        match parse_response(buf, eof, false) {
            Ok(Parsed::Complete(r, n)) => (r, n),
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn whep_created_with_location_and_sdp_body() {
        let raw = b"HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\n\
            Location: /whep/live/cam1/42\r\nContent-Length: 10\r\n\r\nv=0\r\no=x\r\n";
        let (r, n) = complete(raw, false);
        assert_eq!(n, raw.len());
        assert_eq!(r.status, 201);
        assert_eq!(r.reason, "Created");
        assert_eq!(r.header("location"), Some("/whep/live/cam1/42"));
        assert_eq!(r.header("CONTENT-TYPE"), Some("application/sdp"));
        assert_eq!(r.body, b"v=0\r\no=x\r\n");
    }

    #[test]
    fn every_prefix_needs_more_and_eof_truncates() {
        let raw = b"HTTP/1.1 406 Not Acceptable\r\nContent-Length: 4\r\n\r\nh264";
        for cut in 0..raw.len() {
            assert_eq!(
                parse_response(&raw[..cut], false, false).ok(),
                Some(Parsed::NeedMore),
                "cut {cut}"
            );
            assert!(matches!(
                parse_response(&raw[..cut], true, false),
                Err(HttpError::Truncated)
            ));
        }
        let (r, _) = complete(raw, false);
        assert_eq!((r.status, r.body_text().as_str()), (406, "h264"));
    }

    #[test]
    fn pipelined_bytes_after_the_response_are_left() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
        let (r, n) = complete(raw, false);
        assert_eq!(r.body, b"ok");
        assert_eq!(&raw[n..], b"HTTP/1.1 200 OK\r\n");
    }

    #[test]
    fn no_body_statuses_and_head() {
        let raw = b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n\r\n";
        let (r, n) = complete(raw, false);
        assert_eq!((r.status, n, r.body.len()), (204, raw.len(), 0));
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n";
        assert!(matches!(
            parse_response(raw, false, true),
            Ok(Parsed::Complete(_, _))
        ));
    }

    #[test]
    fn body_until_close() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello";
        assert_eq!(
            parse_response(raw, false, false).ok(),
            Some(Parsed::NeedMore)
        );
        let (r, _) = complete(raw, true);
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn chunked_body_with_extension_and_trailer() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\n";
        let (r, n) = complete(raw, false);
        assert_eq!(r.body, b"Wikipedia");
        assert_eq!(n, raw.len());
        for cut in 0..raw.len() {
            assert_eq!(
                parse_response(&raw[..cut], false, false).ok(),
                Some(Parsed::NeedMore),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn malformed_and_oversized_responses() {
        for raw in [
            &b"HTTP/1.1 abc OK\r\n\r\n"[..],
            b"SIP/2.0 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n",
        ] {
            assert!(
                matches!(
                    parse_response(raw, false, false),
                    Err(HttpError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(
            parse_response(&many, false, false),
            Err(HttpError::Malformed(_))
        ));
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        assert!(matches!(
            parse_response(&long, false, false),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn request_encoding() {
        let r = encode_request(
            "POST",
            "/whep/demo",
            "127.0.0.1:80",
            &[],
            Some(("application/sdp", b"v=0\r\n")),
        );
        assert_eq!(
            r,
            b"POST /whep/demo HTTP/1.1\r\nHost: 127.0.0.1:80\r\nConnection: close\r\n\
              Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
        let r = encode_request("DELETE", "/whep/demo/1", "h", &[("X-A", "b")], None);
        assert_eq!(
            r,
            b"DELETE /whep/demo/1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-A: b\r\n\r\n"
        );
    }

    #[test]
    fn request_against_a_local_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut got = Vec::new();
            let mut b = [0u8; 1024];
            while !got.ends_with(b"v=0\r\n") {
                let n = s.read(&mut b).expect("read");
                assert!(n > 0);
                got.extend_from_slice(&b[..n]);
            }
            // Answer in two writes to exercise "need more".
            s.write_all(b"HTTP/1.1 201 Created\r\nLocation: /whep/demo/7\r\n")
                .expect("write");
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(b"Content-Length: 3\r\n\r\nabc").expect("write");
            String::from_utf8_lossy(&got).into_owned()
        });
        let r = post(
            addr,
            "/whep/demo",
            "application/sdp",
            b"v=0\r\n",
            Duration::from_secs(5),
        )
        .expect("response");
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Location"), Some("/whep/demo/7"));
        assert_eq!(r.body, b"abc");
        let sent = t.join().expect("server thread");
        assert!(sent.starts_with("POST /whep/demo HTTP/1.1\r\n"), "{sent}");
    }

    #[test]
    fn request_times_out_on_a_silent_server() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            std::thread::sleep(Duration::from_millis(500));
            drop(s);
        });
        let e = delete(addr, "/whep/demo/1", Duration::from_millis(100)).expect_err("timeout");
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
        let _ = t.join();
    }
}
