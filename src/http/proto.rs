//! HTTP/1.1 server side, sans-IO: an incremental request parser on `httparse` and a
//! response serializer.
//!
//! The driver appends received bytes to a [`BytesMut`] and calls [`RequestParser::parse`]
//! until it returns `Ok(None)`. Every returned [`Request`] consumed exactly its own bytes
//! from the front of the buffer, so pipelined requests behind it come out in order on
//! the next calls. Every length is bounded by [`Limits`]. After any [`HttpError`] the
//! framing of the connection is lost: answer with [`HttpError::to_response`] (never
//! keep-alive) and close.
//!
//! Work per call is proportional to the new bytes: the head terminator search resumes
//! where it stopped, `httparse` runs at most three times per request head (first bytes,
//! end of the request line, end of the head), and chunked bodies keep decode state.

use std::fmt::Write as _;
use std::mem::MaybeUninit;

use crate::auth::{Action, Credentials, Verdict};
use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (size, extensions and CRLF) accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// Header slots kept on the stack while parsing; more come from the heap.
const STACK_HEADERS: usize = 64;

/// Size limits applied to every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line, header lines, blank line and any leading empty
    /// lines); also bounds the trailer section of a chunked body. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Most header fields in a request head. Default 64.
    pub max_headers: usize,
    /// Largest request body, after chunked decoding. Default 1 MiB.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Why a request was rejected; [`HttpError::status`] gives the status to answer with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Malformed request line, header, body framing or chunk (400).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The header section (or a chunked trailer section) exceeds `max_header_bytes` (431).
    #[error("request header section too large")]
    HeadersTooLarge,
    /// More than `max_headers` header fields (431).
    #[error("too many request header fields")]
    TooManyHeaders,
    /// The body exceeds `max_body_bytes` (413).
    #[error("request body too large")]
    BodyTooLarge,
    /// A transfer-coding other than `chunked` (501).
    #[error("transfer-coding not implemented")]
    NotImplemented,
    /// An HTTP version other than 1.0 and 1.1 (505).
    #[error("HTTP version not supported")]
    VersionNotSupported,
}

impl HttpError {
    /// The HTTP status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::HeadersTooLarge | Self::TooManyHeaders => 431,
            Self::BodyTooLarge => 413,
            Self::NotImplemented => 501,
            Self::VersionNotSupported => 505,
        }
    }

    /// A plain-text error response; write it with `keep_alive = false`.
    pub fn to_response(&self) -> Response {
        Response::text(self.status(), &self.to_string())
    }
}

/// A complete request: head and de-framed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method token as sent (case-sensitive, e.g. `GET`).
    pub method: String,
    /// Request path without query or fragment; `/` for an absolute-form target without
    /// one, `*` for `OPTIONS *`.
    pub path: String,
    /// Query string after `?`, without the `?`.
    pub query: Option<String>,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order, names as sent, values trimmed of surrounding whitespace.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked; empty when the request has none.
    pub body: Bytes,
}

impl Request {
    /// The credentials the request carries (`Authorization: Basic`/`Bearer`, else
    /// `?token=`).
    pub fn credentials(&self) -> Credentials {
        crate::auth::creds::from_http(self.header("Authorization"), self.query.as_deref())
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any `name` header, read as a comma-separated list, contains `token`
    /// (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.header_tokens(name)
            .any(|t| t.eq_ignore_ascii_case(token))
    }

