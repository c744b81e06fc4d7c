use super::*;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_800_000_000;
const EC_PRIVATE: &str = include_str!("../../tests/data/auth/ec_private.pem");
const EC_PUBLIC: &str = include_str!("../../tests/data/auth/ec_public.pem");
const RSA_PRIVATE: &str = include_str!("../../tests/data/auth/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("../../tests/data/auth/rsa_public.pem");

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn perm(action: Action, path: Option<&str>) -> Permission {
    Permission {
        action,
        path: path.map(|p| PathGlob::parse(p).unwrap()),
    }
}

fn named(name: &str, pass: &str, ips: &[&str], perms: Vec<Permission>) -> User {
    User {
        name: UserName::Named(name.into()),
        secret: Some(Secret::plain(pass)),
        ips: ips.iter().map(|n| n.parse().unwrap()).collect(),
        permissions: perms,
    }
}

fn authorizer() -> Authorizer {
    let mut users = vec![named(
        "obs",
        "s3cret",
        &[],
        vec![perm(Action::Publish, Some("live/*"))],
    )];
    users.push(named(
        "lan",
        "pw",
        &["10.0.0.0/8"],
        vec![perm(Action::Api, None)],
    ));
    users.extend(default_users());
    let keys = JwtKeys::new(Some(SECRET), Some(EC_PUBLIC.as_bytes())).unwrap();
    Authorizer::new(users, keys)
}

fn basic(user: &str, pass: &str) -> Credentials {
    Credentials {
        user: Some(user.into()),
        pass: Some(pass.into()),
        ..Credentials::default()
    }
}

fn bearer(token: String) -> Credentials {
    Credentials {
        token: Some(token),
        ..Credentials::default()
    }
}

fn check(
    a: &Authorizer,
    action: Action,
    path: Option<&str>,
    from: &str,
    c: &Credentials,
) -> Verdict {
    a.check(
        &AccessRequest {
            action,
            path,
            ip: ip(from),
            creds: c,
        },
        NOW,
    )
}

fn claims(perms: serde_json::Value) -> serde_json::Value {
    json!({ "exp": NOW + 600, "corecast_permissions": perms })
}

fn hs256(claims: &serde_json::Value) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn es256(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    encode(&Header::new(jsonwebtoken::Algorithm::ES256), claims, &key).unwrap()
}

#[test]
fn defaults_read_for_anyone_the_rest_from_loopback() {
    let a = Authorizer::new(default_users(), JwtKeys::new(None, None).unwrap());
    let none = Credentials::default();
    for from in ["127.0.0.1", "::1", "192.0.2.7"] {
        assert_eq!(
            check(&a, Action::Read, Some("demo"), from, &none),
            Verdict::Allow
        );
    }
    for action in [Action::Publish, Action::Api, Action::Metrics] {
        assert_eq!(
            check(&a, action, Some("x"), "127.0.0.1", &none),
            Verdict::Allow
        );
        assert_eq!(check(&a, action, Some("x"), "::1", &none), Verdict::Allow);
        assert_eq!(
            check(&a, action, Some("x"), "127.0.0.2", &none),
            Verdict::Unauthorized
        );
        assert_eq!(
            check(&a, action, Some("x"), "192.0.2.7", &none),
            Verdict::Unauthorized
        );
    }
    let unknown = Credentials::default();
    let r = a.check(
        &AccessRequest {
            action: Action::Publish,
            path: None,
            ip: None,
            creds: &unknown,
        },
        NOW,
    );
    assert_eq!(
        r,
        Verdict::Unauthorized,
        "an unknown address matches no ips rule"
    );
}

#[test]
fn users_passwords_and_paths() {
    let a = authorizer();
    let far = "192.0.2.7";
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("live/cam1"),
            far,
            &basic("obs", "s3cret")
        ),
        Verdict::Allow
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("other/cam1"),
            far,
            &basic("obs", "s3cret")
        ),
        Verdict::Forbidden,
        "right password, path not allowed"
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("live/cam1"),
            far,
            &basic("obs", "wrong")
        ),
        Verdict::Unauthorized
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("live/cam1"),
            far,
            &basic("OBS", "s3cret")
        ),
        Verdict::Unauthorized
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("live/cam1"),
            far,
            &Credentials::default()
        ),
        Verdict::Unauthorized
    );
    // A wrong password does not take away what anyone may do.
    assert_eq!(
        check(&a, Action::Read, Some("demo"), far, &basic("obs", "wrong")),
        Verdict::Allow
    );
}

