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
mod tests {
    use super::*;

    fn parser() -> RequestParser {
        RequestParser::new(Limits::default())
    }

    fn parse_one(bytes: &[u8]) -> Result<Option<Request>, HttpError> {
        let mut buf = BytesMut::from(bytes);
        parser().parse(&mut buf)
    }

    fn parse_ok(bytes: &[u8]) -> Request {
        match parse_one(bytes) {
            Ok(Some(req)) => req,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn parse_err(bytes: &[u8]) -> HttpError {
        match parse_one(bytes) {
            Err(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Feeds `bytes` one at a time, collecting every request.
    fn feed_bytewise(p: &mut RequestParser, bytes: &[u8]) -> Vec<Request> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(req) = p.parse(&mut buf).expect("valid input") {
                out.push(req);
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    #[test]
    fn simple_get() {
        let req = parse_ok(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/index.html");
        assert_eq!(req.query, None);
        assert_eq!(req.minor_version, 1);
        assert_eq!(
            req.headers,
            vec![
                ("Host".to_owned(), "example.com".to_owned()),
                ("Accept".to_owned(), "*/*".to_owned())
            ]
        );
        assert!(req.body.is_empty());
    }

    #[test]
    fn consumes_exactly_one_request() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HT"[..]);
        let mut p = parser();
        let req = p.parse(&mut buf).unwrap().unwrap();
        assert_eq!(req.path, "/");
        assert_eq!(&buf[..], b"GET /x HT");
        assert_eq!(p.parse(&mut buf), Ok(None));
        buf.extend_from_slice(b"TP/1.1\r\n\r\n");
        assert_eq!(p.parse(&mut buf).unwrap().unwrap().path, "/x");
        assert!(buf.is_empty());
    }

    #[test]
    fn query_split() {
        let req = parse_ok(b"GET /whep/live?token=abc&x=1 HTTP/1.1\r\n\r\n");
        assert_eq!(req.path, "/whep/live");
        assert_eq!(req.query.as_deref(), Some("token=abc&x=1"));

        let req = parse_ok(b"GET /a? HTTP/1.1\r\n\r\n");
        assert_eq!((req.path.as_str(), req.query.as_deref()), ("/a", Some("")));

        let req = parse_ok(b"GET /a#frag HTTP/1.1\r\n\r\n");
        assert_eq!((req.path.as_str(), req.query.as_deref()), ("/a", None));

        let req = parse_ok(b"GET HTTP://example.com:8080/p/q?z=9 HTTP/1.1\r\n\r\n");
        assert_eq!(
            (req.path.as_str(), req.query.as_deref()),
            ("/p/q", Some("z=9"))
        );

        let req = parse_ok(b"GET https://example.com?z HTTP/1.1\r\n\r\n");
        assert_eq!((req.path.as_str(), req.query.as_deref()), ("/", Some("z")));

        let req = parse_ok(b"OPTIONS * HTTP/1.1\r\n\r\n");
        assert_eq!(req.path, "*");

        for bad in [
            &b"GET * HTTP/1.1\r\n\r\n"[..],
            b"GET http:///x HTTP/1.1\r\n\r\n",
            b"GET example.com:80 HTTP/1.1\r\n\r\n",
            b"GET index.html HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_err(bad), HttpError::BadRequest(_)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn headers_case_insensitive() {
        let req = parse_ok(
            b"GET / HTTP/1.1\r\ncontent-TYPE: application/sdp\r\nX-Dup: 1\r\nx-dup: 2\r\nX-Pad:  \t v \t \r\n\r\n",
        );
        assert_eq!(req.header("Content-Type"), Some("application/sdp"));
        assert_eq!(req.header("CONTENT-type"), Some("application/sdp"));
        assert_eq!(req.header("x-dup"), Some("1"));
        assert_eq!(req.header("x-pad"), Some("v"));
        assert_eq!(req.header("missing"), None);
    }

    #[test]
    fn non_utf8_and_duplicate_host_rejected() {
        assert!(matches!(
            parse_err(b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        assert_eq!(
            parse_err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            HttpError::BadRequest("duplicate Host")
        );
    }

    #[test]
    fn keep_alive_rules() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (
                b"GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
                true,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: Upgrade, Keep-Alive\r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: upgrade\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\nConnection: keep-alivex\r\n\r\n", false),
        ];
        for (bytes, expected) in cases {
            assert_eq!(parse_ok(bytes).keep_alive(), *expected, "{bytes:?}");
        }
    }

    #[test]
    fn upgrade_detection() {
        let req = parse_ok(
            b"GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n",
        );
        assert!(req.wants_upgrade("websocket"));
        assert!(!req.wants_upgrade("h2c"));
        let req = parse_ok(
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c, websocket/13\r\n\r\n",
        );
        assert!(req.wants_upgrade("websocket"));
        assert!(req.wants_upgrade("h2c"));
        let req = parse_ok(b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
        assert!(!req.wants_upgrade("websocket"));
    }

    #[test]
    fn pipelined_requests_in_order() {
        let mut buf = BytesMut::from(
            &b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n\
               POST /two HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
               POST /three HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
        );
        let mut p = parser();
        let one = p.parse(&mut buf).unwrap().unwrap();
        let two = p.parse(&mut buf).unwrap().unwrap();
        let three = p.parse(&mut buf).unwrap().unwrap();
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert!(buf.is_empty());
        assert_eq!((one.path.as_str(), &one.body[..]), ("/one", &b""[..]));
        assert_eq!((two.path.as_str(), &two.body[..]), ("/two", &b"hello"[..]));
        assert_eq!(
            (three.path.as_str(), &three.body[..]),
            ("/three", &b"abc"[..])
        );
    }

    #[test]
    fn byte_by_byte_content_length() {
        let input = b"POST /whip HTTP/1.1\r\nContent-Type: application/sdp\r\nContent-Length: 11\r\n\r\nv=0\r\no=- 1\r\nGET /next HTTP/1.1\r\n\r\n";
        let reqs = feed_bytewise(&mut parser(), input);
        assert_eq!(reqs.len(), 2);
        assert_eq!(&reqs[0].body[..], b"v=0\r\no=- 1\r");
        // The "\n" after the 11 body bytes starts the next request as an empty line.
        assert_eq!(reqs[1].path, "/next");
    }

    #[test]
    fn byte_by_byte_chunked() {
        let input = b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5;name=val\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n\
                      GET /after HTTP/1.1\r\n\r\n";
        let reqs = feed_bytewise(&mut parser(), input);
        assert_eq!(reqs.len(), 2);
        assert_eq!(&reqs[0].body[..], b"helloabcdefghijklmnopqrstuvwxyz");
        assert_eq!(reqs[1].path, "/after");
    }

    #[test]
    fn chunked_extensions_and_trailers() {
        let req = parse_ok(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n\
              4 ;a=b;c=\"d e\"\r\nWiki\r\n000005\t; x\r\npedia\r\n0;last\r\nExpires: never\r\nX-Sum: 42\r\n\r\n",
        );
        assert_eq!(&req.body[..], b"Wikipedia");
        assert_eq!(req.header("expires"), None, "trailers are skipped");
    }

    #[test]
    fn malformed_chunked_rejected() {
        let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for body in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"5x\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"0\r\nno-colon-trailer\r\n\r\n",
            b"0\r\nX: 1\n\r\n",
        ] {
            let mut input = head.to_vec();
            input.extend_from_slice(body);
            assert!(
                matches!(parse_err(&input), HttpError::BadRequest(_)),
                "{body:?}"
            );
        }
        let mut input = head.to_vec();
        input.extend_from_slice(&[b'1'; MAX_CHUNK_LINE]);
        assert!(matches!(parse_err(&input), HttpError::BadRequest(_)));
    }

    #[test]
    fn oversize_headers_complete() {
        let mut input = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        input.extend(std::iter::repeat_n(b'a', 17 * 1024));
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_err(&input), HttpError::HeadersTooLarge);
        assert_eq!(HttpError::HeadersTooLarge.status(), 431);
    }

    #[test]
    fn oversize_headers_incomplete() {
        let limits = Limits::default();
        let mut p = parser();
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nX-Big: "[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        let mut fed = buf.len();
        let mut result = Ok(None);
        while fed < 20 * 1024 {
            buf.extend_from_slice(&[b'a'; 512]);
            fed += 512;
            result = p.parse(&mut buf);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(HttpError::HeadersTooLarge));
        assert!(fed < limits.max_header_bytes + 512, "reported late: {fed}");

        // Endless empty lines count too.
        let mut p = parser();
        let mut buf = BytesMut::new();
        let mut result = Ok(None);
        for _ in 0..(limits.max_header_bytes / 2 + 1) {
            buf.extend_from_slice(b"\r\n");
            result = p.parse(&mut buf);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(HttpError::HeadersTooLarge));
    }

    #[test]
    fn too_many_headers() {
        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..65 {
            input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        let e = parse_err(&input);
        assert_eq!(e, HttpError::TooManyHeaders);
        assert_eq!(e.status(), 431);

        let mut input = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..64 {
            input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(parse_ok(&input).headers.len(), 64);
    }

    #[test]
    fn content_length_over_limit_before_body() {
        let mut p = parser();
        let mut buf = BytesMut::from(&b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"[..]);
        let e = p.parse(&mut buf).unwrap_err();
        assert_eq!(e, HttpError::BodyTooLarge);
        assert_eq!(e.status(), 413);
        assert_eq!(
            parse_err(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
            HttpError::BodyTooLarge
        );
        // Exactly at the limit is fine (waits for the body).
        assert_eq!(
            parse_one(b"POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n"),
            Ok(None)
        );
    }

    #[test]
    fn chunked_over_limit() {
        let limits = Limits {
            max_body_bytes: 8,
            ..Limits::default()
        };
        let mut p = RequestParser::new(limits);
        // Rejected from the chunk size alone, before its data arrives.
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n4\r\n"[..],
        );
        assert_eq!(p.parse(&mut buf), Err(HttpError::BodyTooLarge));

        let mut p = RequestParser::new(limits);
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n"[..],
        );
        assert_eq!(&p.parse(&mut buf).unwrap().unwrap().body[..], b"abcdefgh");

        assert_eq!(
            parse_err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n"),
            HttpError::BodyTooLarge
        );
    }

    #[test]
    fn bad_content_length() {
        for cl in [
            &b"abc"[..],
            b"-1",
            b"+5",
            b"0x10",
            b"5 5",
            b"",
            b"5,",
            b"5, 6",
        ] {
            let mut input = b"POST / HTTP/1.1\r\nContent-Length: ".to_vec();
            input.extend_from_slice(cl);
            input.extend_from_slice(b"\r\n\r\nhello");
            assert!(
                matches!(parse_err(&input), HttpError::BadRequest(_)),
                "{cl:?}"
            );
        }
        assert_eq!(
            parse_err(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            HttpError::BadRequest("conflicting Content-Length")
        );
        // Identical duplicates are accepted (RFC 9112 §6.3).
        let req =
            parse_ok(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello");
        assert_eq!(&req.body[..], b"hello");
        assert_eq!(HttpError::BadRequest("x").status(), 400);
    }

    #[test]
    fn content_length_and_transfer_encoding() {
        assert!(matches!(
            parse_err(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        assert!(matches!(
            parse_err(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            ),
            HttpError::BadRequest(_)
        ));
        assert!(matches!(
            parse_err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        assert!(matches!(
            parse_err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        assert!(matches!(
            parse_err(b"POST / HTTP/1.1\r\nTransfer-Encoding: ,\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
    }

    #[test]
    fn unsupported_transfer_coding() {
        for te in [
            &b"gzip"[..],
            b"gzip, chunked",
            b"chunked, gzip",
            b"identity",
        ] {
            let mut input = b"POST / HTTP/1.1\r\nTransfer-Encoding: ".to_vec();
            input.extend_from_slice(te);
            input.extend_from_slice(b"\r\n\r\n");
            let e = parse_err(&input);
            assert_eq!(e, HttpError::NotImplemented, "{te:?}");
            assert_eq!(e.status(), 501);
        }
    }

    #[test]
    fn unsupported_versions() {
        for input in [
            &b"GET / HTTP/2.0\r\n\r\n"[..],
            b"GET / HTTP/1.2\r\n\r\n",
            b"GET / HTTP/3\r\n\r\n",
            b"GET / HTTP/2", // detected before the line is complete
        ] {
            let e = parse_err(input);
            assert_eq!(e, HttpError::VersionNotSupported, "{input:?}");
            assert_eq!(e.status(), 505);
        }
        assert!(matches!(
            parse_err(b"GET / HTTX/1.1\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
        assert!(matches!(
            parse_err(b"GET / HTTP/x\r\n\r\n"),
            HttpError::BadRequest(_)
        ));
    }

    #[test]
    fn garbage_rejected() {
        for input in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // TLS ClientHello
            b"\x00\x01\x02garbage\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
            b"GET / HTTP/1.1\r\nName : value\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\rX\r\n\r\n",
            b"\rGET / HTTP/1.1\r\n\r\n",
            b"GET /a\x7fb HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_err(input), HttpError::BadRequest(_)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn garbage_detected_early() {
        // No line end yet, but the first bytes cannot start a request line.
        let mut p = parser();
        let mut buf = BytesMut::from(&b"\x16\x03\x01"[..]);
        assert!(matches!(p.parse(&mut buf), Err(HttpError::BadRequest(_))));
    }

    #[test]
    fn leading_empty_lines_ignored() {
        let req = parse_ok(b"\r\n\r\nGET /a HTTP/1.1\r\n\r\n");
        assert_eq!(req.path, "/a");
        let req = parse_ok(b"\nGET /b HTTP/1.1\n\n");
        assert_eq!(req.path, "/b");

        let mut p = parser();
        let mut buf = BytesMut::from(&b"\r"[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        buf.extend_from_slice(b"\nGET /c HTTP/1.1\r\n\r\n");
        assert_eq!(p.parse(&mut buf).unwrap().unwrap().path, "/c");

        // A CRLF after a complete request (some clients send one after a POST body).
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\nx\r\nGET /d HTTP/1.1\r\n\r\n"[..],
        );
        let mut p = parser();
        assert_eq!(&p.parse(&mut buf).unwrap().unwrap().body[..], b"x");
        assert_eq!(p.parse(&mut buf).unwrap().unwrap().path, "/d");
    }

    #[test]
    fn expect_continue() {
        let mut p = parser();
        let mut buf = BytesMut::from(
            &b"POST /whip HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n"[..],
        );
        assert!(!p.take_expect_continue());
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert!(p.take_expect_continue());
        assert!(!p.take_expect_continue(), "only once");
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert!(!p.take_expect_continue());
        buf.extend_from_slice(b"v=0\n");
        assert_eq!(&p.parse(&mut buf).unwrap().unwrap().body[..], b"v=0\n");
        assert!(!p.take_expect_continue());

        // Body already complete: nothing to continue.
        let mut p = parser();
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"[..],
        );
        assert!(p.parse(&mut buf).unwrap().is_some());
        assert!(!p.take_expect_continue());

        // Chunked, and ignored for HTTP/1.0 and for bodiless requests.
        let mut p = parser();
        let mut buf = BytesMut::from(
            &b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        );
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert!(p.take_expect_continue());
        for input in [
            &b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        ] {
            let mut p = parser();
            let mut buf = BytesMut::from(input);
            let _ = p.parse(&mut buf).unwrap();
            assert!(!p.take_expect_continue(), "{input:?}");
        }
    }

    #[test]
    fn parser_reusable_after_error() {
        let mut p = parser();
        let mut buf = BytesMut::from(&b"BAD\x01\r\n\r\n"[..]);
        assert!(p.parse(&mut buf).is_err());
        let mut buf = BytesMut::from(&b"GET /ok HTTP/1.1\r\n\r\n"[..]);
        assert_eq!(p.parse(&mut buf).unwrap().unwrap().path, "/ok");
    }

    #[test]
    fn mutated_inputs_never_panic() {
        let seeds: [&[u8]; 3] = [
            b"GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        ];
        let limits = Limits {
            max_header_bytes: 256,
            max_headers: 4,
            max_body_bytes: 64,
        };
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        };
        for round in 0..20_000 {
            let mut d = seeds[round % seeds.len()].to_vec();
            for _ in 0..1 + rnd() % 4 {
                let i = rnd() % (d.len() + 1);
                match rnd() % 4 {
                    0 if i < d.len() => d[i] = rnd() as u8,
                    1 => d.insert(i, b"\r\n:; 0f"[rnd() % 7]),
                    2 if i < d.len() => drop(d.remove(i)),
                    _ => d.truncate(i),
                }
            }
            let mut p = RequestParser::new(limits);
            let mut buf = BytesMut::new();
            let (a, b) = d.split_at(rnd() % (d.len() + 1));
            let mut bodies = 0;
            'feeds: for part in [a, b] {
                buf.extend_from_slice(part);
                loop {
                    match p.parse(&mut buf) {
                        Ok(Some(req)) => {
                            bodies += req.body.len();
                            assert!(bodies <= d.len() && req.body.len() <= 64);
                        }
                        Ok(None) => break,
                        Err(_) => break 'feeds,
                    }
                }
            }
        }
    }

    fn written(resp: &Response, keep_alive: bool, head_request: bool) -> String {
        let mut out = BytesMut::new();
        resp.write(&mut out, keep_alive, head_request);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn response_text() {
        let resp = Response::text(404, "no such stream");
        assert_eq!(
            written(&resp, true, false),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 15\r\nConnection: keep-alive\r\n\r\nno such stream\n"
        );
        assert_eq!(
            written(&resp, false, true),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 15\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn response_json_and_headers() {
        let resp = Response::json(201, "{\"id\":1}".to_owned())
            .header("Location", "/whep/1")
            .header("content-length", "999")
            .header("Connection", "close")
            .header("X-Evil", "a\r\nSet-Cookie: x")
            .header("Bad Name", "v");
        assert_eq!(
            written(&resp, true, false),
            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nLocation: /whep/1\r\n\
             Content-Length: 8\r\nConnection: keep-alive\r\n\r\n{\"id\":1}"
        );
        let resp = Response::new(200)
            .body("text/plain", "a")
            .body("application/sdp", "v=0\r\n");
        assert_eq!(
            written(&resp, false, false),
            "HTTP/1.1 200 OK\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\
             Connection: close\r\n\r\nv=0\r\n"
        );
    }

    #[test]
    fn response_bodiless_statuses() {
        assert_eq!(
            written(
                &Response::new(204).body("text/plain", "ignored"),
                true,
                false
            ),
            "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            written(&Response::new(304), false, false),
            "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"
        );
        let upgrade = Response::new(101)
            .header("Upgrade", "websocket")
            .header("Connection", "Upgrade");
        assert_eq!(
            written(&upgrade, true, false),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        );
        assert_eq!(
            written(&Response::new(100), true, false),
            "HTTP/1.1 100 Continue\r\n\r\n"
        );
        assert_eq!(
            written(&Response::new(200), true, false),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            written(&Response::new(42), false, false),
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn response_streaming_head() {
        let resp = Response::new(200)
            .header("Content-Type", "video/x-flv")
            .header("Transfer-Encoding", "chunked");
        let mut out = BytesMut::new();
        resp.write_head(&mut out, true);
        assert_eq!(
            &out[..],
            b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\
              Connection: keep-alive\r\n\r\n"
        );
    }

    #[test]
    fn error_responses_and_reasons() {
        let resp = HttpError::BodyTooLarge.to_response();
        assert_eq!(resp.status, 413);
        assert_eq!(&resp.body[..], b"request body too large\n");
        for code in [
            100, 101, 200, 201, 204, 301, 304, 400, 404, 405, 406, 408, 411, 413, 415, 426, 431,
            500, 501, 503, 505,
        ] {
            assert!(!reason(code).is_empty(), "{code}");
        }
        assert_eq!(reason(299), "");
        assert_eq!(reason(431), "Request Header Fields Too Large");
    }
}
