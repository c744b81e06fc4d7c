//! `[auth]`: users, JWT keys and the failed-attempt limit, validated into an
//! [`Authorizer`].

use super::{ConfigError, Millis};
use crate::auth::{
    self, Action, Authorizer, JwtKeys, PathGlob, Permission, Secret, User, UserName,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Shortest `auth.jwt_secret` taken: HS256 needs a key as long as its hash (RFC 7518 §3.2).
pub const MIN_JWT_SECRET: usize = 32;

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Users, tried in order. None at all: the built-in default ([`auth::default_users`]).
    pub users: Vec<UserConfig>,
    /// HS256 secret that JWTs may be signed with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// PEM file of the public key (RSA → RS256, EC P-256 → ES256) JWTs may be signed for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_public_key: Option<PathBuf>,
    /// Failed attempts one address may make per minute before it is refused for
    /// `fail_block`; 0 = no limit.
    pub fail_limit: u32,
    /// How long an address that reached `fail_limit` is refused.
    pub fail_block: Millis,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            users: Vec::new(),
            jwt_secret: None,
            jwt_public_key: None,
            fail_limit: 10,
            fail_block: Millis(Duration::from_secs(60)),
        }
    }
}

/// One `[[auth.users]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The name; `any` matches every request without credentials.
    pub user: String,
    /// The password in plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The password as `sha256:<hex>` or an argon2 PHC string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// CIDRs (or single addresses) the entry applies to; empty = every address.
    #[serde(default)]
    pub ips: Vec<String>,
    /// What the user may do.
    #[serde(default)]
    pub permissions: Vec<PermissionConfig>,
}

/// One `{ action, path }` permission.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    /// `publish`, `read`, `api` or `metrics`.
    pub action: Action,
    /// Path glob (`*` one segment, `**` any); absent = every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl AuthConfig {
    /// Validates `[auth]` into an authorizer; relative key files start at `base`.
    pub fn validate(&self, base: &Path) -> Result<Authorizer, ConfigError> {
        let users = if self.users.is_empty() {
            auth::default_users()
        } else {
            self.users
                .iter()
                .enumerate()
                .map(|(i, u)| u.validate(i))
                .collect::<Result<_, _>>()?
        };
        if let Some(s) = &self.jwt_secret
            && s.len() < MIN_JWT_SECRET
        {
            return Err(ConfigError::new(
                "auth.jwt_secret",
                format!("must be at least {MIN_JWT_SECRET} bytes (a random string)"),
            ));
        }
        let pem = match &self.jwt_public_key {
            None => None,
            Some(p) => {
                let p = if p.is_absolute() {
                    p.clone()
                } else {
                    base.join(p)
                };
                Some(std::fs::read(&p).map_err(|e| {
                    ConfigError::new(
                        "auth.jwt_public_key",
                        format!("cannot read {}: {e}", p.display()),
                    )
                })?)
            }
        };
        let jwt = JwtKeys::new(self.jwt_secret.as_deref(), pem.as_deref()).map_err(|e| {
            let key = if pem.is_some() {
                "auth.jwt_public_key"
            } else {
                "auth.jwt_secret"
            };
            ConfigError::new(key, e)
        })?;
        if self.fail_block.0.is_zero() && self.fail_limit > 0 {
            return Err(ConfigError::new("auth.fail_block", "must be more than 0"));
        }
        Ok(Authorizer::new(users, jwt))
    }
}

impl UserConfig {
    fn validate(&self, i: usize) -> Result<User, ConfigError> {
        let key = |k: &str| format!("auth.users[{i}].{k}");
        let name = match self.user.as_str() {
            "" => return Err(ConfigError::new(key("user"), "must not be empty")),
            "any" => UserName::Any,
            n => UserName::Named(n.to_owned()),
        };
        let secret = match (&name, &self.password, &self.password_hash) {
            (_, Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    key("password_hash"),
                    "give either password or password_hash, not both",
                ));
            }
            (UserName::Any, Some(_), _) => {
                return Err(ConfigError::new(
                    key("password"),
                    "user \"any\" has no password",
                ));
            }
            (UserName::Any, _, Some(_)) => {
                return Err(ConfigError::new(
                    key("password_hash"),
                    "user \"any\" has no password",
                ));
            }
            (UserName::Any, None, None) => None,
            (UserName::Named(_), None, None) => {
                return Err(ConfigError::new(
                    key("password"),
                    "a named user needs password or password_hash (or use user = \"any\")",
                ));
            }
            (UserName::Named(_), Some(p), None) if p.is_empty() => {
                return Err(ConfigError::new(key("password"), "must not be empty"));
            }
            (UserName::Named(_), Some(p), None) => Some(Secret::plain(p)),
            (UserName::Named(_), None, Some(h)) => {
                Some(Secret::from_hash(h).map_err(|e| ConfigError::new(key("password_hash"), e))?)
            }
        };
        let ips = self
            .ips
            .iter()
            .enumerate()
            .map(|(j, s)| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(
                            format!("auth.users[{i}].ips[{j}]"),
                            format!("'{s}' is not an address or CIDR (e.g. 10.0.0.0/8)"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        if self.permissions.is_empty() {
            return Err(ConfigError::new(
                key("permissions"),
                "lists nothing: give at least one { action = \"...\" }",
            ));
        }
        let permissions = self
            .permissions
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let path = match &p.path {
                    None => None,
                    Some(g) => Some(PathGlob::parse(g).map_err(|e| {
                        ConfigError::new(format!("auth.users[{i}].permissions[{j}].path"), e)
                    })?),
                };
                Ok(Permission {
                    action: p.action,
                    path,
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(User {
            name,
            secret,
            ips,
            permissions,
        })
    }
}