    /// Whether the connection stays open after this request: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.header_has_token("connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.header_has_token("connection", "keep-alive")
    }

    /// Whether the request asks to switch to protocol `proto` (`Connection: upgrade` and
    /// `proto` listed in `Upgrade`, with or without a `/version`).
    pub fn wants_upgrade(&self, proto: &str) -> bool {
        self.header_has_token("connection", "upgrade")
            && self.header_tokens("upgrade").any(|t| {
                let name = t.split_once('/').map_or(t, |(n, _)| n.trim_end());
                t.eq_ignore_ascii_case(proto) || name.eq_ignore_ascii_case(proto)
            })
    }

    fn header_tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    fn expects_continue(&self) -> bool {
        self.minor_version >= 1
            && self
                .header("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

/// Incremental HTTP/1.x request parser; one per connection.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    state: State,
    expect_continue: bool,
}

#[derive(Debug)]
enum State {
    Head(HeadScan),
    Length {
        req: Request,
        len: usize,
    },
    Chunked {
        req: Request,
        decoder: ChunkedDecoder,
        body: BytesMut,
    },
}

impl Default for State {
    fn default() -> Self {
        Self::Head(HeadScan::default())
    }
}

/// Progress of the head of the request in progress.
#[derive(Debug, Default, Clone, Copy)]
struct HeadScan {
    /// The first byte of the request line has been seen (leading empty lines stripped).
    started: bool,
    /// Empty-line bytes consumed before the request line; they count against the limit.
    skipped: usize,
    /// Bytes of the buffer already searched for the end of the head.
    scanned: usize,
    /// `httparse` has looked at the start of the request line.
    probed: bool,
    /// `httparse` has looked at the complete request line.
    line_seen: bool,
}

enum HeadStep {
    Partial(HeadScan),
    Complete(Request, Framing),
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::default(),
            expect_continue: false,
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Consumes one complete request from the front of `buf` and returns it, or
    /// `Ok(None)` when more bytes are needed. Call again until `Ok(None)` to drain
    /// pipelined requests. A partial content-length body stays in `buf`; a partial
    /// chunked body is decoded into the parser as it arrives. After an error the parser
    /// is reset but the connection's framing is lost: close it.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, HttpError> {
        let result = self.step(buf);
        if !matches!(result, Ok(None)) {
            self.expect_continue = false;
        }
        result
    }

    /// True once when the request in progress carried `Expect: 100-continue` (HTTP/1.1)
    /// and its body is not complete yet: the driver then writes
    /// `HTTP/1.1 100 Continue\r\n\r\n`.
    pub fn take_expect_continue(&mut self) -> bool {
        std::mem::take(&mut self.expect_continue)
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Request>, HttpError> {
        loop {
            // Taking the state resets the parser if anything below returns an error.
            match std::mem::take(&mut self.state) {
                State::Head(scan) => match self.parse_head(buf, scan)? {
                    HeadStep::Partial(scan) => {
                        self.state = State::Head(scan);
                        return Ok(None);
                    }
                    HeadStep::Complete(req, Framing::None) => return Ok(Some(req)),
                    HeadStep::Complete(req, Framing::Length(len)) => {
                        self.expect_continue = req.expects_continue();
                        self.state = State::Length { req, len };
                    }
                    HeadStep::Complete(req, Framing::Chunked) => {
                        self.expect_continue = req.expects_continue();
                        self.state = State::Chunked {
                            req,
                            decoder: ChunkedDecoder::default(),
                            body: BytesMut::new(),
                        };
                    }
                },
                State::Length { mut req, len } => {
                    if buf.len() < len {
                        self.state = State::Length { req, len };
                        return Ok(None);
                    }
                    req.body = buf.split_to(len).freeze();
                    return Ok(Some(req));
                }
                State::Chunked {
                    mut req,
                    mut decoder,
                    mut body,
                } => {
                    if decoder.decode(buf, &mut body, &self.limits)? {
                        req.body = body.freeze();
                        return Ok(Some(req));
                    }
                    self.state = State::Chunked { req, decoder, body };
                    return Ok(None);
                }
            }
        }
    }

    fn parse_head(&self, buf: &mut BytesMut, mut scan: HeadScan) -> Result<HeadStep, HttpError> {
        let max = self.limits.max_header_bytes;
        if !scan.started {
            // RFC 9112 §2.2: ignore empty lines before the request line.
            loop {
                let n = match (buf.first(), buf.get(1)) {
                    (None, _) | (Some(b'\r'), None) => return Ok(HeadStep::Partial(scan)),
                    (Some(b'\n'), _) => 1,
                    (Some(b'\r'), Some(b'\n')) => 2,
                    _ => break,
                };
                buf.advance(n);
                scan.skipped = scan.skipped.saturating_add(n);
                if scan.skipped >= max {
                    return Err(HttpError::HeadersTooLarge);
                }
            }
            scan.started = true;
        }

        let budget = max.saturating_sub(scan.skipped);
        let window = prefix(buf, budget);
        let from = scan.scanned.saturating_sub(2).min(window.len());
        let end = find_head_end(window, from);
        let new_line = !scan.line_seen && suffix(window, from).contains(&b'\n');
        if end.is_none() && scan.probed && !new_line {
            scan.scanned = window.len();
            return pending(buf.len(), budget, scan);
        }
        scan.probed = true;
        scan.line_seen |= new_line;

        // Each header line takes at least 3 bytes, so this bounds the slot count too.
        let slots = self
            .limits
            .max_headers
            .min(self.limits.max_header_bytes / 3 + 1);
        let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        let mut heap = Vec::new();
        let headers = match stack.get_mut(..slots) {
            Some(s) => s,
            None => {
                heap.resize(slots, MaybeUninit::uninit());
                heap.as_mut_slice()
            }
        };
        let mut parsed = httparse::Request::new(&mut []);
        let consumed = match parsed.parse_with_uninit_headers(window, headers) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                scan.scanned = window.len();
                return pending(buf.len(), budget, scan);
            }
            Err(e) => return Err(map_httparse_error(e, window)),
        };
        let req = build_request(&parsed)?;
        let framing = self.framing(&req)?;
        buf.advance(consumed);
        Ok(HeadStep::Complete(req, framing))
    }

    /// Body framing per RFC 9112 §6.
    fn framing(&self, req: &Request) -> Result<Framing, HttpError> {
        let mut content_length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut codings = 0usize;
        let mut other_coding = false;
        for (name, value) in &req.headers {
            if name.eq_ignore_ascii_case("content-length") {
                for part in value.split(',') {
                    let n = parse_content_length(part.trim())?;
                    if content_length.is_some_and(|prev| prev != n) {
                        return Err(HttpError::BadRequest("conflicting Content-Length"));
                    }
                    content_length = Some(n);
                }
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                transfer_encoding = true;
                for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    codings += 1;
                    other_coding |= !coding.eq_ignore_ascii_case("chunked");
                }
            }
        }
        if transfer_encoding {
            if content_length.is_some() {
                return Err(HttpError::BadRequest(
                    "both Content-Length and Transfer-Encoding",
                ));
            }
            if req.minor_version == 0 {
                return Err(HttpError::BadRequest("Transfer-Encoding in HTTP/1.0"));
            }
            if codings == 0 {
                return Err(HttpError::BadRequest("empty Transfer-Encoding"));
            }
            if other_coding {
                return Err(HttpError::NotImplemented);
            }
            if codings > 1 {
                return Err(HttpError::BadRequest("chunked applied more than once"));
            }
            return Ok(Framing::Chunked);
        }
        match content_length {
            None | Some(0) => Ok(Framing::None),
            Some(n) => {
                let len = usize::try_from(n).map_err(|_| HttpError::BodyTooLarge)?;
                if len > self.limits.max_body_bytes {
                    return Err(HttpError::BodyTooLarge);
                }
                Ok(Framing::Length(len))
            }
        }
    }
}

