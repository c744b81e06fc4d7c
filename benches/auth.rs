//! The per-request access check: the authorizer with 100 users (the match is the last
//! one, so every entry is tried), with a JWT (HS256 and ES256), and the credential
//! parsers. Plain-text and sha256 passwords cost one SHA-256 each; an argon2 user costs
//! an argon2 verification for a wrong password (measured once for scale) and one keyed
//! SHA-256 for the password that verified last.

use corecast::auth::{
    AccessRequest, Action, Authorizer, Credentials, JwtKeys, PathGlob, Permission, Secret, User,
    UserName, creds,
};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use std::hint::black_box;
use std::net::IpAddr;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_800_000_000;
const EC_PRIVATE: &str = include_str!("../tests/data/auth/ec_private.pem");
const EC_PUBLIC: &str = include_str!("../tests/data/auth/ec_public.pem");

fn users(n: usize, secret: impl Fn(usize) -> Secret) -> Vec<User> {
    (0..n)
        .map(|i| User {
            name: UserName::Named(format!("user{i}")),
            secret: Some(secret(i)),
            ips: vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.0/24".parse().unwrap(),
            ],
            permissions: vec![
                Permission {
                    action: Action::Publish,
                    path: Some(PathGlob::parse(&format!("live/user{i}/*")).unwrap()),
                },
                Permission {
                    action: Action::Read,
                    path: Some(PathGlob::parse("**").unwrap()),
                },
            ],
        })
        .collect()
}

fn keys() -> JwtKeys {
    JwtKeys::new(Some(SECRET), Some(EC_PUBLIC.as_bytes())).unwrap()
}

fn check(a: &Authorizer, c: &Credentials, path: &str) -> bool {
    let req = AccessRequest {
        action: Action::Publish,
        path: Some(path),
        ip: Some(IpAddr::from([192, 0, 2, 7])),
        creds: c,
    };
    a.check(&req, NOW) == corecast::auth::Verdict::Allow
}

fn bench(c: &mut Criterion) {
    let plain = Authorizer::new(users(100, |i| Secret::plain(&format!("pw{i}"))), keys());
    let last = Credentials {
        user: Some("user99".into()),
        pass: Some("pw99".into()),
        ..Credentials::default()
    };
    assert!(check(&plain, &last, "live/user99/cam"));
    c.bench_function("auth_100_users_last_matches", |b| {
        b.iter(|| black_box(check(&plain, black_box(&last), "live/user99/cam")))
    });
    let anonymous = Credentials::default();
    c.bench_function("auth_100_users_anonymous_refused", |b| {
        b.iter(|| black_box(check(&plain, black_box(&anonymous), "live/user99/cam")))
    });

    let claims = serde_json::json!({
        "exp": NOW + 600,
        "corecast_permissions": [{ "action": "publish", "path": "live/*" }],
    });
    let hs = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    let es = encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap();
    for (name, token) in [("auth_jwt_hs256", hs), ("auth_jwt_es256", es)] {
        let c_tok = Credentials {
            token: Some(token),
            ..Credentials::default()
        };
        assert!(check(&plain, &c_tok, "live/cam"));
        c.bench_function(name, |b| {
            b.iter(|| black_box(check(&plain, black_box(&c_tok), "live/cam")))
        });
    }

    let header = "Basic dXNlcjk5OnB3OTk=";
    c.bench_function("auth_parse_basic_header", |b| {
        b.iter(|| black_box(creds::from_authorization(black_box(header))))
    });
    let query = "user=obs&pass=s3cret%21&token=&key=abc";
    c.bench_function("auth_parse_rtmp_query", |b| {
        b.iter(|| black_box(creds::from_query(black_box(query))))
    });

    let mut argon = c.benchmark_group("auth_argon2");
    argon.sample_size(10);
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$kRTPpJfOXRO+5uw0ePUW4g$8AtR9+udkWJ39TETSDR7cRbwlWL+Etw+ur+kAY97wgs";
    let one = Authorizer::new(
        vec![User {
            name: UserName::Named("h".into()),
            secret: Some(Secret::from_hash(hash).unwrap()),
            ips: vec![],
            permissions: vec![Permission::any_path(Action::Publish)],
        }],
        keys(),
    );
    let right = Credentials {
        user: Some("h".into()),
        pass: Some("hunter2".into()),
        ..Credentials::default()
    };
    let wrong = Credentials {
        pass: Some("hunter3".into()),
        ..right.clone()
    };
    argon.bench_function("one_user_argon2id_wrong_password", |b| {
        b.iter(|| black_box(check(&one, black_box(&wrong), "x")))
    });
    argon.bench_function("one_user_argon2id_password_that_verified", |b| {
        b.iter(|| black_box(check(&one, black_box(&right), "x")))
    });
    argon.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
