//! Command-line flags shared by the load tool's modes: `--flag value` pairs, the
//! number checks every mode makes, HTTP addresses and the usage on errors.

use std::net::{SocketAddr, ToSocketAddrs};

/// The `--flag value` pairs of `argv`; `-h`/`--help` is an `Err` with an empty message
/// (the caller prints the usage), a flag without a value an `Err` naming it.
pub fn pairs(argv: &[String]) -> impl Iterator<Item = Result<(&str, &str), String>> + '_ {
    let mut it = argv.iter();
    std::iter::from_fn(move || {
        let flag = it.next()?;
        if flag == "-h" || flag == "--help" {
            return Some(Err(String::new()));
        }
        Some(match it.next() {
            Some(v) => Ok((flag.as_str(), v.as_str())),
            None => Err(format!("{flag} needs a value")),
        })
    })
}

/// A finite, non-negative number.
pub fn num(flag: &str, v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("{flag}: not a non-negative number: {v:?}")),
    }
}

/// A count.
pub fn count(flag: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .map_err(|_| format!("{flag}: not a count: {v:?}"))
}

/// `http://HOST[:PORT]` as a socket address (port 80 if none).
pub fn http_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']')
    });
    let hp = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    hp.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("cannot resolve {hp}"))
}

/// The parsed flags of mode `mode`, or the exit code after printing its usage (`-h`:
/// to stdout, 0) or the error and the usage (to stderr, 2).
pub fn or_usage<T>(mode: &str, usage: &str, parsed: Result<T, String>) -> Result<T, i32> {
    match parsed {
        Ok(a) => Ok(a),
        Err(e) if e.is_empty() => {
            print!("{usage}");
            Err(0)
        }
        Err(e) => {
            eprintln!("corecast-load {mode}: {e}\n\n{usage}");
            Err(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_addresses() {
        assert_eq!(
            http_addr("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(http_addr("http://127.0.0.1").unwrap().port(), 80);
        assert!(http_addr("https://127.0.0.1").is_err());
        assert!(http_addr("http://").is_err());
    }
}
