//! Access control: one pure authorizer answers (credentials, address, action, path) →
//! allow / 401 / 403 for every protocol. Protocol cores only extract credentials
//! ([`creds`]); drivers ask [`Authorizer::check`] (through the shard, which keeps the
//! [`limiter::FailLimiter`] and reads the clock). Nothing here does I/O or reads a clock.
//!
//! # The rule
//!
//! - A JWT, when one is given, decides alone: valid (signature, `exp`, `nbf`) and one of
//!   its `corecast_permissions` matches → allow; valid but none matches → 403 (Forbidden);
//!   invalid → 401 (Unauthorized). Users are not consulted.
//! - Otherwise users are tried in order. A user matches when its name is `any` (whatever
//!   credentials were sent, so a wrong password never loses what anyone may do) or the
//!   given user and password are its own; then its `ips` (empty = every address) must hold
//!   the peer's address and one of its permissions must match. The first match allows.
//! - Nothing allowed: 403 if the given user and password were right for some user (who
//!   may not do this, or not from here), else 401 (nothing given, or wrong). This follows
//!   MediaMTX's internal users, except that MediaMTX answers 401 to both; 403 tells an
//!   operator that the password is right and the permission is missing.
//!
//! A permission matches when its action is the request's and its path glob (absent =
//! every path) matches the request's path. Requests without a path (`api`, `metrics`,
//! and the stream list asking for `read` "anywhere") match any glob.

pub mod creds;
pub mod glob;
pub mod jwt;
pub mod limiter;
pub mod secret;
#[cfg(test)]
mod tests;

pub use creds::Credentials;
pub use glob::PathGlob;
pub use jwt::{JwtError, JwtKeys};
pub use limiter::FailLimiter;
pub use secret::Secret;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Publish a stream (RTMP publish; WHIP later).
    Publish,
    /// Watch a stream (RTMP play, WHEP, WebSocket offers).
    Read,
    /// Read the REST API (`/api/...`), addresses included.
    Api,
    /// Read `/metrics`.
    Metrics,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Publish => "publish",
            Action::Read => "read",
            Action::Api => "api",
            Action::Metrics => "metrics",
        })
    }
}

/// One permission: an action, on the paths of a glob (`None` = every path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// The action allowed.
    pub action: Action,
    /// Paths it is allowed on.
    pub path: Option<PathGlob>,
}

impl Permission {
    /// `action` on every path.
    pub fn any_path(action: Action) -> Permission {
        Permission { action, path: None }
    }

    /// Whether this permission allows `action` on `path` (`None`: a request without one).
    pub fn allows(&self, action: Action, path: Option<&str>) -> bool {
        self.action == action
            && match (&self.path, path) {
                (Some(glob), Some(path)) => glob.matches(path),
                _ => true,
            }
    }
}

/// Who a user entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserName {
    /// `any`: matches every request, whatever credentials it carries.
    Any,
    /// A named user, who must give the password.
    Named(String),
}

/// One `[[auth.users]]` entry, validated.
#[derive(Debug, Clone)]
pub struct User {
    /// The name.
    pub name: UserName,
    /// The password (`None` only for [`UserName::Any`]).
    pub secret: Option<Secret>,
    /// Addresses it applies to; empty = every address.
    pub ips: Vec<IpNet>,
    /// What it may do.
    pub permissions: Vec<Permission>,
}

impl User {
    fn covers(&self, ip: Option<IpAddr>) -> bool {
        self.ips.is_empty() || ip.is_some_and(|ip| self.ips.iter().any(|n| n.contains(&ip)))
    }
}

/// The users of the built-in default: `read` for anyone, `publish`, `api` and `metrics`
/// from loopback only. A config without any `[[auth.users]]` gets these.
pub fn default_users() -> Vec<User> {
    let loopback = ["127.0.0.1/32", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    vec![
        User {
            name: UserName::Any,
            secret: None,
            ips: loopback,
            permissions: [Action::Publish, Action::Api, Action::Metrics]
                .into_iter()
                .map(Permission::any_path)
                .collect(),
        },
        User {
            name: UserName::Any,
            secret: None,
            ips: Vec::new(),
            permissions: vec![Permission::any_path(Action::Read)],
        },
    ]
}

/// The answer to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// No credentials, or wrong ones (HTTP 401 with `WWW-Authenticate`).
    Unauthorized,
    /// Right credentials that do not allow this (HTTP 403).
    Forbidden,
    /// The address failed too often and sent credentials again (HTTP 429).
    Blocked,
}

impl Verdict {
    /// The HTTP status of a refusal (200 for [`Verdict::Allow`]).
    pub fn status(self) -> u16 {
        match self {
            Verdict::Allow => 200,
            Verdict::Unauthorized => 401,
            Verdict::Forbidden => 403,
            Verdict::Blocked => 429,
        }
    }
}

/// A question for the authorizer.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// What the peer wants.
    pub action: Action,
    /// The normalised stream path, for `publish` and `read` on one stream.
    pub path: Option<&'a str>,
    /// The peer's address (`None` if unknown: only rules for every address apply).
    pub ip: Option<IpAddr>,
    /// What the peer sent.
    pub creds: &'a Credentials,
}

/// The access policy: users in order, and the JWT keys.
#[derive(Debug, Clone)]
pub struct Authorizer {
    users: Vec<User>,
    jwt: JwtKeys,
}

impl Authorizer {
    /// An authorizer over `users` (tried in order) and `jwt` keys.
    pub fn new(users: Vec<User>, jwt: JwtKeys) -> Self {
        Authorizer { users, jwt }
    }

    /// The users.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Answers `req` at `now_unix` (seconds since the Unix epoch, for JWT `exp`/`nbf`).
    /// Never [`Verdict::Blocked`]: the failure limiter is the caller's.
    pub fn check(&self, req: &AccessRequest<'_>, now_unix: u64) -> Verdict {
        if let Some(token) = &req.creds.token {
            return match self.jwt.verify(token, now_unix) {
                Ok(perms) if perms.iter().any(|p| p.allows(req.action, req.path)) => Verdict::Allow,
                Ok(_) => Verdict::Forbidden,
                Err(_) => Verdict::Unauthorized,
            };
        }
        let mut authenticated = false;
        for u in &self.users {
            match &u.name {
                UserName::Any => {}
                UserName::Named(name) => {
                    let (Some(user), Some(pass)) = (&req.creds.user, &req.creds.pass) else {
                        continue;
                    };
                    if !secret::eq(name, user) || !u.secret.as_ref().is_some_and(|s| s.verify(pass))
                    {
                        continue;
                    }
                    authenticated = true;
                }
            }
            if u.covers(req.ip) && u.permissions.iter().any(|p| p.allows(req.action, req.path)) {
                return Verdict::Allow;
            }
        }
        if authenticated {
            Verdict::Forbidden
        } else {
            Verdict::Unauthorized
        }
    }
}
