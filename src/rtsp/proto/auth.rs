//! RTSP authentication as cameras do it: HTTP Basic and Digest (RFC 2617, MD5 and
//! MD5-sess; `qop=auth`, `auth-int` on our bodiless requests, or none), chosen from the
//! `WWW-Authenticate` challenges of a 401.
//!
//! Pure: the client nonce comes from a seed the caller passes in.

use md5::{Digest, Md5};
use std::fmt;

/// Most challenges read from one 401 (each `WWW-Authenticate` header may hold several).
const MAX_CHALLENGES: usize = 16;
/// Most parameters read per challenge.
const MAX_PARAMS: usize = 32;

/// A user name and password for a camera.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// Why the camera's challenge cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A 401 without any `WWW-Authenticate` header.
    #[error("camera answered 401 without a WWW-Authenticate challenge")]
    NoChallenge,
    /// Only schemes or algorithms corecast does not implement.
    #[error("camera only offers authentication corecast does not support: {0}")]
    UnsupportedAuth(String),
    /// A challenge that cannot be parsed, or a Digest challenge without realm or nonce.
    #[error("camera sent an unreadable WWW-Authenticate challenge: {0:?}")]
    Malformed(String),
}

/// The Digest `qop` the client answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// `auth`: integrity of method and URI.
    Auth,
    /// `auth-int`: also the body (always empty in the requests this client sends).
    AuthInt,
}

/// A Digest challenge (RFC 2617 §3.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back.
    pub opaque: Option<String>,
    /// The `qop` chosen from those offered (`auth` over `auth-int`); `None` for an
    /// RFC 2069 challenge without `qop`.
    pub qop: Option<Qop>,
    /// `algorithm` as the camera spelled it, echoed back; absent means MD5.
    pub algorithm: Option<String>,
    /// Whether the algorithm is MD5-sess.
    pub sess: bool,
    /// `stale=true`: the nonce expired but the credentials were right.
    pub stale: bool,
}

/// The challenge a client answers, picked from all that a 401 offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// HTTP Basic.
    Basic {
        /// `realm`, if given.
        realm: Option<String>,
    },
    /// HTTP Digest.
    Digest(DigestChallenge),
}

/// One parsed `scheme param=value, ...` challenge, before interpretation.
struct RawChallenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl RawChallenge {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Picks the challenge to answer from all `WWW-Authenticate` values of a 401: Digest MD5
/// over Digest MD5-sess over Basic; other schemes (NTLM, Negotiate) and algorithms
/// (SHA-256) are passed over, and only an error when nothing else is offered.
pub fn parse_challenges<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Result<Challenge, AuthError> {
    let mut raw = Vec::new();
    for v in values {
        parse_challenge_list(v, &mut raw)?;
    }
    if raw.is_empty() {
        return Err(AuthError::NoChallenge);
    }
    let mut best: Option<(u8, Challenge)> = None;
    let mut unsupported = Vec::new();
    for c in &raw {
        let candidate = if c.scheme.eq_ignore_ascii_case("digest") {
            let algorithm = c.param("algorithm").map(str::to_string);
            let sess = match algorithm.as_deref() {
                None => false,
                Some(a) if a.eq_ignore_ascii_case("md5") => false,
                Some(a) if a.eq_ignore_ascii_case("md5-sess") => true,
                Some(a) => {
                    unsupported.push(format!("Digest algorithm={a}"));
                    continue;
                }
            };
            let missing = |what: &str| AuthError::Malformed(format!("Digest without {what}"));
            let realm = c.param("realm").ok_or_else(|| missing("realm"))?;
            let nonce = c.param("nonce").ok_or_else(|| missing("nonce"))?;
            let offered: Vec<&str> = c
                .param("qop")
                .map(|q| q.split(',').map(str::trim).collect())
                .unwrap_or_default();
            let has = |q: &str| offered.iter().any(|o| o.eq_ignore_ascii_case(q));
            // A qop list with neither value is answered the RFC 2069 way, as cameras
            // that send one accept.
            let qop = if has("auth") {
                Some(Qop::Auth)
            } else if has("auth-int") {
                Some(Qop::AuthInt)
            } else {
                None
            };
            let rank = if sess { 1 } else { 0 };
            let digest = DigestChallenge {
                realm: realm.to_string(),
                nonce: nonce.to_string(),
                opaque: c.param("opaque").map(str::to_string),
                qop,
                algorithm,
                sess,
                stale: c
                    .param("stale")
                    .is_some_and(|s| s.eq_ignore_ascii_case("true")),
            };
            (rank, Challenge::Digest(digest))
        } else if c.scheme.eq_ignore_ascii_case("basic") {
            (
                2,
                Challenge::Basic {
                    realm: c.param("realm").map(str::to_string),
                },
            )
        } else {
            unsupported.push(c.scheme.clone());
            continue;
        };
        if best.as_ref().is_none_or(|(r, _)| candidate.0 < *r) {
            best = Some(candidate);
        }
    }
    best.map(|(_, c)| c)
        .ok_or_else(|| AuthError::UnsupportedAuth(unsupported.join(", ")))
}

/// Parses one header value, which may hold several comma-separated challenges
/// (`Digest realm="a", nonce="b", Basic realm="a"`), appending to `out`.
fn parse_challenge_list(value: &str, out: &mut Vec<RawChallenge>) -> Result<(), AuthError> {
    let bad = || AuthError::Malformed(value.chars().take(120).collect());
    let mut p = Cursor { s: value, i: 0 };
    loop {
        p.skip(|c| c == ',' || c.is_ascii_whitespace());
        if p.at_end() {
            return Ok(());
        }
        let scheme = p.token();
        if scheme.is_empty() {
            return Err(bad());
        }
        if out.len() == MAX_CHALLENGES {
            return Err(bad());
        }
        let mut params = Vec::new();
        loop {
            p.skip(|c| c == ',' || c.is_ascii_whitespace());
            let mark = p.i;
            let key = p.token();
            p.skip(|c| c.is_ascii_whitespace());
            if key.is_empty() || !p.eat('=') {
                // The next challenge's scheme (or the end).
                p.i = mark;
                break;
            }
            p.skip(|c| c.is_ascii_whitespace());
            let val = if p.eat('"') {
                p.quoted().ok_or_else(bad)?
            } else {
                p.take_while(|c| c != ',' && !c.is_ascii_whitespace())
                    .to_string()
            };
            if params.len() == MAX_PARAMS {
                return Err(bad());
            }
            params.push((key.to_string(), val));
        }
        out.push(RawChallenge {
            scheme: scheme.to_string(),
            params,
        });
    }
}

/// A position in a header value.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.i..).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let n = rest.find(|c| !f(c)).unwrap_or(rest.len());
        self.i += n;
        &rest[..n]
    }

    fn skip(&mut self, f: impl Fn(char) -> bool) {
        self.take_while(f);
    }

    /// An RFC 2616 token.
    fn token(&mut self) -> &'a str {
        self.take_while(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.i += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// The rest of a quoted string after its opening quote, unescaped; `None` if the
    /// closing quote is missing.
    fn quoted(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    self.i += at + 1;
                    return Some(out);
                }
                '\\' => out.push(chars.next()?.1),
                c => out.push(c),
            }
        }
        None
    }
}

