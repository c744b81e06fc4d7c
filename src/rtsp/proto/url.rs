//! `rtsp://` URLs as operators write them for cameras, and control-URL resolution
//! (RFC 2326 §3.2, appendix C.1.1).
//!
//! Lenient where cameras and their manuals are: a password may hold raw `:` and `@` (the
//! last `@` before the path ends the user part), an empty port means 554, the path and
//! query are kept byte for byte (cameras compare them literally). Strict where it matters
//! for the wire: no whitespace or control characters, so a URL cannot smuggle a header.

use std::fmt;

/// The RTSP port when the URL names none (RFC 2326 §3.2).
pub const DEFAULT_PORT: u16 = 554;
/// Longest URL accepted.
const MAX_URL_LEN: usize = 4096;
/// Query parameters whose values [`RtspUrl::redacted`] hides (cameras that take
/// credentials in the query: `?user=admin&password=...`).
const SECRET_QUERY_KEYS: [&str; 5] = ["password", "passwd", "pass", "pwd", "token"];

/// Why a camera URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `rtsp://...`.
    #[error("camera URL must start with rtsp:// (got {0:?})")]
    UnsupportedScheme(String),
    /// Nothing between `rtsp://` (or the credentials) and the path.
    #[error("camera URL has no host")]
    NoHost,
    /// A host with characters no host name or address has.
    #[error("camera URL has an invalid host {0:?}")]
    BadHost(String),
    /// Port not a number in 1..=65535.
    #[error("camera URL has an invalid port {0:?}")]
    BadPort(String),
    /// A `%` not followed by two hex digits, or credentials that are not UTF-8.
    #[error("camera URL has bad percent-encoding in the user name or password")]
    BadPercentEncoding,
    /// Whitespace or a control character.
    #[error("camera URL contains whitespace or a control character (write a space as %20)")]
    BadCharacter,
    /// Longer than 4 KiB.
    #[error("camera URL longer than {MAX_URL_LEN} bytes")]
    TooLong,
}

/// A parsed `rtsp://[user[:password]@]host[:port][/path][?query]`.
///
/// `Debug` and `Display` never show the credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RtspUrl {
    /// Host name or address; IPv6 without the brackets.
    pub host: String,
    /// TCP port (554 when the URL has none).
    pub port: u16,
    /// Percent-decoded user name, if the URL has one.
    pub user: Option<String>,
    /// Percent-decoded password, if the URL has one.
    pub password: Option<String>,
    /// The path as written, from its `/` (empty if the URL has none).
    pub path: String,
    /// The query as written, without the `?`.
    pub query: Option<String>,
}

