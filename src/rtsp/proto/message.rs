//! RTSP/1.0 messages and interleaved binary frames as a camera sends them on one TCP
//! stream (RFC 2326 §6, §7, §10.12): an incremental, bounded reader, and the writer of
//! the client's requests.
//!
//! Pure: bytes in, items out. A response is a status line, header lines and an optional
//! `Content-Length` body; a camera may also send requests of its own on the connection
//! (`GET_PARAMETER`, `OPTIONS`, `ANNOUNCE`), with a request line instead; an interleaved
//! frame is `$`, a channel byte, a 16-bit length and that many bytes (RTP or RTCP). Any
//! may follow another at any byte boundary.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::fmt;

/// The `User-Agent` corecast sends.
pub const USER_AGENT: &str = concat!("corecast/", env!("CARGO_PKG_VERSION"));

/// Bounds of the reader.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most bytes of a status line plus headers.
    pub max_head: usize,
    /// Most header lines.
    pub max_headers: usize,
    /// Most body bytes (an SDP is a few KiB).
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 16 * 1024,
            max_headers: 64,
            max_body: 256 * 1024,
        }
    }
}

/// Why the stream cannot be read further; the connection should be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtspError {
    /// The start line and headers exceed [`Limits::max_head`].
    #[error("message head larger than {0} bytes")]
    HeadTooLarge(usize),
    /// More header lines than [`Limits::max_headers`].
    #[error("more than {0} header lines")]
    TooManyHeaders(usize),
    /// `Content-Length` above [`Limits::max_body`].
    #[error("body of {len} bytes exceeds {max}")]
    BodyTooLarge {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Neither an RTSP/1.0 status line nor a request line of a known method.
    #[error("not an RTSP status or request line: {0:?}")]
    BadStatusLine(String),
    /// A header line without a colon, or a bad `Content-Length`.
    #[error("bad header line: {0:?}")]
    BadHeader(String),
    /// The head is not UTF-8.
    #[error("message head is not UTF-8")]
    NotUtf8,
}

/// The RTSP/1.0 methods (RFC 2326 §10). A request line with any other method is not
/// read as RTSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `OPTIONS`.
    Options,
    /// `DESCRIBE`.
    Describe,
    /// `ANNOUNCE`.
    Announce,
    /// `SETUP`.
    Setup,
    /// `PLAY`.
    Play,
    /// `PAUSE`.
    Pause,
    /// `TEARDOWN`.
    Teardown,
    /// `GET_PARAMETER`.
    GetParameter,
    /// `SET_PARAMETER`.
    SetParameter,
    /// `REDIRECT`.
    Redirect,
    /// `RECORD`.
    Record,
}

impl Method {
    /// Every method, for lookups.
    pub const ALL: [Method; 11] = [
        Method::Options,
        Method::Describe,
        Method::Announce,
        Method::Setup,
        Method::Play,
        Method::Pause,
        Method::Teardown,
        Method::GetParameter,
        Method::SetParameter,
        Method::Redirect,
        Method::Record,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Announce => "ANNOUNCE",
            Method::Setup => "SETUP",
            Method::Play => "PLAY",
            Method::Pause => "PAUSE",
            Method::Teardown => "TEARDOWN",
            Method::GetParameter => "GET_PARAMETER",
            Method::SetParameter => "SET_PARAMETER",
            Method::Redirect => "REDIRECT",
            Method::Record => "RECORD",
        }
    }

    /// The method named `name` (exact, upper case as RFC 2326 spells them).
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first value of header `name` (case-insensitive) in a header list.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// An RTSP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order, names as sent, values trimmed.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes).
    pub body: Bytes,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Every value of header `name` (a camera may send `WWW-Authenticate` twice).
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `CSeq` header as a number.
    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq")?.trim().parse().ok()
    }

    /// The response on the wire: status line, the headers as they are (CR and LF
    /// removed from names and values), `Content-Length` added when there is a body and
    /// no such header, then the body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64 + self.body.len());
        out.put_slice(b"RTSP/1.0 ");
        out.put_slice(format!("{:03} ", self.status).as_bytes());
        put_clean(&mut out, &self.reason);
        out.put_slice(b"\r\n");
        for (name, value) in &self.headers {
            put_header(&mut out, name, value);
        }
        if !self.body.is_empty() && self.header("Content-Length").is_none() {
            put_header(&mut out, "Content-Length", &self.body.len().to_string());
        }
        out.put_slice(b"\r\n");
        out.put_slice(&self.body);
        out.freeze()
    }
}

