//! The one SDP reader (RFC 8866, formerly RFC 4566): a session description read into its
//! session and media sections, with the attributes corecast acts on parsed once
//! (`a=rtpmap`, `a=fmtp`, the direction, `a=mid`, `a=control`).
//!
//! Pure and lenient: CRLF or LF, a byte-order mark, bytes that are not UTF-8 (replaced)
//! and lines it does not know are accepted; only a missing `v=` line is an error. Bounded:
//! line length, media sections, formats, `rtpmap`/`fmtp` entries and the other attributes
//! kept per section. Both users build on it: [`crate::rtsp::proto::sdp`] (a camera's
//! DESCRIBE answer into tracks) and [`crate::webrtc::offer`] (a viewer's offer into payload
//! types); each applies its own rules on top (which payload type counts, what is an error).

/// Most media sections read.
pub const MAX_MEDIA: usize = 16;
/// Longest line accepted, in bytes.
pub const MAX_LINE: usize = 4096;
/// Most formats (payload types) kept from one `m=` line.
pub const MAX_FORMATS: usize = 64;
/// Most `a=rtpmap` entries kept per media section (those that parse).
pub const MAX_RTPMAPS: usize = 64;
/// Most `a=fmtp` entries kept per media section (those whose payload type parses).
pub const MAX_FMTPS: usize = 64;
/// Most parameters kept from one `a=fmtp` line.
pub const MAX_FMTP_PARAMS: usize = 64;
/// Most other attributes kept per section (session or media).
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest `a=mid` kept, in characters.
pub const MAX_MID: usize = 32;

/// Why a text cannot be read as SDP at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// No line at all.
    #[error("empty session description")]
    Empty,
    /// The first line is not `v=`; it starts with the text given (at most 40 characters).
    #[error("not SDP (it starts with {0:?})")]
    NotSdp(String),
    /// A line over [`MAX_LINE`] bytes.
    #[error("SDP line {line} is longer than {MAX_LINE} bytes")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
    },
    /// More than [`MAX_MEDIA`] `m=` sections.
    #[error("SDP has more than {MAX_MEDIA} media sections")]
    TooManyMedia,
}

/// The direction attribute of a section (RFC 8866 §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv`.
    SendRecv,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=sendonly`.
    SendOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction an attribute name stands for.
    pub fn from_name(name: &str) -> Option<Direction> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "recvonly" => Direction::RecvOnly,
            "sendonly" => Direction::SendOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// Whether the writer of the description receives media (`recvonly`, `sendrecv`).
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Whether the writer of the description sends media (`sendonly`, `sendrecv`).
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// `a=rtpmap:<payload type> <encoding>/<clock rate>[/<channels>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// RTP payload type.
    pub payload_type: u8,
    /// Encoding name as sent (`H264`, `opus`, `MPEG4-GENERIC`, `vnd.onvif.metadata`).
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels, if given.
    pub channels: Option<u8>,
}

/// `a=fmtp:<payload type> <key>=<value>;...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// RTP payload type.
    pub payload_type: u8,
    /// The parameters in order: keys lower-cased, values trimmed (empty for a bare key).
    pub params: Vec<(String, String)>,
}

impl Fmtp {
    /// The value of parameter `key` (any case).
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// An attribute corecast does not parse: `a=<name>[:<value>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The name, as sent.
    pub name: String,
    /// The value, trimmed; empty for a property attribute.
    pub value: String,
}

/// A session description: the session-level lines, then the media sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The `v=` value (`0`).
    pub version: String,
    /// Session-level `a=control` (the first one).
    pub control: Option<String>,
    /// Session-level direction (the last one), the default of every section.
    pub direction: Option<Direction>,
    /// Other session-level attributes, in order.
    pub attributes: Vec<Attribute>,
    /// The media sections in order.
    pub media: Vec<MediaSection>,
}

/// One `m=` section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaSection {
    /// Media type: `video`, `audio`, `application`, ... (empty if the `m=` line is).
    pub media: String,
    /// Port (0 if absent or not a number; RTSP negotiates the transport in SETUP).
    pub port: u16,
    /// Transport protocol (`RTP/AVP`, `UDP/TLS/RTP/SAVPF`); empty if absent.
    pub protocol: String,
    /// The formats of the `m=` line as sent (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `a=control` (the first one).
    pub control: Option<String>,
    /// Media-level direction (the last one).
    pub direction: Option<Direction>,
    /// `a=mid` (the last one, at most [`MAX_MID`] characters).
    pub mid: Option<String>,
    /// The `a=rtpmap` lines that parse, in order.
    pub rtpmaps: Vec<RtpMap>,
    /// The `a=fmtp` lines whose payload type parses, in order.
    pub fmtps: Vec<Fmtp>,
    /// Other attributes, in order.
    pub attributes: Vec<Attribute>,
}

impl MediaSection {
    /// The first `a=rtpmap` of payload type `pt`.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The first `a=fmtp` of payload type `pt`.
    pub fn fmtp(&self, pt: u8) -> Option<&Fmtp> {
        self.fmtps.iter().find(|f| f.payload_type == pt)
    }

