//! Passwords as configured: plain text, `sha256:<hex>`, or an argon2 PHC string
//! (`$argon2id$v=19$...`). Every comparison is constant-time in the secret.
//!
//! An argon2 check costs tens of milliseconds of the shard that asks (64 ms with the
//! argon2 crate's defaults, `benches/auth.rs`), which would stall every viewer on it each
//! time an encoder reconnects. So each argon2 secret remembers the last password that
//! verified, as a SHA-256 keyed with a per-process random key (never the password, and
//! nothing a memory dump can test guesses against offline faster than argon2 without the
//! key): the same password again costs one SHA-256. A wrong password still pays argon2;
//! the failure limiter bounds how often one address can make it.

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;

/// A configured password.
#[derive(Clone)]
pub enum Secret {
    /// Written in the config as is; kept as its SHA-256 so that comparing costs the same
    /// whatever the lengths.
    Plain([u8; 32]),
    /// `sha256:<64 hex digits>`.
    Sha256([u8; 32]),
    /// An argon2 PHC string, checked to parse when the config is loaded.
    Argon2(Arc<Argon2Secret>),
}

/// An argon2 PHC string and the keyed digest of the last password it verified.
pub struct Argon2Secret {
    phc: String,
    key: [u8; 32],
    verified: Mutex<Option<[u8; 32]>>,
    #[cfg(test)]
    hashed: std::sync::atomic::AtomicU32,
}

impl Argon2Secret {
    fn new(phc: String) -> Result<Self, String> {
        PasswordHash::new(&phc).map_err(|e| format!("not an argon2 PHC string: {e}"))?;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("no randomness for the key: {e}"))?;
        Ok(Argon2Secret {
            phc,
            key,
            verified: Mutex::new(None),
            #[cfg(test)]
            hashed: Default::default(),
        })
    }

    fn digest(&self, given: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(given.as_bytes());
        h.finalize().into()
    }

    fn verify(&self, given: &str) -> bool {
        let digest = self.digest(given);
        // A poisoned lock only means a panic elsewhere mid-store: the value is still whole.
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.is_some_and(|v| bool::from(v.ct_eq(&digest))) {
            return true;
        }
        #[cfg(test)]
        self.hashed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ok = PasswordHash::new(&self.phc)
            .map(|h| {
                Argon2::default()
                    .verify_password(given.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        if ok {
            *verified = Some(digest);
        }
        ok
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Plain(_) => "Secret::Plain(..)",
            Secret::Sha256(_) => "Secret::Sha256(..)",
            Secret::Argon2(_) => "Secret::Argon2(..)",
        })
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl Secret {
    /// A plain password.
    pub fn plain(password: &str) -> Secret {
        Secret::Plain(sha256(password.as_bytes()))
    }

    /// A `password_hash` value: `sha256:<hex>` or an argon2 PHC string.
    pub fn from_hash(hash: &str) -> Result<Secret, String> {
        if let Some(hex) = hash.strip_prefix("sha256:") {
            let hex = hex.trim();
            if hex.len() != 64 {
                return Err("sha256: needs 64 hex digits".into());
            }
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| "sha256: needs 64 hex digits".to_string())?;
            }
            return Ok(Secret::Sha256(out));
        }
        if hash.starts_with("$argon2") {
            return Ok(Secret::Argon2(Arc::new(Argon2Secret::new(
                hash.to_owned(),
            )?)));
        }
        Err("must be `sha256:<hex>` or an argon2 PHC string (`$argon2id$...`)".into())
    }

    /// Whether `given` is this password.
    pub fn verify(&self, given: &str) -> bool {
        match self {
            Secret::Plain(want) | Secret::Sha256(want) => {
                sha256(given.as_bytes()).ct_eq(want).into()
            }
            Secret::Argon2(a) => a.verify(given),
        }
    }
}

/// Constant-time equality of two strings (their lengths may leak, their contents do not).
pub fn eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
pub(crate) mod tests_support {
    /// `argon2id` of "hunter2" (m=19456, t=2, p=1), made with the argon2 crate.
    pub const ARGON2_HUNTER2: &str = "$argon2id$v=19$m=19456,t=2,p=1$kRTPpJfOXRO+5uw0ePUW4g$8AtR9+udkWJ39TETSDR7cRbwlWL+Etw+ur+kAY97wgs";
}

#[cfg(test)]
mod tests {
    use super::tests_support::ARGON2_HUNTER2;
    use super::*;

    #[test]
    fn plain_and_sha256() {
        let s = Secret::plain("hunter2");
        assert!(s.verify("hunter2"));
        assert!(!s.verify("hunter3"));
        assert!(!s.verify(""));
        // echo -n hunter2 | sha256sum
        let h = Secret::from_hash(
            "sha256:f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7",
        )
        .unwrap();
        assert!(h.verify("hunter2"));
        assert!(!h.verify("Hunter2"));
    }

    #[test]
    fn argon2_phc() {
        let s = Secret::from_hash(ARGON2_HUNTER2).unwrap();
        assert!(s.verify("hunter2"));
        assert!(!s.verify("hunter3"));
    }

    #[test]
    fn argon2_runs_once_for_a_password_that_verified() {
        let s = Secret::from_hash(ARGON2_HUNTER2).unwrap();
        let Secret::Argon2(a) = &s else {
            unreachable!()
        };
        let runs = || a.hashed.load(std::sync::atomic::Ordering::Relaxed);
        assert!(!s.verify("hunter3"));
        assert_eq!(runs(), 1);
        assert!(s.verify("hunter2"));
        assert!(s.verify("hunter2"));
        assert!(s.clone().verify("hunter2"), "clones share what verified");
        assert_eq!(runs(), 2, "the same password again costs no argon2");
        // A wrong password after a right one is still checked, and still wrong.
        assert!(!s.verify("hunter2 "));
        assert!(!s.verify(""));
        assert_eq!(runs(), 4);
        assert!(s.verify("hunter2"));
        assert_eq!(runs(), 4);
    }

    #[test]
    fn bad_hashes_are_refused() {
        assert!(Secret::from_hash("sha256:abc").is_err());
        assert!(Secret::from_hash(&format!("sha256:{}", "zz".repeat(32))).is_err());
        assert!(Secret::from_hash("$argon2id$nonsense").is_err());
        assert!(Secret::from_hash("md5:abc").is_err());
        assert!(Secret::from_hash("hunter2").is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        assert_eq!(format!("{:?}", Secret::plain("x")), "Secret::Plain(..)");
    }
}
