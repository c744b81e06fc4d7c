//! The RTSP/1.0 server side of `corecast-load camera`, sans-IO: a bounded request reader,
//! the per-connection control state machine (OPTIONS, DESCRIBE, SETUP, PLAY,
//! GET_PARAMETER, TEARDOWN), the SDP of an H.264 track and the RTP/RTCP headers the
//! camera writes. No sockets, no clock: the driver (`camera`) feeds bytes in and writes
//! what comes out.
//!
//! A load generator, not a general server: one media session per connection, one video
//! track (`trackID=0`), no authentication, unicast only.

use corecast::media::Track;
use std::fmt::Write as _;

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest request body accepted (then skipped: the camera needs none).
pub const MAX_BODY: usize = 8 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 32;
/// Most bytes the reader holds; a peer that sends more without completing a request is
/// cut off.
pub const MAX_BUFFER: usize = 32 * 1024;
/// Session time-out announced in `Session: id;timeout=` (seconds).
pub const SESSION_TIMEOUT_S: u64 = 60;
/// RTP payload type of the video track.
pub const PAYLOAD_TYPE: u8 = 0x60;
/// RTP header size without CSRCs or extensions.
pub const RTP_HEADER: usize = 12;
/// `$`, channel and 16-bit length before an interleaved packet (RFC 2326 §10.12).
pub const INTERLEAVED_HEADER: usize = 4;
/// Size of a sender report without report blocks.
pub const SR_LEN: usize = 28;
/// Methods the camera answers, for `Public:`.
pub const PUBLIC: &str = "OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER, TEARDOWN";

/// Why the reader gave up on a connection: it answers 400 and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No end of the request head within [`MAX_HEAD`] bytes.
    #[error("request head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    /// More than [`MAX_HEADERS`] headers.
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// `Content-Length` above [`MAX_BODY`] or not a number.
    #[error("bad or too large Content-Length {0:?}")]
    BadLength(String),
    /// The request line is not `METHOD URI RTSP/1.0`, or a header line has no colon.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The peer sent more than [`MAX_BUFFER`] bytes the reader could not consume.
    #[error("more than {MAX_BUFFER} bytes buffered")]
    Overflow,
}

/// One RTSP request (the body, if any, is skipped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `OPTIONS`, `DESCRIBE`, ...
    pub method: String,
    /// The request URI as sent.
    pub uri: String,
    /// Header names and values, in order, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The session id the request names (`Session: id[;timeout=..]`).
    pub fn session(&self) -> Option<&str> {
        self.header("Session")
            .map(|s| s.split(';').next().unwrap_or("").trim())
    }
}

/// Reads requests from a connection's bytes, skipping interleaved `$` frames (RTCP
/// receiver reports over TCP). Bounded: see [`MAX_BUFFER`].
#[derive(Debug, Default)]
pub struct RequestReader {
    buf: Vec<u8>,
    /// Bytes of an interleaved frame or a body still to skip.
    skip: usize,
    /// Interleaved frames skipped (the peer is alive).
    skipped_frames: u64,
}