    /// Reads `<media> <port>[/<count>] <proto> <fmt> ...`; fields that do not parse stay
    /// empty.
    fn from_line(value: &str) -> MediaSection {
        let mut f = value.split_ascii_whitespace();
        let media = f.next().unwrap_or("").to_string();
        let port = f
            .next()
            .and_then(|p| p.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let protocol = f.next().unwrap_or("").to_string();
        let formats = f.take(MAX_FORMATS).map(str::to_string).collect();
        MediaSection {
            media,
            port,
            protocol,
            formats,
            ..MediaSection::default()
        }
    }

    fn add_attribute(&mut self, name: &str, value: &str) {
        match name {
            "control" => {
                self.control.get_or_insert_with(|| value.to_string());
            }
            "mid" => self.mid = Some(value.chars().take(MAX_MID).collect()),
            "rtpmap" => {
                if self.rtpmaps.len() < MAX_RTPMAPS
                    && let Some(m) = parse_rtpmap(value)
                {
                    self.rtpmaps.push(m);
                }
            }
            "fmtp" => {
                if self.fmtps.len() < MAX_FMTPS
                    && let Some(f) = parse_fmtp(value)
                {
                    self.fmtps.push(f);
                }
            }
            _ => match Direction::from_name(name) {
                Some(d) => self.direction = Some(d),
                None => push_other(&mut self.attributes, name, value),
            },
        }
    }
}

impl Session {
    fn add_attribute(&mut self, name: &str, value: &str) {
        if name == "control" {
            self.control.get_or_insert_with(|| value.to_string());
        } else if let Some(d) = Direction::from_name(name) {
            self.direction = Some(d);
        } else {
            push_other(&mut self.attributes, name, value);
        }
    }
}

fn push_other(attributes: &mut Vec<Attribute>, name: &str, value: &str) {
    if attributes.len() < MAX_ATTRIBUTES {
        attributes.push(Attribute {
            name: name.to_string(),
            value: value.to_string(),
        });
    }
}

/// Reads a session description. Lines end with LF or CRLF; surrounding white space and
/// a byte-order mark are ignored, as are empty lines, lines without `=` and line types
/// other than `v`, `m` and `a`.
pub fn parse(body: &[u8]) -> Result<Session, SdpError> {
    let mut session: Option<Session> = None;
    for (n, raw) in body.split(|b| *b == b'\n').enumerate() {
        if raw.len() > MAX_LINE {
            return Err(SdpError::LineTooLong { line: n + 1 });
        }
        let text = String::from_utf8_lossy(raw);
        let line = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        if line.is_empty() {
            continue;
        }
        let Some(s) = session.as_mut() else {
            let Some(version) = line.strip_prefix("v=") else {
                return Err(SdpError::NotSdp(line.chars().take(40).collect()));
            };
            session = Some(Session {
                version: version.trim().to_string(),
                ..Session::default()
            });
            continue;
        };
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match kind {
            "m" => {
                if s.media.len() == MAX_MEDIA {
                    return Err(SdpError::TooManyMedia);
                }
                s.media.push(MediaSection::from_line(value));
            }
            "a" => {
                let (name, rest) = value.split_once(':').unwrap_or((value, ""));
                match s.media.last_mut() {
                    Some(m) => m.add_attribute(name, rest.trim()),
                    None => s.add_attribute(name, rest.trim()),
                }
            }
            _ => {}
        }
    }
    session.ok_or(SdpError::Empty)
}

/// `<pt> <encoding>/<rate>[/<channels>]`; `None` unless the payload type, a non-empty
/// encoding and the rate parse.
fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, params) = value.split_once([' ', '\t'])?;
    let payload_type = pt.parse().ok()?;
    let mut parts = params.trim().split('/').map(str::trim);
    let encoding = parts.next().filter(|e| !e.is_empty())?.to_string();
    let clock_rate = parts.next()?.parse().ok()?;
    let channels = parts.next().and_then(|c| c.parse().ok());
    Some(RtpMap {
        payload_type,
        encoding,
        clock_rate,
        channels,
    })
}

/// `<pt> <key>[=<value>];...`; `None` unless the payload type parses.
fn parse_fmtp(value: &str) -> Option<Fmtp> {
    let (pt, params) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    let payload_type = pt.parse().ok()?;
    let params = params
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .take(MAX_FMTP_PARAMS)
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Some(Fmtp {
        payload_type,
        params,
    })
}

/// The static RTP/AVP payload types (RFC 3551 tables 4 and 5) that need no `a=rtpmap`.
pub fn static_rtpmap(payload_type: u8) -> Option<RtpMap> {
    let (encoding, clock_rate, channels) = match payload_type {
        0 => ("PCMU", 8000, Some(1)),
        3 => ("GSM", 8000, Some(1)),
        8 => ("PCMA", 8000, Some(1)),
        9 => ("G722", 8000, Some(1)),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, Some(1)),
        14 => ("MPA", 90000, None),
        18 => ("G729", 8000, Some(1)),
        26 => ("JPEG", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        34 => ("H263", 90000, None),
        _ => return None,
    };
    Some(RtpMap {
        payload_type,
        encoding: encoding.to_string(),
        clock_rate,
        channels,
    })
}

#[cfg(test)]
mod tests;
