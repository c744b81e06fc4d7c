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
        let (_, rest) = self.0.split_once('/')?;
        Some(StreamPath(Arc::from(rest)))
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
}