impl RtspUrl {
    /// Parses a camera URL.
    pub fn parse(s: &str) -> Result<RtspUrl, UrlError> {
        let s = s.trim();
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::BadCharacter);
        }
        let rest = strip_prefix_ci(s, "rtsp://").ok_or_else(|| {
            UrlError::UnsupportedScheme(s.split("://").next().unwrap_or(s).to_string())
        })?;
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(auth_end);
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (Some(percent_decode(u)?), Some(percent_decode(p)?)),
                None => (Some(percent_decode(info)?), None),
            },
        };
        let (host, port) = split_host_port(hostport)?;
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (tail, None),
        };
        Ok(RtspUrl {
            host,
            port,
            user,
            password,
            path: path.to_string(),
            query,
        })
    }

    /// What goes in a request line and the Digest `uri`: `rtsp://host:port/path?query`,
    /// without credentials.
    pub fn request_uri(&self) -> String {
        let mut s = format!("rtsp://{}:{}{}", self.host_for_uri(), self.port, self.path);
        if let Some(q) = &self.query {
            s.push('?');
            s.push_str(q);
        }
        s
    }

    /// The URL for logs and the API: no user name or password, and the values of
    /// password-like query parameters replaced by `***`.
    pub fn redacted(&self) -> String {
        let mut s = format!("rtsp://{}:{}{}", self.host_for_uri(), self.port, self.path);
        if let Some(q) = &self.query {
            s.push('?');
            let parts: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _))
                        if SECRET_QUERY_KEYS
                            .iter()
                            .any(|secret| k.eq_ignore_ascii_case(secret)) =>
                    {
                        format!("{k}=***")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            s.push_str(&parts.join("&"));
        }
        s
    }

    /// Whether `other` names the same host (ports may differ): addresses compared as
    /// addresses (`::1` and `0:0::1` are one), names ASCII case-insensitively, without a
    /// trailing dot. Names are not resolved: a name and its address are different hosts.
    pub fn same_host(&self, other: &RtspUrl) -> bool {
        let norm = |h: &str| h.trim_end_matches('.').to_ascii_lowercase();
        match (
            self.host.parse::<std::net::IpAddr>(),
            other.host.parse::<std::net::IpAddr>(),
        ) {
            (Ok(a), Ok(b)) => a == b,
            (Err(_), Err(_)) => norm(&self.host) == norm(&other.host),
            _ => false,
        }
    }

    /// The host as it appears in a URL: IPv6 addresses in brackets.
    pub fn host_for_uri(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

impl fmt::Display for RtspUrl {
    /// The [redacted](RtspUrl::redacted) form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RtspUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtspUrl")
            .field("url", &self.redacted())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A URL from a peer (a redirect's `Location`) made fit for logs and the API: the
/// [redacted](RtspUrl::redacted) form when it parses; otherwise without anything between
/// `://` and the last `@` of the authority, without the query, at most 200 characters.
pub fn redact_location(location: &str) -> String {
    if let Ok(u) = RtspUrl::parse(location) {
        return u.redacted();
    }
    let (scheme, rest) = match location.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("", location),
    };
    let rest = rest.split('?').next().unwrap_or("");
    let auth_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(auth_end);
    let host = authority.rsplit('@').next().unwrap_or("");
    let mut s = if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    };
    s.retain(|c| !c.is_control());
    if let Some((cut, _)) = s.char_indices().nth(200) {
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// Resolves a `a=control` value against a base URL (RFC 2326 C.1.1): an absolute
/// `rtsp://` control as is, `*` or nothing means the base itself, anything else is
/// appended to the base with exactly one `/` between them — what cameras expect (ffmpeg
/// and GStreamer resolve the same way, also when the base has a query:
/// `.../realmonitor?channel=1&subtype=0/` + `trackID=0`).
///
/// The base is the DESCRIBE response's `Content-Base`, else its `Content-Location`, else
/// the DESCRIBE request URL.
pub fn join(base: &str, control: &str) -> String {
    let control = control.trim();
    if control.is_empty() || control == "*" {
        return base.to_string();
    }
    if is_absolute(control) {
        return control.to_string();
    }
    match (base.ends_with('/'), control.starts_with('/')) {
        (true, true) => format!("{base}{}", &control[1..]),
        (false, false) => format!("{base}/{control}"),
        _ => format!("{base}{control}"),
    }
}

/// Whether a control value is an absolute RTSP URL.
pub fn is_absolute(control: &str) -> bool {
    ["rtsp://", "rtsps://", "rtspu://"]
        .iter()
        .any(|p| strip_prefix_ci(control, p).is_some())
}

/// `s` without `prefix`, compared ASCII case-insensitively.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn split_host_port(hostport: &str) -> Result<(String, u16), UrlError> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| UrlError::BadHost(hostport.to_string()))?;
        let ok = !addr.is_empty()
            && addr.contains(':')
            && addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.' | '%'));
        if !ok {
            return Err(UrlError::BadHost(hostport.to_string()));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| UrlError::BadHost(hostport.to_string()))?,
            ),
        };
        (addr, port)
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    if !host.contains(':')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(UrlError::BadHost(host.to_string()));
    }
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(UrlError::BadPort(p.to_string())),
        },
    };
    Ok((host.to_string(), port))
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(UrlError::BadPercentEncoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::BadPercentEncoding)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return Err(UrlError::BadPercentEncoding);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::BadPercentEncoding)?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::BadPercentEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hikvision_url_with_encoded_password_containing_colon_and_at() {
        let u = RtspUrl::parse("rtsp://admin:p%40ss:w0rd@192.0.2.10/Streaming/Channels/101")
            .expect("parses");
        assert_eq!(u.host, "192.0.2.10");
        assert_eq!(u.port, 554);
        assert_eq!(u.user.as_deref(), Some("admin"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w0rd"));
        assert_eq!(
            u.request_uri(),
            "rtsp://192.0.2.10:554/Streaming/Channels/101"
        );
        assert_eq!(
            u.to_string(),
            "rtsp://192.0.2.10:554/Streaming/Channels/101"
        );
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("w0rd"), "{dbg}");
    }

    #[test]
    fn raw_at_in_password_splits_at_the_last_at() {
        let u = RtspUrl::parse("rtsp://admin:a@b@cam.local:8554/live").expect("parses");
        assert_eq!(u.password.as_deref(), Some("a@b"));
        assert_eq!((u.host.as_str(), u.port), ("cam.local", 8554));
        assert_eq!(u.path, "/live");
    }

    #[test]
    fn dahua_query_kept_exactly_and_user_without_password() {
        let u = RtspUrl::parse(
            "RTSP://viewer@192.0.2.20:554/cam/realmonitor?channel=1&subtype=0&unicast=true",
        )
        .expect("parses");
        assert_eq!(u.user.as_deref(), Some("viewer"));
        assert_eq!(u.password, None);
        assert_eq!(
            u.request_uri(),
            "rtsp://192.0.2.20:554/cam/realmonitor?channel=1&subtype=0&unicast=true"
        );
    }

    #[test]
    fn ipv6_host_default_port_and_no_path() {
        let u = RtspUrl::parse("rtsp://[::1]").expect("parses");
        assert_eq!((u.host.as_str(), u.port), ("::1", 554));
        assert_eq!(u.request_uri(), "rtsp://[::1]:554");
        let u = RtspUrl::parse("rtsp://u:p@[2001:db8::5]:10554/s?x").expect("parses");
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::5", 10554));
        assert_eq!(u.request_uri(), "rtsp://[2001:db8::5]:10554/s?x");
        let u = RtspUrl::parse("rtsp://cam:?a=1").expect("empty port is the default");
        assert_eq!(
            (u.port, u.path.as_str(), u.query.as_deref()),
            (554, "", Some("a=1"))
        );
    }

    #[test]
    fn redacted_hides_password_query_values() {
        let u =
            RtspUrl::parse("rtsp://192.0.2.3/videoMain?user=admin&pwd=secret&x=1").expect("parses");
        assert_eq!(
            u.redacted(),
            "rtsp://192.0.2.3:554/videoMain?user=admin&pwd=***&x=1"
        );
        assert!(u.request_uri().contains("pwd=secret"));
    }

    #[test]
    fn bad_urls_are_rejected_with_a_reason() {
        let err = |s: &str| RtspUrl::parse(s).expect_err(s);
        assert!(matches!(err("http://cam/"), UrlError::UnsupportedScheme(s) if s == "http"));
        assert!(matches!(
            err("rtsps://cam/"),
            UrlError::UnsupportedScheme(_)
        ));
        assert_eq!(err("rtsp:///path"), UrlError::NoHost);
        assert_eq!(err("rtsp://u:p@/path"), UrlError::NoHost);
        assert!(matches!(err("rtsp://cam:99999/"), UrlError::BadPort(_)));
        assert!(matches!(err("rtsp://cam:0/"), UrlError::BadPort(_)));
        assert!(matches!(err("rtsp://cam:+5/"), UrlError::BadPort(_)));
        assert!(matches!(err("rtsp://[::1/"), UrlError::BadHost(_)));
        assert!(matches!(err("rtsp://[zz]/"), UrlError::BadHost(_)));
        assert!(matches!(err("rtsp://ca$m/"), UrlError::BadHost(_)));
        assert_eq!(err("rtsp://u:%4@cam/"), UrlError::BadPercentEncoding);
        assert_eq!(err("rtsp://u:%ff@cam/"), UrlError::BadPercentEncoding);
        assert_eq!(err("rtsp://cam/a b"), UrlError::BadCharacter);
        assert_eq!(err("rtsp://cam/a\r\nX: y"), UrlError::BadCharacter);
        assert_eq!(
            err(&format!("rtsp://cam/{}", "a".repeat(5000))),
            UrlError::TooLong
        );
        assert_eq!(err("rtsp://é/"), UrlError::BadHost("é".to_string()));
    }

    #[test]
    fn control_urls_resolve_like_ffmpeg_and_gstreamer() {
        let base = "rtsp://192.0.2.10:554/Streaming/Channels/101/";
        assert_eq!(join(base, "trackID=1"), format!("{base}trackID=1"));
        assert_eq!(join(base, "*"), base);
        assert_eq!(join(base, ""), base);
        assert_eq!(join(base, "/trackID=1"), format!("{base}trackID=1"));
        assert_eq!(join("rtsp://cam/live", "track1"), "rtsp://cam/live/track1");
        assert_eq!(join("rtsp://cam/live", "/track1"), "rtsp://cam/live/track1");
        assert_eq!(
            join(
                "rtsp://192.0.2.20:554/cam/realmonitor?channel=1&subtype=0/",
                "trackID=0"
            ),
            "rtsp://192.0.2.20:554/cam/realmonitor?channel=1&subtype=0/trackID=0"
        );
        let abs = "RTSP://192.0.2.30/axis-media/media.amp/trackID=1?videocodec=h264";
        assert_eq!(join(base, abs), abs);
    }

    #[test]
    fn same_host_compares_parsed_hosts_not_ports() {
        let u = |s: &str| RtspUrl::parse(s).expect("parses");
        let cam = u("rtsp://admin:pw@Camera.Example/live");
        assert!(cam.same_host(&u("rtsp://camera.example:8554/other")));
        assert!(cam.same_host(&u("rtsp://CAMERA.example./x")));
        assert!(!cam.same_host(&u("rtsp://camera.example.evil/x")));
        assert!(!cam.same_host(&u("rtsp://camera.example@evil.example/x")));
        let v6 = u("rtsp://[::1]/a");
        assert!(v6.same_host(&u("rtsp://[0:0::1]:10554/b")));
        assert!(!v6.same_host(&u("rtsp://127.0.0.1/a")));
        assert!(!u("rtsp://127.0.0.1/").same_host(&u("rtsp://127.0.0.2/")));
        assert!(!u("rtsp://localhost/").same_host(&u("rtsp://127.0.0.1/")));
    }

    #[test]
    fn redacted_locations_never_show_credentials() {
        assert_eq!(
            redact_location("rtsp://u:secret@192.0.2.20:8554/real?password=pw&ch=1"),
            "rtsp://192.0.2.20:8554/real?password=***&ch=1"
        );
        // Unparseable: the authority's user part and the query go anyway.
        let r = redact_location("http://u:secret@host/p?token=t");
        assert_eq!(r, "http://host/p");
        let r = redact_location("rtsp://u:sec ret@host/p");
        assert!(!r.contains("sec"), "{r}");
        let r = redact_location(&format!("rtsp://a b/{}", "x".repeat(500)));
        assert!(r.len() < 210, "{r}");
        assert!(!redact_location("u:pw@host\r\n/x").contains("pw"));
    }
}