/// A request the client sends (without body: a camera client never needs one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request URI, exactly as it goes into the request line (and the Digest `uri`).
    pub uri: String,
    /// Header fields besides `CSeq` and `User-Agent`.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A request without extra headers.
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Vec::new(),
        }
    }

    /// The request on the wire: `METHOD uri RTSP/1.0`, `CSeq`, the headers,
    /// `User-Agent`, a blank line. CR and LF are removed from every field (they may come
    /// from the camera: session ids, nonces, control URLs), so nothing can add a header.
    pub fn to_bytes(&self, cseq: u32, user_agent: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(128 + self.uri.len());
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        put_clean(&mut out, &self.uri);
        out.put_slice(b" RTSP/1.0\r\n");
        put_header(&mut out, "CSeq", &cseq.to_string());
        for (name, value) in &self.headers {
            put_header(&mut out, name, value);
        }
        put_header(&mut out, "User-Agent", user_agent);
        out.put_slice(b"\r\n");
        out.freeze()
    }
}

/// Writes `name: value\r\n`.
fn put_header(out: &mut BytesMut, name: &str, value: &str) {
    put_clean(out, name);
    out.put_slice(b": ");
    put_clean(out, value);
    out.put_slice(b"\r\n");
}

/// Writes `s` without CR and LF.
fn put_clean(out: &mut BytesMut, s: &str) {
    for part in s.split(['\r', '\n']) {
        out.put_slice(part.as_bytes());
    }
}

/// One item read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A response.
    Response(Response),
    /// A request the camera sends to the client (keep-alive probes, `ANNOUNCE`).
    Request {
        /// Method.
        method: Method,
        /// Request URI as sent.
        uri: String,
        /// Header fields in order, names as sent, values trimmed.
        headers: Vec<(String, String)>,
        /// The body (`Content-Length` bytes).
        body: Bytes,
    },
    /// An interleaved binary frame.
    Interleaved {
        /// Channel (even: RTP, odd: RTCP, by the SETUP's `interleaved=` pair).
        channel: u8,
        /// The frame's bytes.
        data: Bytes,
    },
}

/// Reads [`Item`]s from the bytes of an RTSP connection.
#[derive(Debug, Default)]
pub struct Reader {
    limits: Limits,
    /// A head already parsed (a response or request with an empty body), waiting for
    /// its body of this many bytes.
    pending: Option<(Item, usize)>,
}

impl Reader {
    /// A reader with these bounds.
    pub fn new(limits: Limits) -> Self {
        Reader {
            limits,
            pending: None,
        }
    }

    /// Takes the next complete item from the front of `buf`; `Ok(None)` when more bytes
    /// are needed. Consumed bytes are removed from `buf`; bodies and frames are sliced
    /// without copying.
    pub fn read(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, RtspError> {
        if let Some((_, len)) = &self.pending {
            if buf.len() < *len {
                return Ok(None);
            }
            let len = *len;
            let Some((mut item, _)) = self.pending.take() else {
                return Ok(None);
            };
            let data = buf.split_to(len).freeze();
            match &mut item {
                Item::Response(r) => r.body = data,
                Item::Request { body, .. } => *body = data,
                Item::Interleaved { .. } => {}
            }
            return Ok(Some(item));
        }
        // Stray line ends between messages are allowed (RFC 2326 §4 follows HTTP here).
        while buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            buf.advance(1);
        }
        match buf.first() {
            None => Ok(None),
            Some(b'$') => {
                let Some(&[_, channel, hi, lo]) = buf.get(..4) else {
                    return Ok(None);
                };
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if buf.len() < 4 + len {
                    return Ok(None);
                }
                buf.advance(4);
                Ok(Some(Item::Interleaved {
                    channel,
                    data: buf.split_to(len).freeze(),
                }))
            }
            Some(_) => self.read_head(buf),
        }
    }

