//! [`StreamPath`]: the one name of a stream, with one normalisation rule for every entry
//! point (RTMP app/key, WHEP/WHIP, WebSocket, the API, the configuration).
//!
//! The rule, in order:
//! 1. a query string (`?…`) is not part of the path and is cut off;
//! 2. `%XX` escapes are decoded (an escape that is not two hex digits is an error);
//! 3. leading and trailing `/` are trimmed;
//! 4. what is left must be 1..=256 bytes of `A-Z a-z 0-9 / - _ . ~`, with no empty,
//!    `.` or `..` segment (so `live//x` is refused, not guessed at).
//!
//! Paths are case-sensitive, as stream keys are: `Live/Cam` and `live/cam` are two
//! streams.
//!
//! # The alias rule, and who may claim a path
//!
//! RTMP clients always send an app and a stream name, so a stream is also reachable
//! under any one app: a player of `APP/NAME` gets `APP/NAME` if that is published, else
//! `NAME` ([`StreamPath::alias`], [`StreamPath::resolve`]). The API advertises
//! `rtmp://HOST/live/demo` for the one-segment path `demo`.
//!
//! So that a player using an advertised URL always gets the stream it was given, a path
//! and its alias never both name a stream. A publish of `P` is refused
//! ([`StreamPath::check_claim`]) when a configured or published stream `Q` exists with
//! - `Q == P` (a configured source, or a stream already published there; a configured
//!   path publishers push to, with its `publish_key`, is the one exception: that is
//!   where its publisher belongs);
//! - `Q == alias(P)`: `live/demo` while `demo` exists (`live/demo` is the RTMP name of
//!   `demo`; `live/a/b` while `a/b` exists);
//! - `alias(Q) == P`: `demo` while `live/demo` (or `x/demo`) exists (RTMP players of
//!   `live/demo` already get that stream, not `demo`).
//!
//! Configured streams are checked whether or not they are running; between two
//! published streams the first one wins. `live/a/b` and `b` do not clash: the alias drops
//! one segment only, so no RTMP name reaches from one to the other.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// Longest stream path, in bytes.
pub const MAX_PATH_LEN: usize = 256;

/// A normalised stream path such as `live/cam1`. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamPath(Arc<str>);

/// Why a string is not a stream path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Nothing left after trimming.
    #[error("empty stream path")]
    Empty,
    /// Over [`MAX_PATH_LEN`] bytes.
    #[error("stream path longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    /// A character outside the allowed set.
    #[error("character {0:?} not allowed in a stream path")]
    BadChar(char),
    /// A `%` not followed by two hex digits.
    #[error("bad percent-escape in a stream path")]
    BadEscape,
    /// An empty, `.` or `..` segment.
    #[error("empty, '.' or '..' path segment")]
    BadSegment,
}

impl StreamPath {
    /// Normalises `raw` by the module's rule.
    pub fn parse(raw: &str) -> Result<StreamPath, PathError> {
        let raw = raw.split_once('?').map_or(raw, |(p, _)| p);
        let decoded = percent_decode(raw)?;
        let p = decoded.trim_matches('/');
        if p.is_empty() {
            return Err(PathError::Empty);
        }
        if p.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        if let Some(c) = p
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~')))
        {
            return Err(PathError::BadChar(c));
        }
        if p.split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(PathError::BadSegment);
        }
        Ok(StreamPath(Arc::from(p)))
    }

    /// The path of an RTMP `app` and stream name (`key`, query cut off): `APP/KEY`.
    pub fn from_app_key(app: &str, key: &str) -> Result<StreamPath, PathError> {
        let key = key.split_once('?').map_or(key, |(k, _)| k);
        StreamPath::parse(&format!("{}/{}", app.trim_matches('/'), key))
    }

    /// The alias rule: every stream is also reachable under any one app (`live/demo`
    /// plays `demo`, `live/a/b` plays `a/b`), since RTMP clients always send an app and
    /// a stream name. This is the path `self` may stand for: `self` without its first
    /// segment, if it has more than one.
    pub fn alias(&self) -> Option<StreamPath> {
        alias_of(&self.0).map(|rest| StreamPath(Arc::from(rest)))
    }

    /// The stream a player of `self` gets: `self` when it `exists`, else its
    /// [`alias`](Self::alias) when that exists, else `self` (to wait for or refuse).
    pub fn resolve(&self, exists: impl Fn(&StreamPath) -> bool) -> StreamPath {
        match self.alias() {
            Some(alias) if !exists(self) && exists(&alias) => alias,
            _ => self.clone(),
        }
    }

    /// How a publish of `self` collides with the stream at `other` by the alias rule
    /// (see the module doc), if it does.
    pub fn clash(&self, other: &str) -> Option<Clash> {
        if self.as_str() == other {
            Some(Clash::Same)
        } else if alias_of(&self.0) == Some(other) {
            Some(Clash::AliasOf)
        } else if alias_of(other) == Some(self.as_str()) {
            Some(Clash::AliasedBy)
        } else {
            None
        }
    }

    /// Whether a publisher may claim `self` among the `taken` paths (configured or
    /// published, with who holds them): the first clash by the module's rule, or `Ok`.
    /// Linear in `taken`; a publish is rare next to the media it carries.
    pub fn check_claim<'a>(
        &self,
        taken: impl IntoIterator<Item = (&'a str, Holder)>,
    ) -> Result<(), ClaimError> {
        for (other, holder) in taken {
            match self.clash(other) {
                None | Some(Clash::Same) if holder == Holder::PublishTarget => {}
                None => {}
                Some(clash) => {
                    return Err(ClaimError {
                        path: self.clone(),
                        taken: StreamPath(Arc::from(other)),
                        holder,
                        clash,
                    });
                }
            }
        }
        Ok(())
    }

    /// The path as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The shared string, as the hub keys streams.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

