//! RTSP/1.0 responses and interleaved binary frames as a camera sends them on one TCP
//! stream (RFC 2326 §7, §10.12): an incremental, bounded reader.
//!
//! Pure: bytes in, items out. A response is a status line, header lines and an optional
//! `Content-Length` body; an interleaved frame is `$`, a channel byte, a 16-bit length
//! and that many bytes (RTP or RTCP). Either may follow the other at any byte boundary.

use bytes::{Buf, Bytes, BytesMut};

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
    /// The status line and headers exceed [`Limits::max_head`].
    #[error("response head larger than {0} bytes")]
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
    /// Not an RTSP/1.0 status line.
    #[error("bad status line: {0:?}")]
    BadStatusLine(String),
    /// A header line without a colon, or a bad `Content-Length`.
    #[error("bad header line: {0:?}")]
    BadHeader(String),
    /// The head is not UTF-8.
    #[error("response head is not UTF-8")]
    NotUtf8,
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
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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
}

/// One item read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A response.
    Response(Response),
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
    /// A head already parsed, waiting for its body.
    pending: Option<(Response, usize)>,
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
            let Some((mut resp, _)) = self.pending.take() else {
                return Ok(None);
            };
            resp.body = buf.split_to(len).freeze();
            return Ok(Some(Item::Response(resp)));
        }
        // Stray line ends between messages are allowed (RFC 2326 §4 follows HTTP here).
        while buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            buf.advance(1);
        }
        match buf.first() {
            None => Ok(None),
            Some(b'$') => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                let channel = buf[1];
                let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
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
            let probe = &buf[..buf.len().min(5)];
            if !b"RTSP/".starts_with(probe) {
                return Err(RtspError::BadStatusLine(
                    String::from_utf8_lossy(probe).into_owned(),
                ));
            }
            return Ok(None);
        };
        let head = buf.split_to(end);
        let text = std::str::from_utf8(&head).map_err(|_| RtspError::NotUtf8)?;
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let status_line = lines.next().unwrap_or("");
        let (status, reason) = parse_status_line(status_line)?;
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            if line.starts_with([' ', '\t']) {
                // Obsolete line folding: continue the previous value.
                let Some((_, v)) = headers.last_mut() else {
                    return Err(RtspError::BadHeader(line.to_string()));
                };
                let v: &mut String = v;
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
        let resp = Response {
            status,
            reason,
            headers,
            body: Bytes::new(),
        };
        let len = match resp.header("Content-Length") {
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
        if len == 0 {
            return Ok(Some(Item::Response(resp)));
        }
        self.pending = Some((resp, len));
        self.read(buf)
    }
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
}