impl RequestReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Interleaved frames skipped so far.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped_frames
    }

    /// Adds bytes read from the connection.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), ParseError> {
        let n = self.skip.min(data.len());
        self.skip -= n;
        data = &data[n..];
        if self.buf.len() + data.len() > MAX_BUFFER {
            return Err(ParseError::Overflow);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete request, `Ok(None)` if more bytes are needed.
    pub fn next_request(&mut self) -> Result<Option<Request>, ParseError> {
        loop {
            let n = self.skip.min(self.buf.len());
            self.skip -= n;
            self.buf.drain(..n);
            if self.skip > 0 || self.buf.is_empty() {
                return Ok(None);
            }
            if self.buf[0] == b'$' {
                let Some(h) = self.buf.get(..INTERLEAVED_HEADER) else {
                    return Ok(None);
                };
                self.skip = INTERLEAVED_HEADER + usize::from(u16::from_be_bytes([h[2], h[3]]));
                self.skipped_frames += 1;
                continue;
            }
            // Stray line breaks between requests are allowed.
            if self.buf[0] == b'\r' || self.buf[0] == b'\n' {
                self.skip = 1;
                continue;
            }
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                if self.buf.len() > MAX_HEAD {
                    return Err(ParseError::HeadTooLong);
                }
                return Ok(None);
            };
            if end > MAX_HEAD {
                return Err(ParseError::HeadTooLong);
            }
            let req = parse_head(&self.buf[..end])?;
            let body = match req.header("Content-Length") {
                None => 0,
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if n <= MAX_BODY => n,
                    _ => return Err(ParseError::BadLength(v.to_owned())),
                },
            };
            self.skip = end + 4 + body;
            return Ok(Some(req));
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8]) -> Result<Request, ParseError> {
    let text = std::str::from_utf8(head)
        .map_err(|_| ParseError::Malformed("request head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Malformed(format!("request line {line:?}")));
    };
    if version != "RTSP/1.0" {
        return Err(ParseError::Malformed(format!("version {version:?}")));
    }
    let mut headers = Vec::new();
    for l in lines {
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| ParseError::Malformed(format!("header line {l:?}")))?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    Ok(Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        headers,
    })
}

/// Where a session's RTP and RTCP go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Interleaved in the RTSP connection on these channels.
    Interleaved {
        /// Channel of RTP.
        rtp: u8,
        /// Channel of RTCP.
        rtcp: u8,
    },
    /// UDP to the client's ports (on the address of the RTSP connection).
    Udp {
        /// The client's RTP port.
        rtp: u16,
        /// The client's RTCP port.
        rtcp: u16,
    },
}

/// The first transport of a `Transport:` header the camera can serve: unicast
/// `RTP/AVP/TCP` (interleaved channels as asked, 0-1 if none) or `RTP/AVP[/UDP]` with a
/// `client_port`. `None`: nothing acceptable (461).
pub fn parse_transport(value: &str) -> Option<Transport> {
    value.split(',').find_map(|spec| {
        let mut params = spec.split(';').map(str::trim);
        let proto = params.next()?;
        let tcp = match proto.to_ascii_uppercase().as_str() {
            "RTP/AVP/TCP" => true,
            "RTP/AVP" | "RTP/AVP/UDP" => false,
            _ => return None,
        };
        let (mut channels, mut ports) = (None, None);
        for p in params {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match k.to_ascii_lowercase().as_str() {
                "multicast" => return None,
                "mode" if !v.trim_matches('"').eq_ignore_ascii_case("play") => return None,
                "interleaved" => channels = Some(pair(v, |a: u8| a.checked_add(1))?),
                "client_port" => ports = Some(pair(v, |a: u16| a.checked_add(1))?),
                _ => {}
            }
        }
        if tcp {
            let (rtp, rtcp) = channels.unwrap_or((0, 1));
            Some(Transport::Interleaved { rtp, rtcp })
        } else {
            let (rtp, rtcp) = ports?;
            (rtp != 0).then_some(Transport::Udp { rtp, rtcp })
        }
    })
}

/// `a-b` or `a` (then `b` = `next(a)`).
fn pair<T: std::str::FromStr + Copy>(v: &str, next: impl Fn(T) -> Option<T>) -> Option<(T, T)> {
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a = v.trim().parse().ok()?;
            Some((a, next(a)?))
        }
    }
}

/// The `Transport:` value of a SETUP reply.
pub fn transport_reply(t: Transport, server_ports: Option<(u16, u16)>, ssrc: u32) -> String {
    match t {
        Transport::Interleaved { rtp, rtcp } => {
            format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp};ssrc={ssrc:08X}")
        }
        Transport::Udp { rtp, rtcp } => {
            let (s0, s1) = server_ports.unwrap_or((0, 0));
            format!(
                "RTP/AVP;unicast;client_port={rtp}-{rtcp};server_port={s0}-{s1};ssrc={ssrc:08X}"
            )
        }
    }
}