/// `path` without its first segment, if it has more than one.
fn alias_of(path: &str) -> Option<&str> {
    path.split_once('/').map(|(_, rest)| rest)
}

/// How a publish of one path collides with an existing stream (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Clash {
    /// The same path.
    Same,
    /// The claimed path is the RTMP name of the existing one (`live/demo` for `demo`).
    AliasOf,
    /// The existing path is the RTMP name of the claimed one (`live/demo` for `demo`).
    AliasedBy,
}

/// Who holds a path a publisher may collide with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Holder {
    /// A configured stream fed by a `source`.
    Source,
    /// A configured path publishers push to (with a `publish_key`): publishable itself,
    /// but its RTMP names are reserved for it.
    PublishTarget,
    /// A published stream.
    Published,
}

impl Holder {
    fn describe(self) -> &'static str {
        match self {
            Holder::Source | Holder::PublishTarget => "configured",
            Holder::Published => "published",
        }
    }
}

/// A publish refused by the alias rule ([`StreamPath::check_claim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimError {
    /// The path the publisher asked for.
    pub path: StreamPath,
    /// The configured or published path it collides with.
    pub taken: StreamPath,
    /// Who holds `taken`.
    pub holder: Holder,
    /// How the two collide.
    pub clash: Clash,
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, taken, holder) = (&self.path, &self.taken, self.holder.describe());
        match (self.clash, self.holder) {
            (Clash::Same, Holder::Source) => write!(f, "'{path}' is fed by a configured source"),
            (Clash::Same, _) => write!(f, "'{path}' is already published"),
            (Clash::AliasOf, _) => {
                write!(
                    f,
                    "'{path}' is the RTMP name of the {holder} stream '{taken}'"
                )
            }
            (Clash::AliasedBy, _) => write!(
                f,
                "'{path}' would be played over RTMP as '{taken}', which is a {holder} stream"
            ),
        }
    }
}

impl std::error::Error for ClaimError {}

fn percent_decode(s: &str) -> Result<String, PathError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| PathError::BadEscape)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| PathError::BadEscape)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    // Anything non-ASCII is refused by the character check; keep it readable there.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

impl fmt::Display for StreamPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl std::ops::Deref for StreamPath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StreamPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for StreamPath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for StreamPath {
    type Err = PathError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StreamPath::parse(s)
    }
}