fn pending(buffered: usize, budget: usize, scan: HeadScan) -> Result<HeadStep, HttpError> {
    // Without a terminator inside the first `budget` bytes the head cannot fit.
    if buffered >= budget {
        Err(HttpError::HeadersTooLarge)
    } else {
        Ok(HeadStep::Partial(scan))
    }
}

fn prefix(b: &[u8], n: usize) -> &[u8] {
    b.get(..n).unwrap_or(b)
}

fn suffix(b: &[u8], from: usize) -> &[u8] {
    b.get(from..).unwrap_or_default()
}

/// End (exclusive) of the first empty line (`\n\n` or `\n\r\n`) at or after `from`.
fn find_head_end(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(off) = b.get(i..)?.iter().position(|&c| c == b'\n') {
        let lf = i + off;
        match (b.get(lf + 1), b.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => i = lf + 1,
        }
    }
    None
}

fn map_httparse_error(e: httparse::Error, window: &[u8]) -> HttpError {
    match e {
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders,
        httparse::Error::Version if names_other_version(window) => HttpError::VersionNotSupported,
        httparse::Error::Version => HttpError::BadRequest("invalid HTTP version"),
        httparse::Error::HeaderName => HttpError::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => HttpError::BadRequest("invalid header value"),
        httparse::Error::NewLine => HttpError::BadRequest("invalid line ending"),
        httparse::Error::Token => HttpError::BadRequest("invalid request line"),
        _ => HttpError::BadRequest("malformed request"),
    }
}