/// What a connection awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlState {
    /// OPTIONS and DESCRIBE until a SETUP.
    ExpectSetup,
    /// Set up; waiting for PLAY.
    ExpectPlay(Transport),
    /// Sending media.
    Playing(Transport),
    /// TEARDOWN answered, or a fatal error: the driver closes after writing.
    Closing,
}

/// What the driver must do after writing a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// A session was set up with this transport.
    Setup(Transport),
    /// Start sending media (add `RTP-Info` to the reply first).
    Play,
    /// Stop sending and close the connection once the reply is written.
    Teardown,
}

/// A reply: status, headers (CSeq first) and body; `action` tells the driver what the
/// request changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// RTSP status code.
    pub status: u16,
    /// Headers other than Content-Length.
    pub headers: Vec<(&'static str, String)>,
    /// The body (SDP for DESCRIBE).
    pub body: String,
    /// What the driver does next.
    pub action: Action,
}

impl Reply {
    fn new(status: u16, cseq: Option<&str>) -> Reply {
        let mut headers = Vec::new();
        if let Some(c) = cseq {
            headers.push(("CSeq", c.to_owned()));
        }
        Reply {
            status,
            headers,
            body: String::new(),
            action: Action::None,
        }
    }

    /// Adds a header.
    pub fn header(&mut self, name: &'static str, value: String) {
        self.headers.push((name, value));
    }

    /// Appends the encoded reply to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut s = format!("RTSP/1.0 {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            let _ = write!(s, "{k}: {v}\r\n");
        }
        if !self.body.is_empty() || self.status == 200 {
            let _ = write!(s, "Content-Length: {}\r\n", self.body.len());
        }
        s.push_str("\r\n");
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(self.body.as_bytes());
    }
}

/// The reason phrase of a status code the camera sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        453 => "Not Enough Bandwidth",
        454 => "Session Not Found",
        455 => "Method Not Valid in This State",
        459 => "Aggregate Operation Not Allowed",
        461 => "Unsupported Transport",
        501 => "Not Implemented",
        _ => "Error",
    }
}

/// What a connection's replies need from the driver.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    /// The SDP DESCRIBE returns.
    pub sdp: &'a str,
    /// The camera's RTP and RTCP UDP ports, if it serves UDP.
    pub server_ports: Option<(u16, u16)>,
    /// The SSRC the session will send with.
    pub ssrc: u32,
    /// Whether another session may start (else SETUP gets 453).
    pub admit: bool,
}

/// One RTSP connection's control state: at most one media session.
#[derive(Debug, Clone)]
pub struct Control {
    state: ControlState,
    session_id: String,
}

impl Control {
    /// A connection whose session, once set up, is called `session_id`.
    pub fn new(session_id: String) -> Control {
        Control {
            state: ControlState::ExpectSetup,
            session_id,
        }
    }

    /// What the connection awaits.
    pub fn state(&self) -> ControlState {
        self.state
    }

