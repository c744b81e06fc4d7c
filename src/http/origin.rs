//! Browser boundaries: which web pages may read the API and open `/ws`.
//!
//! A browser names the page behind a cross-site request in `Origin`. corecast's own page
//! is same-origin (the `Origin`'s `host:port` is the request's `Host`, and its scheme
//! that of the listener the request came in on: `http` on `http.listen`, `https` on
//! `http.tls_listen`, so a page of one port is foreign on the other);
//! other origins are allowed only when `http.allow_origins` lists them (`"*"`: any).
//! What the rule decides:
//! - `/api/*` answers CORS (`Access-Control-Allow-Origin: <origin>`, `Vary: Origin`)
//!   only to listed origins, so another site's script cannot read it;
//! - `/ws` upgrades from a foreign origin get 403 before the upgrade;
//! - WHEP answers CORS to any origin (players on other sites need it) and never allows
//!   credentials (`Access-Control-Allow-Origin: *`, no `Allow-Credentials`), see
//!   [`super::whep`].
//!
//! A request without `Origin` is not from a browser page (curl, ffmpeg, players): the
//! rule does not apply to it.

use super::proto::{Request, Response};

/// What the `Origin` of a request is to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginKind<'a> {
    /// No `Origin` header: not a cross-site browser request.
    Absent,
    /// The server's own origin.
    Same,
    /// An origin `http.allow_origins` lists: the entry that matched (`"*"` or the origin).
    Listed(&'a str),
    /// Any other origin (including `null`).
    Foreign,
}

impl OriginKind<'_> {
    /// Whether a page of this origin may use `/api` and `/ws`.
    pub fn allowed(self) -> bool {
        !matches!(self, OriginKind::Foreign)
    }
}

/// The scheme of the listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP (`http.listen`).
    Http,
    /// HTTPS (`http.tls_listen`).
    Https,
}

impl Scheme {
    /// The scheme's name in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    /// The port an authority without one means.
    fn default_port(self) -> &'static str {
        match self {
            Scheme::Http => ":80",
            Scheme::Https => ":443",
        }
    }
}