/// Whether the request line ends in a well-formed `HTTP/<digits>[.<digits>]` (possibly
/// still incomplete), i.e. a version we understand the syntax of but do not serve.
fn names_other_version(window: &[u8]) -> bool {
    let line = window.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
    match version.strip_prefix(b"HTTP/") {
        Some(rest) => {
            rest.first().is_some_and(u8::is_ascii_digit)
                && rest.iter().all(|&b| b.is_ascii_digit() || b == b'.')
                && rest.iter().filter(|&&b| b == b'.').count() <= 1
        }
        None => false,
    }
}

fn build_request(parsed: &httparse::Request<'_, '_>) -> Result<Request, HttpError> {
    let method = parsed
        .method
        .ok_or(HttpError::BadRequest("missing method"))?;
    let target = parsed
        .path
        .ok_or(HttpError::BadRequest("missing request target"))?;
    let minor_version = parsed
        .version
        .ok_or(HttpError::BadRequest("missing HTTP version"))?;
    let (path, query) = split_target(method, target)?;
    let mut headers = Vec::with_capacity(parsed.headers.len());
    let mut hosts = 0u32;
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HttpError::BadRequest("non-UTF-8 header value"))?;
        if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
            if hosts > 1 {
                return Err(HttpError::BadRequest("duplicate Host"));
            }
        }
        headers.push((
            h.name.to_owned(),
            value.trim_matches([' ', '\t']).to_owned(),
        ));
    }
    Ok(Request {
        method: method.to_owned(),
        path,
        query,
        minor_version,
        headers,
        body: Bytes::new(),
    })
}

/// Splits a request target (origin-, absolute- or asterisk-form) into path and query.
fn split_target(method: &str, target: &str) -> Result<(String, Option<String>), HttpError> {
    let relative = if target.starts_with('/') {
        target
    } else if target == "*" {
        if method == "OPTIONS" {
            return Ok(("*".to_owned(), None));
        }
        return Err(HttpError::BadRequest("asterisk target outside OPTIONS"));
    } else if let Some(after) =
        strip_prefix_ci(target, "http://").or_else(|| strip_prefix_ci(target, "https://"))
    {
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        if authority_end == 0 {
            return Err(HttpError::BadRequest("empty authority"));
        }
        after.get(authority_end..).unwrap_or_default()
    } else {
        return Err(HttpError::BadRequest("invalid request target"));
    };
    let relative = relative.split_once('#').map_or(relative, |(r, _)| r);
    let (path, query) = match relative.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (relative, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    Ok((path.to_owned(), query))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn parse_content_length(v: &str) -> Result<u64, HttpError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::BadRequest("invalid Content-Length"));
    }
    // Saturates: anything this large is over every body limit anyway.
    Ok(v.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// Incremental decoder for the chunked transfer coding (RFC 9112 §7.1).
#[derive(Debug, Default)]
struct ChunkedDecoder {
    state: ChunkState,
    /// Decoded body bytes so far.
    total: usize,
    /// Trailer-section bytes so far.
    trailer_bytes: usize,
    /// Bytes of the current line already searched for its LF.
    scanned: usize,
}

#[derive(Debug, Default, Clone, Copy)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside chunk data, this many bytes left.
    Data(usize),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Inside the trailer section, after the last chunk.
    Trailer,
}