#[test]
fn address_rules() {
    let a = authorizer();
    assert_eq!(
        check(&a, Action::Api, None, "10.1.2.3", &basic("lan", "pw")),
        Verdict::Allow
    );
    assert_eq!(
        check(&a, Action::Api, None, "192.0.2.7", &basic("lan", "pw")),
        Verdict::Forbidden,
        "right password from an address the rule does not name"
    );
    assert_eq!(
        check(&a, Action::Api, None, "10.1.2.3", &basic("lan", "px")),
        Verdict::Unauthorized
    );
    let v6 = Authorizer::new(
        vec![named(
            "v6",
            "pw",
            &["2001:db8::/32"],
            vec![perm(Action::Read, None)],
        )],
        JwtKeys::new(None, None).unwrap(),
    );
    assert_eq!(
        check(
            &v6,
            Action::Read,
            Some("a"),
            "2001:db8::1",
            &basic("v6", "pw")
        ),
        Verdict::Allow
    );
    assert_eq!(
        check(
            &v6,
            Action::Read,
            Some("a"),
            "2001:db9::1",
            &basic("v6", "pw")
        ),
        Verdict::Forbidden
    );
}

#[test]
fn first_matching_user_wins_and_path_less_requests_match_any_glob() {
    let a = Authorizer::new(
        vec![
            named("u", "pw", &[], vec![perm(Action::Read, Some("cams/**"))]),
            named("u", "other", &[], vec![perm(Action::Publish, None)]),
        ],
        JwtKeys::new(None, None).unwrap(),
    );
    assert_eq!(
        check(
            &a,
            Action::Read,
            Some("cams/a/b"),
            "192.0.2.1",
            &basic("u", "pw")
        ),
        Verdict::Allow
    );
    assert_eq!(
        check(&a, Action::Read, None, "192.0.2.1", &basic("u", "pw")),
        Verdict::Allow
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("x"),
            "192.0.2.1",
            &basic("u", "other")
        ),
        Verdict::Allow
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("x"),
            "192.0.2.1",
            &basic("u", "pw")
        ),
        Verdict::Forbidden
    );
}

#[test]
fn argon2_and_sha256_users() {
    let user = |secret| User {
        name: UserName::Named("h".into()),
        secret: Some(secret),
        ips: vec![],
        permissions: vec![perm(Action::Publish, None)],
    };
    let a = Authorizer::new(
        vec![user(
            Secret::from_hash(secret::tests_support::ARGON2_HUNTER2).unwrap(),
        )],
        JwtKeys::new(None, None).unwrap(),
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("x"),
            "192.0.2.1",
            &basic("h", "hunter2")
        ),
        Verdict::Allow
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("x"),
            "192.0.2.1",
            &basic("h", "hunter3")
        ),
        Verdict::Unauthorized
    );
}

#[test]
fn jwt_valid_and_scoped() {
    let a = authorizer();
    let far = "192.0.2.7";
    let t = hs256(&claims(
        json!([{ "action": "publish", "path": "live/*" }, { "action": "api" }]),
    ));
    assert_eq!(
        check(&a, Action::Publish, Some("live/x"), far, &bearer(t.clone())),
        Verdict::Allow
    );
    assert_eq!(
        check(&a, Action::Api, None, far, &bearer(t.clone())),
        Verdict::Allow
    );
    assert_eq!(
        check(
            &a,
            Action::Publish,
            Some("other/x"),
            far,
            &bearer(t.clone())
        ),
        Verdict::Forbidden
    );
    assert_eq!(
        check(&a, Action::Metrics, None, far, &bearer(t)),
        Verdict::Forbidden
    );
    let t = es256(&claims(json!([{ "action": "read", "path": "cams/**" }])));
    assert_eq!(
        check(&a, Action::Read, Some("cams/1"), far, &bearer(t)),
        Verdict::Allow
    );
}