/// Classifies `req`'s `Origin` against its `Host`, the scheme it came in over and the
/// `allow` list.
pub fn classify<'a>(req: &Request, allow: &'a [String], scheme: Scheme) -> OriginKind<'a> {
    let Some(origin) = req.header("Origin").map(str::trim) else {
        return OriginKind::Absent;
    };
    if same_origin(origin, req.header("Host"), scheme) {
        return OriginKind::Same;
    }
    let origin = origin.trim_end_matches('/');
    match allow
        .iter()
        .find(|a| *a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        Some(a) => OriginKind::Listed(a),
        None => OriginKind::Foreign,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the server the request reached at
/// `host` (the `Host` header) over `scheme`. The scheme's default port is implied on
/// either side.
fn same_origin(origin: &str, host: Option<&str>, scheme: Scheme) -> bool {
    let (Some(host), Some(scheme_end)) = (host, origin.find("://")) else {
        return false;
    };
    let (theirs, rest) = (&origin[..scheme_end], &origin[scheme_end + 3..]);
    let strip = |a: &str| {
        a.strip_suffix(scheme.default_port())
            .unwrap_or(a)
            .to_owned()
    };
    theirs.eq_ignore_ascii_case(scheme.as_str())
        && strip(rest).eq_ignore_ascii_case(&strip(host.trim()))
}

/// Adds the API's CORS answer for `req` to `r`: the origin echoed (or `*` for a `"*"`
/// entry) when listed, nothing otherwise; always `Vary: Origin`, since the answer
/// depends on it.
pub fn api_cors(r: Response, req: &Request, allow: &[String], scheme: Scheme) -> Response {
    let r = r.header("Vary", "Origin");
    match (classify(req, allow, scheme), req.header("Origin")) {
        (OriginKind::Listed("*"), _) => r.header("Access-Control-Allow-Origin", "*"),
        (OriginKind::Listed(_), Some(origin)) => {
            r.header("Access-Control-Allow-Origin", origin.trim())
        }
        _ => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> Request {
        let mut raw = String::from("GET /api/v1/streams HTTP/1.1\r\n");
        for (n, v) in headers {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        let mut buf = bytes::BytesMut::from(raw.as_bytes());
        super::super::proto::RequestParser::new(Default::default())
            .parse(&mut buf)
            .expect("parses")
            .expect("complete")
    }

    fn allow(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn same_origin_is_host_and_port_over_http() {
        let none = allow(&[]);
        let k =
            |o: &str, h: &str| classify(&req(&[("Host", h), ("Origin", o)]), &none, Scheme::Http);
        assert_eq!(
            k("http://127.0.0.1:8080", "127.0.0.1:8080"),
            OriginKind::Same
        );
        assert_eq!(k("http://Cam.Local", "cam.local:80"), OriginKind::Same);
        assert_eq!(k("http://cam.local:80", "cam.local"), OriginKind::Same);
        assert_eq!(k("http://[::1]:8080", "[::1]:8080"), OriginKind::Same);
        assert_eq!(
            k("http://127.0.0.1:8081", "127.0.0.1:8080"),
            OriginKind::Foreign
        );
        assert_eq!(
            k("https://127.0.0.1:8080", "127.0.0.1:8080"),
            OriginKind::Foreign
        );
        assert_eq!(
            k("http://evil.example", "127.0.0.1:8080"),
            OriginKind::Foreign
        );
        assert_eq!(k("null", "127.0.0.1:8080"), OriginKind::Foreign);
        assert_eq!(
            k("http://127.0.0.1:8080.evil", "127.0.0.1:8080"),
            OriginKind::Foreign
        );
        let r = req(&[("Origin", "http://127.0.0.1:8080")]);
        assert_eq!(
            classify(&r, &none, Scheme::Http),
            OriginKind::Foreign,
            "no Host: not same"
        );
        assert_eq!(
            classify(&req(&[("Host", "x")]), &none, Scheme::Http),
            OriginKind::Absent
        );
    }

    #[test]
    fn same_origin_over_https_is_the_https_page_of_the_tls_port() {
        let none = allow(&[]);
        let k =
            |o: &str, h: &str| classify(&req(&[("Host", h), ("Origin", o)]), &none, Scheme::Https);
        assert_eq!(
            k("https://127.0.0.1:8443", "127.0.0.1:8443"),
            OriginKind::Same
        );
        assert_eq!(k("https://cam.local", "cam.local:443"), OriginKind::Same);
        assert_eq!(k("https://cam.local:443", "cam.local"), OriginKind::Same);
        // The plain page of the same host and port is another origin, and so is the
        // HTTPS page of another port.
        assert_eq!(
            k("http://127.0.0.1:8443", "127.0.0.1:8443"),
            OriginKind::Foreign
        );
        assert_eq!(
            k("https://127.0.0.1:8080", "127.0.0.1:8443"),
            OriginKind::Foreign
        );
        assert_eq!(k("https://cam.local:80", "cam.local"), OriginKind::Foreign);
    }

    #[test]
    fn listed_origins_and_the_wildcard() {
        let list = allow(&["https://Player.example", "http://b.example:8000/"]);
        let k = |o: &str| classify(&req(&[("Host", "h:1"), ("Origin", o)]), &list, Scheme::Http);
        assert_eq!(
            k("https://player.example"),
            OriginKind::Listed("https://Player.example")
        );
        assert_eq!(
            k("http://b.example:8000"),
            OriginKind::Listed("http://b.example:8000/")
        );
        assert_eq!(k("http://player.example"), OriginKind::Foreign);
        assert_eq!(k("http://b.example"), OriginKind::Foreign);
        let any = allow(&["*"]);
        let r = req(&[("Host", "h:1"), ("Origin", "http://x.example")]);
        assert_eq!(classify(&r, &any, Scheme::Http), OriginKind::Listed("*"));
        assert!(classify(&r, &any, Scheme::Https).allowed());
        assert!(!classify(&r, &list, Scheme::Http).allowed());
    }

    #[test]
    fn api_cors_echoes_listed_origins_only() {
        let list = allow(&["http://a.example"]);
        let acao = |r: &Response| {
            r.headers
                .iter()
                .find(|(n, _)| n == "Access-Control-Allow-Origin")
                .map(|(_, v)| v.clone())
        };
        let listed = req(&[("Host", "h:1"), ("Origin", "http://a.example")]);
        let r = api_cors(Response::new(200), &listed, &list, Scheme::Http);
        assert_eq!(acao(&r).as_deref(), Some("http://a.example"));
        assert!(r.headers.iter().any(|(n, v)| n == "Vary" && v == "Origin"));
        let foreign = req(&[("Host", "h:1"), ("Origin", "http://b.example")]);
        assert_eq!(
            acao(&api_cors(Response::new(200), &foreign, &list, Scheme::Http)),
            None
        );
        let same = req(&[("Host", "h:1"), ("Origin", "http://h:1")]);
        assert_eq!(
            acao(&api_cors(Response::new(200), &same, &list, Scheme::Http)),
            None
        );
        let any = allow(&["*"]);
        assert_eq!(
            acao(&api_cors(Response::new(200), &foreign, &any, Scheme::Http)).as_deref(),
            Some("*")
        );
        assert!(
            !api_cors(Response::new(200), &listed, &list, Scheme::Http)
                .headers
                .iter()
                .any(|(n, _)| n.starts_with("Access-Control-Allow-Credentials"))
        );
    }
}