enum Line {
    /// A CRLF-terminated line of this many bytes (CRLF included) is at the front.
    Found(usize),
    /// No line end yet.
    Pending,
    /// A line ended in a bare LF.
    BareLf,
    /// No line end within the allowed length.
    TooLong,
}

impl ChunkedDecoder {
    /// Decodes what `buf` holds into `body`; `Ok(true)` once the body is complete.
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        body: &mut BytesMut,
        limits: &Limits,
    ) -> Result<bool, HttpError> {
        loop {
            match self.state {
                ChunkState::Size => match self.line(buf, MAX_CHUNK_LINE) {
                    Line::Found(n) => {
                        let size = parse_chunk_size(prefix(buf, n.saturating_sub(2)))?;
                        buf.advance(n);
                        if size == 0 {
                            self.state = ChunkState::Trailer;
                        } else if size > limits.max_body_bytes.saturating_sub(self.total) {
                            return Err(HttpError::BodyTooLarge);
                        } else {
                            self.state = ChunkState::Data(size);
                        }
                    }
                    Line::Pending => return Ok(false),
                    Line::BareLf => return Err(HttpError::BadRequest("bare LF in chunk size")),
                    Line::TooLong => return Err(HttpError::BadRequest("chunk size line too long")),
                },
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let n = left.min(buf.len());
                    body.extend_from_slice(prefix(buf, n));
                    buf.advance(n);
                    self.total = self.total.saturating_add(n);
                    self.state = if n == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - n)
                    };
                }
                ChunkState::DataEnd => match (buf.first(), buf.get(1)) {
                    (Some(b'\r'), Some(b'\n')) => {
                        buf.advance(2);
                        self.state = ChunkState::Size;
                    }
                    (None, _) | (Some(b'\r'), None) => return Ok(false),
                    _ => return Err(HttpError::BadRequest("missing CRLF after chunk data")),
                },
                ChunkState::Trailer => {
                    let budget = limits.max_header_bytes.saturating_sub(self.trailer_bytes);
                    match self.line(buf, budget) {
                        Line::Found(2) => {
                            buf.advance(2);
                            return Ok(true);
                        }
                        Line::Found(n) => {
                            if !prefix(buf, n).contains(&b':') {
                                return Err(HttpError::BadRequest("malformed trailer field"));
                            }
                            buf.advance(n);
                            self.trailer_bytes = self.trailer_bytes.saturating_add(n);
                        }
                        Line::Pending => return Ok(false),
                        Line::BareLf => return Err(HttpError::BadRequest("bare LF in trailer")),
                        Line::TooLong => return Err(HttpError::HeadersTooLarge),
                    }
                }
            }
        }
    }

    /// Looks for a CRLF-terminated line of at most `max` bytes at the front of `buf`,
    /// resuming the search where the previous call stopped.
    fn line(&mut self, buf: &[u8], max: usize) -> Line {
        let window = prefix(buf, max);
        let from = self.scanned.min(window.len());
        match suffix(window, from).iter().position(|&b| b == b'\n') {
            Some(off) => {
                let lf = from + off;
                self.scanned = 0;
                if lf > 0 && window.get(lf - 1) == Some(&b'\r') {
                    Line::Found(lf + 1)
                } else {
                    Line::BareLf
                }
            }
            None if buf.len() >= max => Line::TooLong,
            None => {
                self.scanned = window.len();
                Line::Pending
            }
        }
    }
}