    fn read_head(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, RtspError> {
        let Some(end) = find_head_end(buf, self.limits.max_head) else {
            if buf.len() > self.limits.max_head {
                return Err(RtspError::HeadTooLarge(self.limits.max_head));
            }
            // Fail early on something that is not RTSP at all.
            if !plausible_start(buf) {
                let probe = buf.get(..buf.len().min(16)).unwrap_or_default();
                return Err(RtspError::BadStatusLine(
                    String::from_utf8_lossy(probe).into_owned(),
                ));
            }
            return Ok(None);
        };
        let head = buf.split_to(end);
        let text = std::str::from_utf8(&head).map_err(|_| RtspError::NotUtf8)?;
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let start_line = lines.next().unwrap_or("");
        let mut item = if start_line.starts_with("RTSP/") {
            let (status, reason) = parse_status_line(start_line)?;
            Item::Response(Response {
                status,
                reason,
                headers: Vec::new(),
                body: Bytes::new(),
            })
        } else {
            let (method, uri) = parse_request_line(start_line)?;
            Item::Request {
                method,
                uri,
                headers: Vec::new(),
                body: Bytes::new(),
            }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            if line.starts_with([' ', '\t']) {
                // Obsolete line folding: continue the previous value.
                let Some((_, v)) = headers.last_mut() else {
                    return Err(RtspError::BadHeader(line.to_string()));
                };
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            if headers.len() == self.limits.max_headers {
                return Err(RtspError::TooManyHeaders(self.limits.max_headers));
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| RtspError::BadHeader(line.to_string()))?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let len = match header(&headers, "Content-Length") {
            None => 0,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| RtspError::BadHeader(format!("Content-Length: {v}")))?,
        };
        if len > self.limits.max_body {
            return Err(RtspError::BodyTooLarge {
                len,
                max: self.limits.max_body,
            });
        }
        match &mut item {
            Item::Response(r) => r.headers = headers,
            Item::Request { headers: h, .. } => *h = headers,
            Item::Interleaved { .. } => {}
        }
        if len == 0 {
            return Ok(Some(item));
        }
        self.pending = Some((item, len));
        self.read(buf)
    }
}

/// Whether an incomplete head can still become a status line or a request line.
fn plausible_start(buf: &[u8]) -> bool {
    let probe = buf.get(..buf.len().min(5)).unwrap_or_default();
    if b"RTSP/".starts_with(probe) {
        return true;
    }
    Method::ALL.iter().any(|m| {
        let name = m.as_str().as_bytes();
        let n = buf.len().min(name.len() + 1);
        let probe = buf.get(..n).unwrap_or_default();
        match probe.split_last() {
            Some((b' ', head)) => head == name,
            _ => name.starts_with(probe),
        }
    })
}

/// The length of the head (through the blank line), if it is complete within `max`.
fn find_head_end(buf: &[u8], max: usize) -> Option<usize> {
    let scan = &buf[..buf.len().min(max)];
    let mut i = 0;
    while let Some(p) = scan[i..].iter().position(|b| *b == b'\n') {
        let at = i + p;
        let rest = &scan[at + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(at + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(at + 3);
        }
        i = at + 1;
    }
    None
}

fn parse_status_line(line: &str) -> Result<(u16, String), RtspError> {
    let bad = || RtspError::BadStatusLine(line.chars().take(80).collect());
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().ok_or_else(bad)?;
    if !version.starts_with("RTSP/1.") {
        return Err(bad());
    }
    let code = parts.next().ok_or_else(bad)?;
    if code.len() != 3 {
        return Err(bad());
    }
    let status: u16 = code.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&status) {
        return Err(bad());
    }
    Ok((status, parts.next().unwrap_or("").trim().to_string()))
}

/// `METHOD uri RTSP/1.x`, for the RFC 2326 methods.
fn parse_request_line(line: &str) -> Result<(Method, String), RtspError> {
    let bad = || RtspError::BadStatusLine(line.chars().take(80).collect());
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let method = Method::from_name(method).ok_or_else(bad)?;
    if uri.is_empty() || !version.starts_with("RTSP/1.") {
        return Err(bad());
    }
    Ok((method, uri.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DESCRIBE response as Hikvision cameras send it (structure from their public
    /// integration documentation; addresses are documentation ones).
    const HIKVISION_DESCRIBE: &str = "RTSP/1.0 200 OK\r\n\
CSeq: 3\r\n\
Content-Type: application/sdp\r\n\
Content-Base: rtsp://192.0.2.10:554/Streaming/Channels/101/\r\n\
Content-Length: 128\r\n\
\r\n\
v=0\r\n\
o=- 1 1 IN IP4 192.0.2.10\r\n\
s=Media Presentation\r\n\
t=0 0\r\n\
m=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\n\
a=control:trackID=1\r\n";

    fn read_all(input: &[u8], chunk: usize) -> Result<Vec<Item>, RtspError> {
        let mut r = Reader::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(item) = r.read(&mut buf)? {
                out.push(item);
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    #[test]
    fn describe_response_with_sdp_body_at_every_split() {
        let total = HIKVISION_DESCRIBE.len();
        for chunk in [1, 2, 7, 64, total] {
            let items = read_all(HIKVISION_DESCRIBE.as_bytes(), chunk).expect("parses");
            let [Item::Response(r)] = items.as_slice() else {
                panic!("one response expected, got {items:?}");
            };
            assert_eq!(
                (r.status, r.reason.as_str(), r.cseq()),
                (200, "OK", Some(3))
            );
            assert_eq!(
                r.header("content-base"),
                Some("rtsp://192.0.2.10:554/Streaming/Channels/101/")
            );
            assert_eq!(r.body.len(), 128);
            assert!(r.body.ends_with(b"a=control:trackID=1\r\n"));
        }
    }

    #[test]
    fn interleaved_frames_mixed_with_responses() {
        let mut input = Vec::new();
        input.extend_from_slice(&[b'$', 0, 0, 3, 0x80, 0x60, 0x01]);
        input.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: 1234;timeout=60\r\n\r\n");
        input.extend_from_slice(&[b'$', 1, 0, 0]);
        input.extend_from_slice(&[b'$', 0, 0, 2, 0xAA, 0xBB]);
        for chunk in [1, 3, input.len()] {
            let items = read_all(&input, chunk).expect("parses");
            assert_eq!(items.len(), 4);
            assert_eq!(
                items[0],
                Item::Interleaved {
                    channel: 0,
                    data: Bytes::from_static(&[0x80, 0x60, 0x01])
                }
            );
            let Item::Response(r) = &items[1] else {
                panic!("response expected");
            };
            assert_eq!(r.header("Session"), Some("1234;timeout=60"));
            assert_eq!(
                items[2],
                Item::Interleaved {
                    channel: 1,
                    data: Bytes::new()
                }
            );
        }
    }

    #[test]
    fn auth_challenges_bare_newlines_and_folding() {
        let input = "RTSP/1.0 401 Unauthorized\nCSeq: 2\nWWW-Authenticate: Digest realm=\"cam\",\n nonce=\"abc\"\nWWW-Authenticate: Basic realm=\"cam\"\n\n";
        let items = read_all(input.as_bytes(), 5).expect("parses");
        let [Item::Response(r)] = items.as_slice() else {
            panic!("one response");
        };
        assert_eq!(r.status, 401);
        let auth: Vec<&str> = r.headers_named("www-authenticate").collect();
        assert_eq!(
            auth,
            ["Digest realm=\"cam\", nonce=\"abc\"", "Basic realm=\"cam\""]
        );
    }

    #[test]
    fn malformed_and_oversized_input_is_an_error() {
        let err = |s: &[u8]| read_all(s, s.len()).expect_err("must fail");
        assert!(matches!(
            err(b"HTTP/1.1 200 OK\r\n\r\n"),
            RtspError::BadStatusLine(_)
        ));
        assert!(matches!(err(b"GARBAGE"), RtspError::BadStatusLine(_)));
        assert!(matches!(
            err(b"RTSP/1.0 20 OK\r\n\r\n"),
            RtspError::BadStatusLine(_)
        ));
        assert!(matches!(
            err(b"RTSP/1.0 200 OK\r\nNoColon\r\n\r\n"),
            RtspError::BadHeader(_)
        ));
        assert!(matches!(
            err(b"RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n"),
            RtspError::BadHeader(_)
        ));
        assert!(matches!(
            err(b"RTSP/1.0 200 OK\r\nContent-Length: 99999999\r\n\r\n"),
            RtspError::BodyTooLarge { .. }
        ));
        let many = format!("RTSP/1.0 200 OK\r\n{}\r\n", "X: y\r\n".repeat(65));
        assert!(matches!(
            err(many.as_bytes()),
            RtspError::TooManyHeaders(64)
        ));
        let mut r = Reader::new(Limits {
            max_head: 64,
            ..Limits::default()
        });
        let mut buf = BytesMut::from(&b"RTSP/1.0 200 OK\r\nX: "[..]);
        buf.extend_from_slice(&[b'a'; 100]);
        assert_eq!(r.read(&mut buf), Err(RtspError::HeadTooLarge(64)));
        // A partial head is not an error.
        let mut r = Reader::new(Limits::default());
        let mut buf = BytesMut::from(&b"RTS"[..]);
        assert_eq!(r.read(&mut buf), Ok(None));
    }

    #[test]
    fn camera_requests_are_read_between_frames_at_every_split() {
        let mut input = Vec::new();
        input.extend_from_slice(&[b'$', 0, 0, 1, 0x80]);
        input.extend_from_slice(
            b"GET_PARAMETER rtsp://192.0.2.1/ RTSP/1.0\r\nCSeq: 7\r\nContent-Length: 7\r\n\r\nuptime\n",
        );
        input.extend_from_slice(b"OPTIONS * RTSP/1.0\r\nCSeq: 8\r\n\r\n");
        input.extend_from_slice(b"RTSP/1.0 200 OK\r\nCSeq: 4\r\n\r\n");
        for chunk in [1, 2, 5, input.len()] {
            let items = read_all(&input, chunk).expect("parses");
            assert_eq!(items.len(), 4, "chunk {chunk}");
            assert_eq!(
                items[1],
                Item::Request {
                    method: Method::GetParameter,
                    uri: "rtsp://192.0.2.1/".to_string(),
                    headers: vec![
                        ("CSeq".to_string(), "7".to_string()),
                        ("Content-Length".to_string(), "7".to_string())
                    ],
                    body: Bytes::from_static(b"uptime\n"),
                }
            );
            assert!(matches!(
                &items[2],
                Item::Request { method: Method::Options, uri, .. } if uri == "*"
            ));
            assert!(matches!(&items[3], Item::Response(r) if r.cseq() == Some(4)));
        }
    }

    #[test]
    fn not_rtsp_start_lines_fail_early_or_when_complete() {
        let err = |s: &[u8]| read_all(s, 1).expect_err("must fail");
        for bad in [
            &b"PLAYX"[..],
            b"GET / HTTP/1.1\r\n\r\n",
            b"PING * RTSP/1.0\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\n\r\n",
            b"OPTIONS  RTSP/1.0\r\n\r\n",
            b"SETUP a b RTSP/1.0\r\n\r\n",
            b"options * RTSP/1.0\r\n\r\n",
        ] {
            assert!(
                matches!(err(bad), RtspError::BadStatusLine(_)),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Every prefix of a real request line waits for more.
        let mut r = Reader::new(Limits::default());
        for n in 1..=14 {
            let mut buf = BytesMut::from(&b"GET_PARAMETER rtsp://x/ RTSP/1.0\r\n"[..n]);
            assert_eq!(r.read(&mut buf), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn request_serialization() {
        let mut req = Request::new(Method::Setup, "rtsp://192.0.2.10:554/trackID=1");
        req.headers.push((
            "Transport".into(),
            "RTP/AVP/TCP;unicast;interleaved=0-1".into(),
        ));
        req.headers
            .push(("Session".into(), "12345678\r\nX-Evil: 1".into()));
        let bytes = req.to_bytes(3, USER_AGENT);
        assert_eq!(
            std::str::from_utf8(&bytes).expect("utf-8"),
            format!(
                "SETUP rtsp://192.0.2.10:554/trackID=1 RTSP/1.0\r\n\
                 CSeq: 3\r\n\
                 Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\
                 Session: 12345678X-Evil: 1\r\n\
                 User-Agent: corecast/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn response_round_trip() {
        let resp = Response {
            status: 200,
            reason: "OK".into(),
            headers: vec![("CSeq".into(), "9".into())],
            body: Bytes::from_static(b"v=0\r\n"),
        };
        let bytes = resp.to_bytes();
        assert_eq!(
            &bytes[..],
            b"RTSP/1.0 200 OK\r\nCSeq: 9\r\nContent-Length: 5\r\n\r\nv=0\r\n"
        );
        let items = read_all(&bytes, 3).expect("parses");
        let [Item::Response(back)] = items.as_slice() else {
            panic!("one response");
        };
        assert_eq!(
            (back.status, back.cseq(), &back.body),
            (200, Some(9), &resp.body)
        );
    }
}
