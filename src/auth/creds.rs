//! Credential extraction from what peers send: pure parsers with no I/O.
//!
//! - HTTP: `Authorization: Basic base64(user:pass)`, `Authorization: Bearer JWT`, and
//!   `?token=JWT` in the query (for pages that cannot set headers).
//! - RTMP: the query of the stream name or of the app (`rtmp://h/live/cam?user=U&pass=P`,
//!   `?token=JWT`, and the legacy `?key=K`).

use base64::Engine;

/// Longest credential value taken from a peer (a user, password, key or token); longer
/// ones are dropped, as if not given.
pub const MAX_CREDENTIAL: usize = 8 * 1024;

/// What a request carried to prove who it comes from. All fields absent: anonymous.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name (Basic or `?user=`).
    pub user: Option<String>,
    /// Password (Basic or `?pass=`).
    pub pass: Option<String>,
    /// A JWT (`Bearer` or `?token=`).
    pub token: Option<String>,
    /// A publish key (RTMP `?key=`).
    pub key: Option<String>,
}

impl Credentials {
    /// Whether nothing at all was given.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.pass.is_none() && self.token.is_none() && self.key.is_none()
    }

    /// Fills what is still missing from `other` (the first source given wins).
    pub fn or(mut self, other: Credentials) -> Credentials {
        self.user = self.user.or(other.user);
        self.pass = self.pass.or(other.pass);
        self.token = self.token.or(other.token);
        self.key = self.key.or(other.key);
        self
    }
}

fn bounded(s: String) -> Option<String> {
    (s.len() <= MAX_CREDENTIAL).then_some(s)
}

/// Decodes the `%XX` escapes of a query value; `None` when the result is not UTF-8 or an
/// escape is broken. A `+` stays a `+` (these are URLs, not HTML forms: a password or
/// publish key with a `+` typed into an encoder's URL means the `+`).
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Credentials in a query string (`user`, `pass`, `token`, `key`; the first of each wins).
pub fn from_query(query: &str) -> Credentials {
    let mut c = Credentials::default();
    for pair in query.split('&') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let slot = match k {
            "user" => &mut c.user,
            "pass" => &mut c.pass,
            "token" => &mut c.token,
            "key" => &mut c.key,
            _ => continue,
        };
        if slot.is_none() {
            *slot = percent_decode(v).and_then(bounded);
        }
    }
    c
}

/// Credentials of an `Authorization` header value: `Basic` (user and password) or
/// `Bearer` (a token). Anything else, or a malformed value, gives nothing.
pub fn from_authorization(value: &str) -> Credentials {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    let mut c = Credentials::default();
    if scheme.eq_ignore_ascii_case("Basic") {
        if rest.len() > 2 * MAX_CREDENTIAL {
            return c;
        }
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return c;
        };
        let Ok(text) = String::from_utf8(raw) else {
            return c;
        };
        if let Some((u, p)) = text.split_once(':') {
            c.user = bounded(u.to_owned());
            c.pass = bounded(p.to_owned());
        }
    } else if scheme.eq_ignore_ascii_case("Bearer") && !rest.is_empty() {
        // WHIP clients (OBS) send one "Bearer token" string: `user:password` there is a
        // user's credentials (a JWT never holds a colon); anything else is a token.
        match rest.split_once(':') {
            Some((u, p)) if !u.is_empty() => {
                c.user = bounded(u.to_owned());
                c.pass = bounded(p.to_owned());
            }
            _ => c.token = bounded(rest.to_owned()),
        }
    }
    c
}

/// Credentials of an HTTP request: the `Authorization` header, else `?token=` (a query
/// `user`/`pass` is not taken over HTTP: it would end up in logs and browser history).
pub fn from_http(authorization: Option<&str>, query: Option<&str>) -> Credentials {
    let header = authorization.map(from_authorization).unwrap_or_default();
    if !header.is_empty() {
        return header;
    }
    Credentials {
        token: query.and_then(|q| from_query(q).token),
        ..Credentials::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn basic_header() {
        // "obs:s3cret:x" — a password may hold colons.
        let c = from_authorization("Basic b2JzOnMzY3JldDp4");
        assert_eq!((c.user, c.pass), (s("obs"), s("s3cret:x")));
        let c = from_authorization("basic   b2JzOg==");
        assert_eq!((c.user, c.pass), (s("obs"), s("")));
        assert!(from_authorization("Basic !!!").is_empty());
        assert!(from_authorization("Basic b2Jz").is_empty(), "no colon");
        assert!(from_authorization("Basic //79").is_empty(), "not UTF-8");
        assert!(from_authorization("Digest abc").is_empty());
        assert!(from_authorization("").is_empty());
    }

    #[test]
    fn bearer_header() {
        let c = from_authorization("Bearer aaa.bbb.ccc");
        assert_eq!(c.token, s("aaa.bbb.ccc"));
        assert!(from_authorization("Bearer").is_empty());
        assert!(from_authorization("Bearer    ").is_empty());
        // A WHIP client's "Bearer user:password".
        let c = from_authorization("Bearer obs:s3:cret");
        assert_eq!((c.user, c.pass, c.token), (s("obs"), s("s3:cret"), None));
        assert_eq!(from_authorization("Bearer :x").token, s(":x"));
    }

    #[test]
    fn query_values() {
        let c = from_query("user=obs&pass=a%20b%2Bc&token=t&key=k&user=other");
        assert_eq!(c.user, s("obs"));
        assert_eq!(c.pass, s("a b+c"));
        assert_eq!(c.token, s("t"));
        assert_eq!(c.key, s("k"));
        let c = from_query("pass=%zz&user&=x&&key=a+b");
        assert_eq!(c.pass, None, "broken escape");
        assert_eq!(c.user, None);
        assert_eq!(c.key, s("a+b"));
        assert_eq!(
            from_query("pass=%E2%82"),
            Credentials::default(),
            "not UTF-8"
        );
        assert_eq!(from_query("pass=%"), Credentials::default());
    }

    #[test]
    fn oversized_values_are_dropped() {
        let long = "a".repeat(MAX_CREDENTIAL + 1);
        assert!(from_query(&format!("token={long}")).is_empty());
        assert!(from_authorization(&format!("Bearer {long}")).is_empty());
    }

    #[test]
    fn http_header_wins_over_query_token() {
        let c = from_http(Some("Bearer h"), Some("token=q"));
        assert_eq!(c.token, s("h"));
        let c = from_http(None, Some("user=u&pass=p&token=q"));
        assert_eq!(
            c,
            Credentials {
                token: s("q"),
                ..Default::default()
            }
        );
        let c = from_http(Some("Basic dTpw"), Some("token=q"));
        assert_eq!((c.user, c.pass, c.token), (s("u"), s("p"), None));
    }
}