/// Parses `chunk-size [BWS] [; chunk-ext]` (line without CRLF).
fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(HttpError::BadRequest("invalid chunk size"));
    }
    let mut size = 0usize;
    for &b in prefix(line, digits) {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b.wrapping_sub(b'A').wrapping_add(10),
        };
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(usize::from(d)))
            .ok_or(HttpError::BodyTooLarge)?;
    }
    let rest = suffix(line, digits);
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = suffix(rest, ws);
    match rest.first() {
        None => Ok(size),
        Some(b';') if !rest.iter().any(|&b| b == b'\r' || b == 0) => Ok(size),
        _ => Err(HttpError::BadRequest("invalid chunk extension")),
    }
}

/// A response to serialize with [`Response::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code (100..=999; anything else is written as 500).
    pub status: u16,
    /// Header fields in order. `Content-Length` is computed and any given one dropped;
    /// `Connection` is set from `keep_alive` and any given one dropped, except on 1xx.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// The answer to a request the access policy refused: 401 asks for credentials
    /// (browsers prompt), 403 says they do not allow this, 429 that the address failed
    /// too often.
    pub fn refused(verdict: Verdict, action: Action) -> Response {
        match verdict {
            Verdict::Forbidden => Response::text(403, &format!("not allowed: {action}")),
            Verdict::Blocked => Response::text(429, "too many failed attempts from your address")
                .header("Retry-After", "60"),
            _ => Response::text(401, &format!("credentials needed: {action}"))
                .header("WWW-Authenticate", "Basic realm=\"corecast\""),
        }
    }

    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header field.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and its `Content-Type` (replacing any earlier one).
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = body.into();
        self
    }

    /// A `text/plain; charset=utf-8` response whose body is `msg` and a newline.
    pub fn text(status: u16, msg: &str) -> Self {
        let mut s = String::with_capacity(msg.len() + 1);
        s.push_str(msg);
        s.push('\n');
        Self::new(status).body("text/plain; charset=utf-8", s)
    }

    /// An `application/json` response.
    pub fn json(status: u16, body: String) -> Self {
        Self::new(status).body("application/json", body)
    }

    /// Writes the status line, headers, `Content-Length` (unless 1xx/204/304 or a
    /// `Transfer-Encoding` header is given), `Connection` (unless 1xx) and the blank
    /// line. Header fields with an invalid name or a CR, LF or NUL in the value are
    /// dropped.
    pub fn write_head(&self, out: &mut BytesMut, keep_alive: bool) {
        let status = if (100..=999).contains(&self.status) {
            self.status
        } else {
            500
        };
        let informational = status < 200;
        let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
        let mut chunked = false;
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("content-length")
                || (!informational && name.eq_ignore_ascii_case("connection"))
            {
                continue;
            }
            if !is_token(name) || value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                tracing::warn!(header = %name, "dropping invalid response header");
                continue;
            }
            chunked |= name.eq_ignore_ascii_case("transfer-encoding");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if has_body(status) && !chunked {
            let _ = write!(out, "Content-Length: {}\r\n", self.body.len());
        }
        if !informational {
            out.extend_from_slice(if keep_alive {
                b"Connection: keep-alive\r\n"
            } else {
                b"Connection: close\r\n"
            });
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Writes the head and, unless `head_request` or the status has no body, the body.
    pub fn write(&self, out: &mut BytesMut, keep_alive: bool, head_request: bool) {
        self.write_head(out, keep_alive);
        if !head_request && has_body(self.status) {
            out.extend_from_slice(&self.body);
        }
    }
}

fn has_body(status: u16) -> bool {
    !(status < 200 || status == 204 || status == 304)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The reason phrase for common status codes; empty for others.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
