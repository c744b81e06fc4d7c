//! JWT verification with `jsonwebtoken`: HS256 with `auth.jwt_secret`, RS256 or ES256
//! with the PEM public key of `auth.jwt_public_key`. The algorithm is pinned by the key:
//! a token's header may only name the algorithm of a configured key (so `alg: none` and
//! an HS256 token signed with the public key as its secret are refused). `exp` and `nbf`
//! are checked here against the caller's `now` (the crate would read the clock).

use super::glob::PathGlob;
use super::{Action, Permission};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Leeway on `exp` and `nbf` for clocks of the issuer and corecast that differ a little.
pub const LEEWAY_SECS: u64 = 30;

/// The configured verification keys.
#[derive(Clone)]
pub struct JwtKeys {
    hs256: Option<DecodingKey>,
    public: Option<(Algorithm, DecodingKey)>,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("hs256", &self.hs256.is_some())
            .field("public", &self.public.as_ref().map(|(a, _)| *a))
            .finish()
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// No key of the token's algorithm is configured (or the header names none we take).
    #[error("no key for this token's algorithm")]
    Algorithm,
    /// Signature, encoding or claims are bad.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not valid yet")]
    NotYet,
}

#[derive(Deserialize)]
struct Claims {
    exp: Option<u64>,
    nbf: Option<u64>,
    #[serde(default)]
    corecast_permissions: Vec<ClaimPermission>,
}

#[derive(Deserialize)]
struct ClaimPermission {
    action: Action,
    path: Option<String>,
}

impl JwtKeys {
    /// Keys from an HS256 secret and/or a PEM public key (RSA → RS256, EC P-256 → ES256).
    pub fn new(secret: Option<&str>, public_pem: Option<&[u8]>) -> Result<JwtKeys, String> {
        let hs256 = match secret {
            None => None,
            Some(s) => Some(
                DecodingKey::from_secret(s.as_bytes())
                    .map_err(|e| format!("not a usable HS256 secret: {e}"))?,
            ),
        };
        let public = match public_pem {
            None => None,
            Some(pem) => Some(
                DecodingKey::from_rsa_pem(pem)
                    .map(|k| (Algorithm::RS256, k))
                    .or_else(|_| DecodingKey::from_ec_pem(pem).map(|k| (Algorithm::ES256, k)))
                    .map_err(|e| format!("not an RSA or EC (P-256) public key in PEM: {e}"))?,
            ),
        };
        Ok(JwtKeys { hs256, public })
    }

    /// Whether any key is configured.
    pub fn any(&self) -> bool {
        self.hs256.is_some() || self.public.is_some()
    }

    /// Verifies `token` at `now` (seconds since the Unix epoch) and returns its permissions.
    pub fn verify(&self, token: &str, now: u64) -> Result<Vec<Permission>, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Algorithm)?;
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.as_ref(),
            alg => self
                .public
                .as_ref()
                .and_then(|(a, k)| (*a == alg).then_some(k)),
        }
        .ok_or(JwtError::Algorithm)?;
        let mut v = Validation::new(header.alg);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, key, &v)
            .map_err(|e| JwtError::Invalid(e.to_string()))?;
        let c = data.claims;
        match c.exp {
            None => return Err(JwtError::Invalid("no exp claim".into())),
            Some(exp) if exp.saturating_add(LEEWAY_SECS) <= now => return Err(JwtError::Expired),
            _ => {}
        }
        if c.nbf
            .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
        {
            return Err(JwtError::NotYet);
        }
        c.corecast_permissions
            .into_iter()
            .map(|p| {
                let path = match p.path.as_deref() {
                    None => None,
                    Some(g) => Some(PathGlob::parse(g).map_err(JwtError::Invalid)?),
                };
                Ok(Permission {
                    action: p.action,
                    path,
                })
            })
            .collect()
    }
}
