//! `http.tls_*` and `rtmp.tls_*`: the TLS listeners, their certificates loaded (and
//! checked) while the configuration is validated.

use super::{Config, ConfigError};
use crate::tls::{Acceptor, Certificate, PemFile};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ALPN of the HTTPS listener: HTTP/1.1 only (browsers then never try HTTP/2).
const HTTPS_ALPN: &[&[u8]] = &[b"http/1.1"];

/// The TLS listeners of a validated configuration.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// HTTPS, when `http.tls_listen` is set.
    pub http: Option<TlsListener>,
    /// RTMPS, when `rtmp.tls_listen` is set.
    pub rtmp: Option<TlsListener>,
}

impl TlsSettings {
    /// Every distinct certificate (RTMPS shares the HTTPS one unless it has its own), for
    /// SIGHUP to reload.
    pub fn certificates(&self) -> Vec<Arc<Certificate>> {
        let mut out: Vec<Arc<Certificate>> = Vec::new();
        for l in [&self.http, &self.rtmp].into_iter().flatten() {
            if !out.iter().any(|c| Arc::ptr_eq(c, &l.cert)) {
                out.push(l.cert.clone());
            }
        }
        out
    }
}

/// One TLS listener.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// Where it listens (port 0 is resolved at pre-flight).
    pub listen: SocketAddr,
    /// Its certificate.
    pub cert: Arc<Certificate>,
    /// Its handshake side.
    pub acceptor: Acceptor,
}

/// An address that may be absent or written as `""` (off).
pub(super) fn optional_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim().parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "'{s}' is not an address with a port (e.g. \"0.0.0.0:8443\"; \"\" for off)"
        ))
    })
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Loads a certificate named by the keys `cert_key` and `key_key`; a problem is one error
/// naming the key of the file at fault.
fn load(
    base: &Path,
    (cert_key, cert): (&str, &Path),
    (key_key, key): (&str, &Path),
) -> Result<Arc<Certificate>, ConfigError> {
    let cert = Certificate::load(resolve(base, cert), resolve(base, key)).map_err(|e| {
        let key = match e.file() {
            PemFile::Cert => cert_key,
            PemFile::Key => key_key,
        };
        ConfigError::new(key, e.to_string())
    })?;
    Ok(Arc::new(cert))
}

/// The acceptor of a listener: HTTPS offers HTTP/1.1 by ALPN and sends the usual two TLS
/// 1.3 session tickets (browsers resume); RTMPS sends none (see [`Acceptor::new`]).
fn acceptor(key: &str, cert: &Arc<Certificate>, https: bool) -> Result<Acceptor, ConfigError> {
    let (alpn, tickets) = if https { (HTTPS_ALPN, 2) } else { (&[][..], 0) };
    Acceptor::new(cert.clone(), alpn, tickets).map_err(|e| ConfigError::new(key, e.to_string()))
}

impl Config {
    /// `http.tls_*` and `rtmp.tls_*`: the certificates of the TLS listeners that are on,
    /// loaded and checked (paths relative to `base`).
    pub(super) fn validate_tls(&self, base: &Path) -> Result<TlsSettings, ConfigError> {
        let (h, r) = (&self.http, &self.rtmp);
        let mut out = TlsSettings::default();
        let http_files = match (&h.tls_cert, &h.tls_key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "http.tls_key",
                    "needed with http.tls_cert",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "http.tls_cert",
                    "needed with http.tls_key",
                ));
            }
            (None, None) => None,
        };
        let mut http_cert = None;
        if let Some(listen) = h.tls_listen {
            let Some((c, k)) = http_files else {
                return Err(ConfigError::new(
                    "http.tls_cert",
                    "http.tls_listen is set but no certificate is: set http.tls_cert and http.tls_key (PEM files)",
                ));
            };
            let cert = load(base, ("http.tls_cert", c), ("http.tls_key", k))?;
            let acceptor = acceptor("http.tls_cert", &cert, true)?;
            http_cert = Some(cert.clone());
            out.http = Some(TlsListener {
                listen,
                cert,
                acceptor,
            });
        }
        let Some(listen) = r.tls_listen else {
            return Ok(out);
        };
        let cert = match (&r.tls_cert, &r.tls_key) {
            (Some(c), Some(k)) => load(base, ("rtmp.tls_cert", c), ("rtmp.tls_key", k))?,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "rtmp.tls_key",
                    "needed with rtmp.tls_cert",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "rtmp.tls_cert",
                    "needed with rtmp.tls_key",
                ));
            }
            (None, None) => match (http_cert, http_files) {
                (Some(cert), _) => cert,
                (None, Some((c, k))) => load(base, ("http.tls_cert", c), ("http.tls_key", k))?,
                (None, None) => {
                    return Err(ConfigError::new(
                        "rtmp.tls_cert",
                        "rtmp.tls_listen is set but no certificate is: set rtmp.tls_cert and rtmp.tls_key, or http.tls_cert and http.tls_key",
                    ));
                }
            },
        };
        let acceptor = acceptor("rtmp.tls_cert", &cert, false)?;
        out.rtmp = Some(TlsListener {
            listen,
            cert,
            acceptor,
        });
        Ok(out)
    }
}
