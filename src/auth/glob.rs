//! Path globs of permissions: `*` is one segment, `**` any number of segments (none
//! included), anything else a literal segment (`live/*`, `cams/**`, `demo`).

use std::fmt;

/// A compiled path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGlob {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Any,
}

impl PathGlob {
    /// Parses a glob. Segments are separated by `/` (leading and trailing ones are
    /// ignored, as in stream paths); a `*` may only stand alone in its segment.
    pub fn parse(text: &str) -> Result<PathGlob, String> {
        let trimmed = text.trim_matches('/');
        if trimmed.is_empty() {
            return Err("empty path glob (leave `path` out to allow every path)".into());
        }
        let mut segments = Vec::new();
        for s in trimmed.split('/') {
            segments.push(match s {
                "" => return Err(format!("empty segment in '{text}'")),
                "*" => Segment::One,
                "**" => Segment::Any,
                s if s.contains('*') => {
                    return Err(format!(
                        "'{s}' in '{text}': `*` and `**` must be a whole segment"
                    ));
                }
                s => Segment::Literal(s.to_owned()),
            });
        }
        Ok(PathGlob {
            text: trimmed.to_owned(),
            segments,
        })
    }

    /// Whether `path` (a normalised stream path, `a/b/c`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match_from(&self.segments, &parts)
    }
}

/// Glob matching with one backtracking point for the last `**` seen (the classic
/// wildcard algorithm): linear in practice, quadratic at worst, never exponential.
fn match_from(pattern: &[Segment], path: &[&str]) -> bool {
    let (mut p, mut s) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        match pattern.get(p) {
            Some(Segment::Any) => {
                star = Some((p, s));
                p += 1;
            }
            Some(Segment::One) => {
                p += 1;
                s += 1;
            }
            Some(Segment::Literal(l)) if l == path[s] => {
                p += 1;
                s += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    p = sp + 1;
                    s = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|seg| *seg == Segment::Any)
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, path: &str) -> bool {
        PathGlob::parse(glob).unwrap().matches(path)
    }

    #[test]
    fn literal_and_one_segment() {
        assert!(m("demo", "demo"));
        assert!(!m("demo", "demo2"));
        assert!(!m("demo", "live/demo"));
        assert!(m("live/*", "live/cam1"));
        assert!(!m("live/*", "live"));
        assert!(!m("live/*", "live/a/b"));
        assert!(!m("live/*", "other/cam1"));
        assert!(m("*/cam1", "live/cam1"));
        assert!(m("/live/*/", "live/x"));
    }

    #[test]
    fn any_segments() {
        assert!(m("**", "demo"));
        assert!(m("**", "a/b/c"));
        assert!(m("live/**", "live/a/b"));
        assert!(m("live/**", "live"));
        assert!(m("**/hd", "a/b/hd"));
        assert!(m("**/hd", "hd"));
        assert!(!m("**/hd", "a/hd/x"));
        assert!(m("a/**/z", "a/z"));
        assert!(m("a/**/z", "a/b/c/z"));
        assert!(!m("a/**/z", "a/b/c/y"));
        assert!(m("**/b/**/d", "a/b/c/d"));
    }

    #[test]
    fn bad_globs_are_refused() {
        assert!(PathGlob::parse("").is_err());
        assert!(PathGlob::parse("/").is_err());
        assert!(PathGlob::parse("a//b").is_err());
        assert!(PathGlob::parse("cam*").is_err());
        assert!(PathGlob::parse("***").is_err());
    }

    #[test]
    fn many_any_segments_stay_fast() {
        let glob = PathGlob::parse(&["**"; 30].join("/")).unwrap();
        let path = ["x"; 60].join("/");
        assert!(glob.matches(&path));
        let glob = PathGlob::parse(&format!("{}/y", ["**/x"; 20].join("/"))).unwrap();
        assert!(!glob.matches(&path));
    }
}