/// Builds `Authorization` header values for one camera session.
#[derive(Debug, Clone)]
pub struct Authenticator {
    creds: Credentials,
    scheme: Scheme,
}

#[derive(Debug, Clone)]
enum Scheme {
    Basic,
    Digest {
        challenge: DigestChallenge,
        cnonce: String,
        /// Requests sent with this nonce so far.
        nc: u32,
    },
}

impl Authenticator {
    /// An authenticator answering `challenge`; `seed` makes the client nonce.
    pub fn new(creds: Credentials, challenge: Challenge, seed: u64) -> Authenticator {
        let scheme = match challenge {
            Challenge::Basic { .. } => Scheme::Basic,
            Challenge::Digest(challenge) => Scheme::Digest {
                challenge,
                cnonce: format!("{:016x}", splitmix64(seed)),
                nc: 0,
            },
        };
        Authenticator { creds, scheme }
    }

    /// The user name sent.
    pub fn user(&self) -> &str {
        &self.creds.user
    }

    /// The `Authorization` header value for a request (`uri` exactly as in the request
    /// line). Each Digest call with `qop` counts one more request under the nonce.
    pub fn authorization(&mut self, method: &str, uri: &str) -> String {
        let Scheme::Digest {
            challenge: c,
            cnonce,
            nc,
        } = &mut self.scheme
        else {
            let raw = format!("{}:{}", self.creds.user, self.creds.password);
            return format!("Basic {}", base64_encode(raw.as_bytes()));
        };
        *nc = nc.wrapping_add(1);
        let nc_hex = format!("{:08x}", *nc);
        let mut ha1 = md5_hex(&[&self.creds.user, &c.realm, &self.creds.password]);
        if c.sess {
            ha1 = md5_hex(&[&ha1, &c.nonce, cnonce]);
        }
        let ha2 = match c.qop {
            Some(Qop::AuthInt) => md5_hex(&[method, uri, &md5_hex(&[""])]),
            _ => md5_hex(&[method, uri]),
        };
        let qop = match c.qop {
            Some(Qop::Auth) => Some("auth"),
            Some(Qop::AuthInt) => Some("auth-int"),
            None => None,
        };
        let response = match qop {
            Some(q) => md5_hex(&[&ha1, &c.nonce, &nc_hex, cnonce, q, &ha2]),
            None => md5_hex(&[&ha1, &c.nonce, &ha2]),
        };
        let mut h = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"",
            quote(&self.creds.user),
            quote(&c.realm),
            quote(&c.nonce),
            quote(uri)
        );
        if let Some(q) = qop {
            h.push_str(&format!(", qop={q}, nc={nc_hex}, cnonce=\"{cnonce}\""));
        } else if c.sess {
            h.push_str(&format!(", cnonce=\"{cnonce}\""));
        }
        h.push_str(&format!(", response=\"{response}\""));
        if let Some(o) = &c.opaque {
            h.push_str(&format!(", opaque=\"{}\"", quote(o)));
        }
        if let Some(a) = &c.algorithm {
            h.push_str(&format!(", algorithm={a}"));
        }
        h
    }
}