    /// The reply to a request that could not be parsed; the connection closes after it.
    pub fn bad_request(&mut self) -> Reply {
        self.state = ControlState::Closing;
        let mut r = Reply::new(400, None);
        r.action = Action::Teardown;
        r
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Request, env: &Env<'_>) -> Reply {
        let cseq = req.header("CSeq");
        if cseq.is_none() {
            return Reply::new(400, None);
        }
        let session_ok = || req.session() == Some(self.session_id.as_str());
        let mut r = Reply::new(200, cseq);
        match req.method.as_str() {
            "OPTIONS" => r.header("Public", PUBLIC.into()),
            "DESCRIBE" => {
                let base = req.uri.trim_end_matches('/');
                r.header("Content-Base", format!("{base}/"));
                r.header("Content-Type", "application/sdp".into());
                r.body = env.sdp.to_owned();
            }
            "SETUP" => {
                if req.session().is_some() && !session_ok() {
                    r.status = 454;
                } else if self.state != ControlState::ExpectSetup {
                    // One track: a second SETUP has nothing to set up.
                    r.status = 459;
                } else if !env.admit {
                    r.status = 453;
                } else {
                    let t = req
                        .header("Transport")
                        .and_then(parse_transport)
                        .filter(|t| {
                            !matches!(t, Transport::Udp { .. }) || env.server_ports.is_some()
                        });
                    match t {
                        None => r.status = 461,
                        Some(t) => {
                            self.state = ControlState::ExpectPlay(t);
                            r.header("Transport", transport_reply(t, env.server_ports, env.ssrc));
                            r.header(
                                "Session",
                                format!("{};timeout={SESSION_TIMEOUT_S}", self.session_id),
                            );
                            r.action = Action::Setup(t);
                        }
                    }
                }
            }
            "PLAY" => {
                if !session_ok() {
                    r.status = 454;
                } else {
                    match self.state {
                        ControlState::ExpectPlay(t) => {
                            self.state = ControlState::Playing(t);
                            r.action = Action::Play;
                        }
                        ControlState::Playing(_) => {}
                        _ => r.status = 455,
                    }
                    if r.status == 200 {
                        r.header("Session", self.session_id.clone());
                        r.header("Range", "npt=0.000-".into());
                    }
                }
            }
            "GET_PARAMETER" => {
                if req.session().is_some() && !session_ok() {
                    r.status = 454;
                } else if req.session().is_some() {
                    r.header("Session", self.session_id.clone());
                }
            }
            "TEARDOWN" => {
                self.state = ControlState::Closing;
                r.action = Action::Teardown;
                if session_ok() {
                    r.header("Session", self.session_id.clone());
                }
            }
            _ => {
                r.status = 501;
                r.header("Public", PUBLIC.into());
            }
        }
        r
    }
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [
            c[0],
            c.get(1).copied().unwrap_or(0),
            c.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                out.push(char::from(ABC[(n >> shift & 0x3F) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The SDP of one H.264 track at `trackID=0` (RFC 6184 §8.2.1: packetization-mode 1,
/// profile-level-id and sprop-parameter-sets from the track's first SPS and PPS).
/// `None` if the track has no SPS or PPS.
pub fn sdp(track: &Track, fps: Option<f64>, bitrate_bps: f64, session_id: u64) -> Option<String> {
    let sps = track.params.sps.first()?;
    let pps = track.params.pps.first()?;
    let profile = sps.get(1..4)?;
    let mut s = String::new();
    let _ = write!(
        s,
        "v=0\r\no=- {session_id} 1 IN IP4 127.0.0.1\r\ns=corecast-load camera\r\n\
         c=IN IP4 0.0.0.0\r\nt=0 0\r\na=tool:corecast-load\r\na=control:*\r\n\
         m=video 0 RTP/AVP {PAYLOAD_TYPE}\r\nb=AS:{}\r\n\
         a=rtpmap:{PAYLOAD_TYPE} H264/90000\r\n\
         a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={:02X}{:02X}{:02X};\
         sprop-parameter-sets={},{}\r\n",
        (bitrate_bps / 1000.0).ceil() as u64,
        profile[0],
        profile[1],
        profile[2],
        base64(sps),
        base64(pps),
    );
    if let Some(f) = fps {
        let _ = write!(s, "a=framerate:{f:.2}\r\n");
    }
    if let (Some(w), Some(h)) = (track.width, track.height) {
        let _ = write!(s, "a=x-dimensions:{w},{h}\r\n");
    }
    s.push_str("a=control:trackID=0\r\n");
    Some(s)
}

/// An RTP header (version 2, no padding, extension or CSRC).
pub fn rtp_header(marker: bool, seq: u16, ts: u32, ssrc: u32) -> [u8; RTP_HEADER] {
    let mut h = [0u8; RTP_HEADER];
    h[0] = 0x80;
    h[1] = PAYLOAD_TYPE | if marker { 0x80 } else { 0 };
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

/// The 4 bytes before an interleaved packet of `len` bytes (at most 65535).
pub fn interleaved_header(channel: u8, len: usize) -> [u8; INTERLEAVED_HEADER] {
    let l = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
    [b'$', channel, l[0], l[1]]
}

/// An RTCP sender report without report blocks (RFC 3550 §6.4.1). `ntp` is the 64-bit
/// NTP timestamp of the moment `rtp_ts` stands for.
pub fn sender_report(ssrc: u32, ntp: u64, rtp_ts: u32, packets: u32, octets: u32) -> [u8; SR_LEN] {
    let mut p = [0u8; SR_LEN];
    p[0] = 0x80;
    p[1] = 0xC8; // SR
    p[2..4].copy_from_slice(&6u16.to_be_bytes()); // length in 32-bit words minus one
    p[4..8].copy_from_slice(&ssrc.to_be_bytes());
    p[8..16].copy_from_slice(&ntp.to_be_bytes());
    p[16..20].copy_from_slice(&rtp_ts.to_be_bytes());
    p[20..24].copy_from_slice(&packets.to_be_bytes());
    p[24..28].copy_from_slice(&octets.to_be_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use corecast::media::{Codec, TrackId};

    fn reader_with(data: &[u8]) -> RequestReader {
        let mut r = RequestReader::new();
        r.feed(data).unwrap();
        r
    }

    const SETUP_TCP: &str = "SETUP rtsp://127.0.0.1:8554/cam0/trackID=0 RTSP/1.0\r\nCSeq: 3\r\n\
        Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n";

    #[test]
    fn reads_requests_split_anywhere_and_skips_interleaved_frames() {
        let mut wire =
            b"OPTIONS rtsp://h/cam0 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: x\r\n\r\n".to_vec();
        wire.extend_from_slice(&[b'$', 1, 0, 3, 9, 9, 9]);
        wire.extend_from_slice(
            b"GET_PARAMETER rtsp://h/cam0 RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 4\r\n\r\nabcd",
        );
        wire.extend_from_slice(b"\r\nTEARDOWN rtsp://h/cam0 RTSP/1.0\r\nCSeq: 3\r\n\r\n");
        for split in 0..wire.len() {
            let mut r = RequestReader::new();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                r.feed(part).unwrap();
                while let Some(req) = r.next_request().unwrap() {
                    got.push((req.method.clone(), req.header("cseq").unwrap().to_owned()));
                }
            }
            assert_eq!(
                got,
                [
                    ("OPTIONS".to_owned(), "1".to_owned()),
                    ("GET_PARAMETER".into(), "2".into()),
                    ("TEARDOWN".into(), "3".into())
                ],
                "split at {split}"
            );
            assert_eq!(r.skipped_frames(), 1);
        }
    }

    #[test]
    fn reader_bounds_what_it_holds() {
        let mut r = reader_with(&vec![b'A'; MAX_HEAD + 1]);
        assert_eq!(r.next_request(), Err(ParseError::HeadTooLong));
        let mut r = RequestReader::new();
        assert_eq!(
            r.feed(&vec![b'A'; MAX_BUFFER + 1]),
            Err(ParseError::Overflow)
        );
        let mut r = reader_with(b"PLAY x RTSP/1.0\r\nContent-Length: 99999\r\n\r\n");
        assert!(matches!(r.next_request(), Err(ParseError::BadLength(_))));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X{i}: y\r\n")).collect();
        let mut r = reader_with(format!("PLAY x RTSP/1.0\r\n{many}\r\n").as_bytes());
        assert_eq!(r.next_request(), Err(ParseError::TooManyHeaders));
        let mut r = reader_with(b"GET / HTTP/1.1\r\n\r\n");
        assert!(matches!(r.next_request(), Err(ParseError::Malformed(_))));
        // A large interleaved frame is skipped without being buffered.
        let mut r = reader_with(&[b'$', 0, 0xFF, 0xFF]);
        assert_eq!(r.next_request(), Ok(None));
        r.feed(&vec![0; 0xFFFF]).unwrap();
        r.feed(SETUP_TCP.as_bytes()).unwrap();
        assert_eq!(r.next_request().unwrap().unwrap().method, "SETUP");
    }

    #[test]
    fn transports() {
        use Transport::*;
        let t = parse_transport;
        assert_eq!(
            t("RTP/AVP/TCP;unicast;interleaved=0-1"),
            Some(Interleaved { rtp: 0, rtcp: 1 })
        );
        assert_eq!(
            t("RTP/AVP/TCP;unicast;interleaved=4"),
            Some(Interleaved { rtp: 4, rtcp: 5 })
        );
        assert_eq!(
            t("RTP/AVP/TCP;unicast"),
            Some(Interleaved { rtp: 0, rtcp: 1 })
        );
        assert_eq!(
            t("RTP/AVP;unicast;client_port=5000-5001"),
            Some(Udp {
                rtp: 5000,
                rtcp: 5001
            })
        );
        assert_eq!(
            t("RTP/AVP/UDP;unicast;client_port=6000"),
            Some(Udp {
                rtp: 6000,
                rtcp: 6001
            })
        );
        // The first acceptable alternative wins.
        assert_eq!(
            t("RTP/AVP;multicast, RTP/AVP/TCP;interleaved=2-3"),
            Some(Interleaved { rtp: 2, rtcp: 3 })
        );
        assert_eq!(t("RTP/AVP;unicast"), None);
        assert_eq!(t("RTP/AVP;unicast;client_port=x-1"), None);
        assert_eq!(t("RTP/AVP/TCP;interleaved=255"), None);
        assert_eq!(t("RTP/AVP/TCP;unicast;mode=record"), None);
        assert_eq!(t("RAW/RAW/UDP;unicast"), None);
    }

    fn req(text: &str) -> Request {
        reader_with(text.as_bytes())
            .next_request()
            .unwrap()
            .unwrap()
    }

    fn env(sdp: &str) -> Env<'_> {
        Env {
            sdp,
            server_ports: Some((7000, 7001)),
            ssrc: 0xDEAD_BEEF,
            admit: true,
        }
    }

    fn encoded(r: &Reply) -> String {
        let mut out = Vec::new();
        r.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn control_walks_a_tcp_session() {
        let e = env("v=0\r\n");
        let mut c = Control::new("ABC".into());
        let r = c.handle(
            &req("OPTIONS rtsp://h/cam0 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            &e,
        );
        assert_eq!(
            encoded(&r),
            format!("RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: {PUBLIC}\r\nContent-Length: 0\r\n\r\n")
        );
        let r = c.handle(
            &req("DESCRIBE rtsp://h/cam0 RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
            &e,
        );
        assert!(encoded(&r).contains("Content-Base: rtsp://h/cam0/\r\n"));
        assert!(encoded(&r).ends_with("Content-Length: 5\r\n\r\nv=0\r\n"));
        // PLAY before SETUP: no session.
        let r = c.handle(&req("PLAY rtsp://h/cam0/ RTSP/1.0\r\nCSeq: 3\r\n\r\n"), &e);
        assert_eq!(r.status, 454);
        let r = c.handle(&req(SETUP_TCP), &e);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.action,
            Action::Setup(Transport::Interleaved { rtp: 0, rtcp: 1 })
        );
        let text = encoded(&r);
        assert!(text.contains("Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=DEADBEEF\r\n"));
        assert!(text.contains("Session: ABC;timeout=60\r\n"));
        // A second SETUP on the session.
        let r = c.handle(
            &req(&SETUP_TCP.replace("CSeq: 3", "CSeq: 4\r\nSession: ABC")),
            &e,
        );
        assert_eq!(r.status, 459);
        let r = c.handle(
            &req("PLAY rtsp://h/cam0/ RTSP/1.0\r\nCSeq: 5\r\nSession: nope\r\n\r\n"),
            &e,
        );
        assert_eq!(r.status, 454);
        let r = c.handle(&req("PLAY rtsp://h/cam0/ RTSP/1.0\r\nCSeq: 6\r\nSession: ABC\r\nRange: npt=0.000-\r\n\r\n"), &e);
        assert_eq!((r.status, r.action), (200, Action::Play));
        assert!(matches!(c.state(), ControlState::Playing(_)));
        let r = c.handle(
            &req("GET_PARAMETER rtsp://h/cam0/ RTSP/1.0\r\nCSeq: 7\r\nSession: ABC\r\n\r\n"),
            &e,
        );
        assert_eq!((r.status, r.action), (200, Action::None));
        let r = c.handle(
            &req("PAUSE rtsp://h/cam0/ RTSP/1.0\r\nCSeq: 8\r\nSession: ABC\r\n\r\n"),
            &e,
        );
        assert_eq!(r.status, 501);
        let r = c.handle(
            &req("TEARDOWN rtsp://h/cam0/ RTSP/1.0\r\nCSeq: 9\r\nSession: ABC\r\n\r\n"),
            &e,
        );
        assert_eq!((r.status, r.action), (200, Action::Teardown));
        assert_eq!(c.state(), ControlState::Closing);
    }

    #[test]
    fn control_answers_udp_refusals_and_missing_cseq() {
        let mut e = env("");
        let mut c = Control::new("S".into());
        let udp = "SETUP rtsp://h/c/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n";
        e.admit = false;
        assert_eq!(c.handle(&req(udp), &e).status, 453);
        e.admit = true;
        e.server_ports = None;
        assert_eq!(c.handle(&req(udp), &e).status, 461);
        e.server_ports = Some((7000, 7001));
        let r = c.handle(&req(udp), &e);
        assert!(encoded(&r).contains(
            "Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=7000-7001;ssrc=DEADBEEF\r\n"
        ));
        assert_eq!(
            r.action,
            Action::Setup(Transport::Udp {
                rtp: 5000,
                rtcp: 5001
            })
        );
        let r = c.handle(&req("OPTIONS * RTSP/1.0\r\nUser-Agent: x\r\n\r\n"), &e);
        assert_eq!(encoded(&r), "RTSP/1.0 400 Bad Request\r\n\r\n");
        let r = c.bad_request();
        assert_eq!(r.action, Action::Teardown);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let v = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (i, o) in v {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn sdp_names_the_track() {
        let mut t = Track::new(TrackId(0), Codec::H264, 90_000);
        assert_eq!(sdp(&t, None, 0.0, 1), None);
        t.params.sps = vec![Bytes::from_static(&[0x67, 0x64, 0x00, 0x1F, 0xAC])];
        t.params.pps = vec![Bytes::from_static(&[0x68, 0xEE, 0x3C, 0x80])];
        t.width = Some(1280);
        t.height = Some(720);
        let s = sdp(&t, Some(30.0), 2_000_000.0, 42).unwrap();
        assert!(s.contains(
            "a=fmtp:96 packetization-mode=1;profile-level-id=64001F;sprop-parameter-sets=Z2QAH6w=,aO48gA==\r\n"
        ), "{s}");
        assert!(s.contains("a=rtpmap:96 H264/90000\r\n"));
        assert!(s.contains("b=AS:2000\r\n"));
        assert!(s.ends_with("a=control:trackID=0\r\n"));
    }

    #[test]
    fn packet_headers() {
        let h = rtp_header(true, 0x1234, 0xAABB_CCDD, 0x0102_0304);
        assert_eq!(
            h,
            [0x80, 0xE0, 0x12, 0x34, 0xAA, 0xBB, 0xCC, 0xDD, 1, 2, 3, 4]
        );
        assert_eq!(rtp_header(false, 0, 0, 0)[1], 0x60);
        assert_eq!(interleaved_header(1, 0x0102), [b'$', 1, 1, 2]);
        let sr = sender_report(7, 0x0102_0304_0506_0708, 9, 10, 11);
        assert_eq!(&sr[..8], &[0x80, 200, 0, 6, 0, 0, 0, 7]);
        assert_eq!(&sr[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&sr[16..], &[0, 0, 0, 9, 0, 0, 0, 10, 0, 0, 0, 11]);
    }
}