impl From<StreamPath> for Arc<str> {
    fn from(p: StreamPath) -> Arc<str> {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<String, PathError> {
        StreamPath::parse(s).map(|p| p.to_string())
    }

    #[test]
    fn slashes_are_trimmed_and_doubled_slashes_refused() {
        assert_eq!(p("/live/cam1/").as_deref(), Ok("live/cam1"));
        assert_eq!(p("live/cam1").as_deref(), Ok("live/cam1"));
        assert_eq!(p("/live//x/"), Err(PathError::BadSegment));
        assert_eq!(p("live//cam"), Err(PathError::BadSegment));
        assert_eq!(p("///"), Err(PathError::Empty));
        assert_eq!(p(""), Err(PathError::Empty));
    }

    #[test]
    fn a_query_string_is_not_part_of_the_path() {
        assert_eq!(p("live/cam1?key=secret").as_deref(), Ok("live/cam1"));
        assert_eq!(p("/live/cam1/?a=b&c=%zz").as_deref(), Ok("live/cam1"));
        assert_eq!(p("?key=x"), Err(PathError::Empty));
        let k = StreamPath::from_app_key("live", "cam1?key=secret").unwrap();
        assert_eq!(k.as_str(), "live/cam1");
    }

    #[test]
    fn percent_escapes_are_decoded_then_checked() {
        assert_eq!(p("live%2Fcam1").as_deref(), Ok("live/cam1"));
        assert_eq!(p("%6Cive/cam").as_deref(), Ok("live/cam"));
        assert_eq!(p("live/cam%20one"), Err(PathError::BadChar(' ')));
        assert_eq!(p("live/%2e%2e"), Err(PathError::BadSegment));
        assert_eq!(p("live/cam%2"), Err(PathError::BadEscape));
        assert_eq!(p("live/cam%zz"), Err(PathError::BadEscape));
        assert_eq!(p("live/%C3%A9"), Err(PathError::BadChar('é')));
    }

    #[test]
    fn case_is_kept() {
        assert_eq!(p("Live/Cam").as_deref(), Ok("Live/Cam"));
        assert_ne!(
            StreamPath::parse("Live/Cam").unwrap(),
            StreamPath::parse("live/cam").unwrap()
        );
    }

    #[test]
    fn characters_segments_and_length() {
        assert_eq!(p("a-b_c.d~e/f1").as_deref(), Ok("a-b_c.d~e/f1"));
        assert_eq!(p("../etc"), Err(PathError::BadSegment));
        assert_eq!(p("live/./x"), Err(PathError::BadSegment));
        assert_eq!(p("live/c*m"), Err(PathError::BadChar('*')));
        assert!(p(&"a".repeat(MAX_PATH_LEN)).is_ok());
        assert_eq!(p(&"a".repeat(MAX_PATH_LEN + 1)), Err(PathError::TooLong));
    }

    #[test]
    fn alias_drops_the_app() {
        let k = StreamPath::from_app_key("live", "demo").unwrap();
        assert_eq!(k.alias().unwrap().as_str(), "demo");
        assert!(StreamPath::parse("demo").unwrap().alias().is_none());
        let three = StreamPath::parse("live/a/b").unwrap();
        assert_eq!(three.alias().unwrap().as_str(), "a/b");
    }

    fn claim(path: &str, taken: &[(&str, Holder)]) -> Result<(), String> {
        let p = StreamPath::parse(path).unwrap();
        p.check_claim(taken.iter().copied())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn clash_vectors_both_ways() {
        let p = |s: &str| StreamPath::parse(s).unwrap();
        assert_eq!(p("demo").clash("demo"), Some(Clash::Same));
        assert_eq!(p("live/demo").clash("demo"), Some(Clash::AliasOf));
        assert_eq!(p("x/demo").clash("demo"), Some(Clash::AliasOf));
        assert_eq!(p("demo").clash("live/demo"), Some(Clash::AliasedBy));
        assert_eq!(p("live/a/b").clash("a/b"), Some(Clash::AliasOf));
        assert_eq!(p("a/b").clash("live/a/b"), Some(Clash::AliasedBy));
        // One segment only: no RTMP name leads from one to the other.
        assert_eq!(p("live/a/b").clash("b"), None);
        assert_eq!(p("b").clash("live/a/b"), None);
        assert_eq!(p("live/demo").clash("live/demo2"), None);
        assert_eq!(p("live/demo").clash("other/demo"), None);
        assert_eq!(p("Demo").clash("live/demo"), None);
    }

    #[test]
    fn hijacking_a_configured_or_published_stream_is_refused() {
        use Holder::*;
        assert_eq!(
            claim("live/demo", &[("demo", Source)]).unwrap_err(),
            "'live/demo' is the RTMP name of the configured stream 'demo'"
        );
        assert_eq!(
            claim("demo", &[("demo", Source)]).unwrap_err(),
            "'demo' is fed by a configured source"
        );
        assert_eq!(
            claim("live/cam1", &[("cam1", PublishTarget)]).unwrap_err(),
            "'live/cam1' is the RTMP name of the configured stream 'cam1'"
        );
        assert_eq!(
            claim("live/demo", &[("demo", Published)]).unwrap_err(),
            "'live/demo' is the RTMP name of the published stream 'demo'"
        );
        assert_eq!(
            claim("demo", &[("live/demo", Published)]).unwrap_err(),
            "'demo' would be played over RTMP as 'live/demo', which is a published stream"
        );
        assert_eq!(
            claim("demo", &[("demo", Published)]).unwrap_err(),
            "'demo' is already published"
        );
        // A configured push path is where its publisher belongs.
        assert_eq!(claim("cam1", &[("cam1", PublishTarget)]), Ok(()));
        assert_eq!(
            claim("live/x", &[("demo", Source), ("live/y", Published)]),
            Ok(())
        );
        assert_eq!(claim("live/a/b", &[("b", Source)]), Ok(()));
        // The first clash is reported.
        let e = StreamPath::parse("live/demo")
            .unwrap()
            .check_claim([("x", Published), ("demo", Source), ("live/demo", Published)])
            .unwrap_err();
        assert_eq!(
            (e.taken.as_str(), e.holder, e.clash),
            ("demo", Source, Clash::AliasOf)
        );
    }

    #[test]
    fn resolve_prefers_the_path_then_its_alias() {
        let set =
            |names: &'static [&'static str]| move |p: &StreamPath| names.contains(&p.as_str());
        let p = |s: &str| StreamPath::parse(s).unwrap();
        assert_eq!(p("live/demo").resolve(set(&["demo"])).as_str(), "demo");
        assert_eq!(
            p("live/demo").resolve(set(&["demo", "live/demo"])).as_str(),
            "live/demo"
        );
        assert_eq!(p("live/demo").resolve(set(&[])).as_str(), "live/demo");
        assert_eq!(p("demo").resolve(set(&["demo"])).as_str(), "demo");
        assert_eq!(
            p("live/x/cam").resolve(set(&["cam"])).as_str(),
            "live/x/cam"
        );
    }
}