/// Escapes `"` and `\` for a quoted-string.
fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Lower-case hex MD5 of the parts joined by `:`.
fn md5_hex(parts: &[&str]) -> String {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// SplitMix64: a seed into well-mixed bits for the client nonce.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |v: u32| char::from(ALPHABET[(v & 0x3F) as usize]);
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, password: &str) -> Credentials {
        Credentials {
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// Pulls `name=value` or `name="value"` out of an Authorization header.
    fn field<'a>(header: &'a str, name: &str) -> Option<&'a str> {
        let at = header.find(&format!(" {name}="))? + name.len() + 2;
        let rest = &header[at..];
        match rest.strip_prefix('"') {
            Some(q) => q.split('"').next(),
            None => rest.split(',').next(),
        }
    }

    #[test]
    fn basic_rfc2617_aladdin() {
        let ch = parse_challenges(["Basic realm=\"WallyWorld\""]).expect("parses");
        assert_eq!(
            ch,
            Challenge::Basic {
                realm: Some("WallyWorld".to_string())
            }
        );
        let mut a = Authenticator::new(creds("Aladdin", "open sesame"), ch, 0);
        assert_eq!(
            a.authorization("DESCRIBE", "rtsp://cam/"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(&[0xFB, 0xFF]), "+/8=");
    }

    #[test]
    fn digest_rfc2617_section_3_5_example() {
        let ch = parse_challenges([
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        ])
        .expect("parses");
        let Challenge::Digest(d) = &ch else {
            panic!("digest expected");
        };
        assert_eq!(d.qop, Some(Qop::Auth));
        assert!(!d.stale && !d.sess && d.algorithm.is_none());
        let mut a = Authenticator::new(creds("Mufasa", "Circle Of Life"), ch, 0);
        if let Scheme::Digest { cnonce, .. } = &mut a.scheme {
            *cnonce = "0a4f113b".to_string();
        }
        let h = a.authorization("GET", "/dir/index.html");
        assert_eq!(
            h,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
             response=\"6629fae49393a05397450978507c4ef1\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
        let second = a.authorization("GET", "/dir/index.html");
        assert_eq!(field(&second, "nc"), Some("00000002"));
        assert_ne!(field(&second, "response"), field(&h, "response"));
    }

    /// A Hikvision-style RFC 2069 challenge (no qop). Expected response from
    /// python3 hashlib:
    /// ha1 = md5("admin:IP Camera(A1234):12345") = df71bebd05806522f69b4dd0475e4b2c,
    /// ha2 = md5("DESCRIBE:rtsp://192.0.2.10:554/Streaming/Channels/101")
    ///     = 59c9ba340b04a37a23b93712eb567766,
    /// md5(ha1 + ":4e6a6b5a4d7a4e6a4e5441354e6a4d3d:" + ha2)
    ///     = 6f025904eb3705365bc7621092d41d0e.
    #[test]
    fn digest_without_qop_hikvision_style() {
        let ch = parse_challenges([
            "Digest realm=\"IP Camera(A1234)\", nonce=\"4e6a6b5a4d7a4e6a4e5441354e6a4d3d\", stale=\"FALSE\"",
            "Basic realm=\"IP Camera(A1234)\"",
        ])
        .expect("parses");
        let mut a = Authenticator::new(creds("admin", "12345"), ch, 7);
        let h = a.authorization("DESCRIBE", "rtsp://192.0.2.10:554/Streaming/Channels/101");
        assert_eq!(
            h,
            "Digest username=\"admin\", realm=\"IP Camera(A1234)\", \
             nonce=\"4e6a6b5a4d7a4e6a4e5441354e6a4d3d\", \
             uri=\"rtsp://192.0.2.10:554/Streaming/Channels/101\", \
             response=\"6f025904eb3705365bc7621092d41d0e\""
        );
    }

    /// MD5-sess with qop=auth-int (empty body). Expected from python3 hashlib:
    /// ha1 = md5(md5("u:r:p") + ":n:c0ffee"), ha2 = md5("PLAY:/x:" + md5("")),
    /// response = md5(ha1 + ":n:00000001:c0ffee:auth-int:" + ha2)
    ///          = 08e072748b8237ba8950942ee0acd4e0.
    #[test]
    fn digest_md5_sess_auth_int() {
        let ch = parse_challenges(["Digest realm=r, nonce=n, qop=auth-int, algorithm=MD5-sess"])
            .expect("parses");
        let mut a = Authenticator::new(creds("u", "p"), ch, 0);
        if let Scheme::Digest { cnonce, .. } = &mut a.scheme {
            *cnonce = "c0ffee".to_string();
        }
        let h = a.authorization("PLAY", "/x");
        assert_eq!(field(&h, "qop"), Some("auth-int"));
        assert_eq!(field(&h, "algorithm"), Some("MD5-sess"));
        assert_eq!(
            field(&h, "response"),
            Some("08e072748b8237ba8950942ee0acd4e0")
        );
    }

    #[test]
    fn digest_preferred_over_basic_whatever_the_order() {
        for values in [
            vec!["Basic realm=\"x\"", "Digest realm=\"x\", nonce=\"y\""],
            vec!["Digest realm=\"x\", nonce=\"y\"", "Basic realm=\"x\""],
            vec!["Basic realm=\"x\", Digest realm=\"x\", nonce=\"y\""],
        ] {
            let ch = parse_challenges(values).expect("parses");
            assert!(matches!(ch, Challenge::Digest(_)), "{ch:?}");
        }
    }

    #[test]
    fn quoted_commas_escapes_stale_and_case() {
        let ch = parse_challenges([
            "DIGEST REALM=\"a, \\\"b\\\"\",NONCE=\"n,1\" , stale=TRUE,algorithm=md5,opaque=\"o\"",
        ])
        .expect("parses");
        let Challenge::Digest(d) = ch else {
            panic!("digest");
        };
        assert_eq!(d.realm, "a, \"b\"");
        assert_eq!(d.nonce, "n,1");
        assert!(d.stale);
        assert_eq!(d.algorithm.as_deref(), Some("md5"));
        assert_eq!(d.opaque.as_deref(), Some("o"));
        let mut a = Authenticator::new(creds("a\"dmin", "x"), Challenge::Digest(d), 0);
        let h = a.authorization("OPTIONS", "rtsp://cam:554/");
        assert!(
            h.starts_with("Digest username=\"a\\\"dmin\", realm=\"a, \\\"b\\\"\""),
            "{h}"
        );
        assert!(h.ends_with(", opaque=\"o\", algorithm=md5"), "{h}");
    }

    #[test]
    fn unsupported_and_malformed_challenges() {
        assert_eq!(
            parse_challenges(["Digest realm=x, nonce=y, algorithm=SHA-256", "NTLM"]),
            Err(AuthError::UnsupportedAuth(
                "Digest algorithm=SHA-256, NTLM".to_string()
            ))
        );
        // SHA-256 offered next to MD5: MD5 is answered.
        let ch = parse_challenges([
            "Digest realm=x, nonce=y, algorithm=SHA-256",
            "Digest realm=x, nonce=z",
        ])
        .expect("parses");
        assert!(matches!(ch, Challenge::Digest(d) if d.nonce == "z"));
        assert_eq!(parse_challenges([]), Err(AuthError::NoChallenge));
        assert_eq!(parse_challenges(["  "]), Err(AuthError::NoChallenge));
        assert!(matches!(
            parse_challenges(["Digest realm=\"x"]),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            parse_challenges(["Digest realm=x"]),
            Err(AuthError::Malformed(m)) if m.contains("nonce")
        ));
        assert!(matches!(
            parse_challenges(["=x"]),
            Err(AuthError::Malformed(_))
        ));
        let many = "Basic, ".repeat(40);
        assert!(matches!(
            parse_challenges([many.as_str()]),
            Err(AuthError::Malformed(_))
        ));
    }

    /// Random strings over the characters that matter to the challenge parser.
    #[test]
    fn random_challenges_never_panic() {
        let alphabet: Vec<char> = "Digest Basic realm=nonce=qop=\"\\,, =auth-int stale=TRUE é\t"
            .chars()
            .collect();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..(x % 40) {
                let r = x.rotate_left(i as u32 * 5) ^ i;
                s.push(alphabet[(r % alphabet.len() as u64) as usize]);
            }
            if let Ok(c) = parse_challenges([s.as_str()]) {
                let mut a = Authenticator::new(creds("u", "p"), c, x);
                assert!(!a.authorization("OPTIONS", "*").is_empty());
            }
        }
    }

    #[test]
    fn credentials_debug_hides_the_password() {
        let s = format!("{:?}", creds("admin", "hunter2"));
        assert!(s.contains("admin") && !s.contains("hunter2"), "{s}");
    }
}