#[test]
fn jwt_time_claims() {
    let a = authorizer();
    let far = "192.0.2.7";
    let perms = json!([{ "action": "publish" }]);
    let expired = hs256(&json!({ "exp": NOW - 3600, "corecast_permissions": perms }));
    let keys = JwtKeys::new(Some(SECRET), None).unwrap();
    assert_eq!(keys.verify(&expired, NOW), Err(JwtError::Expired));
    assert_eq!(
        check(&a, Action::Publish, Some("x"), far, &bearer(expired)),
        Verdict::Unauthorized
    );
    let early =
        hs256(&json!({ "exp": NOW + 7200, "nbf": NOW + 3600, "corecast_permissions": perms }));
    assert_eq!(keys.verify(&early, NOW), Err(JwtError::NotYet));
    assert!(keys.verify(&early, NOW + 3600).is_ok());
    let no_exp = hs256(&json!({ "corecast_permissions": perms }));
    assert!(matches!(
        keys.verify(&no_exp, NOW),
        Err(JwtError::Invalid(_))
    ));
    // Within the leeway.
    let just = hs256(&json!({ "exp": NOW - 5, "corecast_permissions": perms }));
    assert!(keys.verify(&just, NOW).is_ok());
}

#[test]
fn jwt_forgeries_are_refused() {
    let a = authorizer();
    let far = "192.0.2.7";
    let c = claims(json!([{ "action": "publish" }]));
    // Signed with another secret.
    let other = encode(
        &Header::default(),
        &c,
        &EncodingKey::from_secret(b"another secret of 32 bytes......").unwrap(),
    )
    .unwrap();
    assert_eq!(
        check(&a, Action::Publish, Some("x"), far, &bearer(other)),
        Verdict::Unauthorized
    );
    // Tampered payload.
    let good = hs256(&c);
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged_payload =
        base64_url(&serde_json::to_vec(&claims(json!([{ "action": "api" }]))).unwrap());
    parts[1] = &forged_payload;
    assert_eq!(
        check(&a, Action::Api, None, far, &bearer(parts.join("."))),
        Verdict::Unauthorized
    );
    // alg: none.
    let none = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(&serde_json::to_vec(&c).unwrap())
    );
    assert_eq!(
        check(&a, Action::Publish, Some("x"), far, &bearer(none)),
        Verdict::Unauthorized
    );
    // HS256 signed with the public key's PEM as the secret (algorithm confusion).
    let keys = JwtKeys::new(None, Some(RSA_PUBLIC.as_bytes())).unwrap();
    let confused = encode(
        &Header::default(),
        &c,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(keys.verify(&confused, NOW), Err(JwtError::Algorithm));
    // RS256 signed with the right key is fine; RS256 against an EC key is not.
    let rs = encode(
        &Header::new(jsonwebtoken::Algorithm::RS256),
        &c,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(keys.verify(&rs, NOW).is_ok());
    assert_eq!(
        check(&a, Action::Publish, Some("x"), far, &bearer(rs)),
        Verdict::Unauthorized
    );
    // Garbage.
    for junk in ["", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9..", "x"] {
        assert_eq!(
            check(&a, Action::Publish, Some("x"), far, &bearer(junk.into())),
            Verdict::Unauthorized
        );
    }
}

#[test]
fn public_key_must_be_a_key() {
    assert!(JwtKeys::new(None, Some(b"not a pem")).is_err());
    assert!(JwtKeys::new(None, Some(EC_PRIVATE.as_bytes())).is_err());
    assert!(!JwtKeys::new(None, None).unwrap().any());
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
