//! Unit tests of the configuration: parsing, validation messages, stream paths.

use super::*;
use crate::stream::Holder;

fn base() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validate(text: &str) -> Result<Settings, ConfigError> {
    Config::parse(text)?.validate(&[0, 1], &base())
}

#[test]
fn default_config_is_valid_and_publishes_demo() {
    let s = validate(DEFAULT_CONFIG).expect("default config");
    assert_eq!(s.shards, 2);
    assert_eq!(s.table.plans.len(), 1);
    assert_eq!(s.table.plans[0].path.as_str(), "demo");
    assert_eq!(s.table.plans[0].source.kind(), "file");
    assert_eq!(s.config.http.max_header_bytes, ByteSize(16 * 1024));
}

#[test]
fn default_config_has_the_default_users_and_an_empty_auth_gets_them() {
    use crate::auth::{AccessRequest, Action, Credentials, Verdict};
    let none = Credentials::default();
    for text in [DEFAULT_CONFIG, "", "[auth]\nfail_limit = 3\n"] {
        let s = validate(text).expect("config");
        let ask = |action, ip: &str| {
            let req = AccessRequest {
                action,
                path: Some("live/x"),
                ip: ip.parse().ok(),
                creds: &none,
            };
            s.auth.check(&req, 0)
        };
        assert_eq!(ask(Action::Read, "192.0.2.1"), Verdict::Allow);
        assert_eq!(ask(Action::Publish, "192.0.2.1"), Verdict::Unauthorized);
        assert_eq!(ask(Action::Api, "192.0.2.1"), Verdict::Unauthorized);
        assert_eq!(ask(Action::Publish, "127.0.0.1"), Verdict::Allow);
        assert_eq!(ask(Action::Metrics, "::1"), Verdict::Allow);
    }
    assert_eq!(Config::parse(DEFAULT_CONFIG).unwrap().auth.users.len(), 2);
}

#[test]
fn auth_errors_name_the_key() {
    let cases = [
        (
            "[[auth.users]]\nuser = \"\"\npermissions = [{ action = \"read\" }]\n",
            "auth.users[0].user",
        ),
        (
            "[[auth.users]]\nuser = \"u\"\npermissions = [{ action = \"read\" }]\n",
            "auth.users[0].password",
        ),
        (
            "[[auth.users]]\nuser = \"any\"\npassword = \"x\"\npermissions = [{ action = \"read\" }]\n",
            "auth.users[0].password",
        ),
        (
            "[[auth.users]]\nuser = \"u\"\npassword = \"x\"\npassword_hash = \"sha256:00\"\npermissions = [{ action = \"read\" }]\n",
            "auth.users[0].password_hash",
        ),
        (
            "[[auth.users]]\nuser = \"u\"\npassword_hash = \"md5:00\"\npermissions = [{ action = \"read\" }]\n",
            "auth.users[0].password_hash",
        ),
        (
            "[[auth.users]]\nuser = \"any\"\nips = [\"10.0.0.0/8\", \"nope\"]\npermissions = [{ action = \"read\" }]\n",
            "auth.users[0].ips[1]",
        ),
        (
            "[[auth.users]]\nuser = \"any\"\npermissions = []\n",
            "auth.users[0].permissions",
        ),
        (
            "[[auth.users]]\nuser = \"any\"\npermissions = [{ action = \"read\", path = \"cam*\" }]\n",
            "auth.users[0].permissions[0].path",
        ),
        ("[auth]\njwt_secret = \"short\"\n", "auth.jwt_secret"),
        (
            "[auth]\njwt_public_key = \"/nonexistent.pem\"\n",
            "auth.jwt_public_key",
        ),
        ("[auth]\nfail_block = \"0s\"\n", "auth.fail_block"),
    ];
    for (text, key) in cases {
        let e = validate(text).expect_err(text);
        assert_eq!(e.key, key, "{text}: {e}");
    }
    let e = validate("[[auth.users]]\nuser = \"any\"\npermissions = [{ action = \"watch\" }]\n")
        .expect_err("unknown action");
    assert!(
        e.key.starts_with("auth.users[0].permissions[0].action"),
        "{e}"
    );
    let ok = "[[auth.users]]\nuser = \"any\"\nips = [\"192.0.2.1\", \"::1\"]\npermissions = [{ action = \"read\", path = \"live/**\" }]\n";
    validate(ok).expect("single addresses are taken as /32 and /128");
}

#[test]
fn empty_config_takes_defaults() {
    let s = validate("").expect("empty config");
    assert_eq!(s.config, Config::default());
    assert!(s.table.plans.is_empty());
}

#[test]
fn default_viewer_queues_hold_a_full_gop_and_a_smaller_one_is_warned_about() {
    let c = Config::parse(DEFAULT_CONFIG).expect("default config");
    assert!(c.media.sink_max_frames > c.media.gop_max_frames);
    assert!(c.media.sink_max_bytes.0 > c.media.gop_max_bytes.0);
    assert_eq!(c.warnings(), Vec::<String>::new());
    assert_eq!(Config::default().warnings(), Vec::<String>::new());
    let c = Config::parse("[media]\nsink_max_frames = 300\n").expect("parse");
    let w = c.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("media.sink_max_frames/sink_max_bytes (300 frames"),
        "{w:?}"
    );
}

#[test]
fn unknown_key_is_named() {
    let e = validate("[runtime]\nshardz = 2\n").unwrap_err();
    assert_eq!(e.key, "runtime.shardz");
    assert!(e.message.contains("unknown field"), "{e}");
    let e = validate("[nope]\n").unwrap_err();
    assert!(e.message.contains("nope"), "{e}");
}

#[test]
fn wrong_type_names_the_key() {
    let e = validate("[runtime]\nshards = \"many\"\n").unwrap_err();
    assert_eq!(e.key, "runtime.shards");
    let e = validate("[http]\nlisten = 8080\n").unwrap_err();
    assert_eq!(e.key, "http.listen");
    let e = validate("[http]\nheader_timeout = \"10 parsecs\"\n").unwrap_err();
    assert_eq!(e.key, "http.header_timeout");
    assert!(e.message.contains("parsecs"), "{e}");
}

#[test]
fn syntax_error_has_a_line() {
    let e = validate("[runtime\nshards = 1\n").unwrap_err();
    assert!(e.message.contains("line 1"), "{e}");
}

#[test]
fn shards_and_cpus() {
    assert_eq!(validate("[runtime]\nshards = 1\n").unwrap().shards, 1);
    let s = validate("[runtime]\ncpus = [1]\n").unwrap();
    assert_eq!((s.shards, s.cpus), (1, Some(vec![1])));
    let e = validate("[runtime]\ncpus = [7]\n").unwrap_err();
    assert_eq!(e.key, "runtime.cpus[0]");
    assert!(e.message.contains("CPU 7"), "{e}");
    let e = validate("[runtime]\ncpus = [0, 0]\n").unwrap_err();
    assert_eq!(e.key, "runtime.cpus[1]");
    let e = validate("[runtime]\nshards = 2\ncpus = [0]\n").unwrap_err();
    assert_eq!(e.key, "runtime.cpus");
    let e = validate("[runtime]\nshards = 0\n").unwrap_err();
    assert_eq!(e.key, "runtime.shards");
    // More shards than CPUs is allowed without a fixed map.
    assert_eq!(validate("[runtime]\nshards = 4\n").unwrap().shards, 4);
}

#[test]
fn streams_are_checked() {
    let demo = "source = \"file:configs/media/demo.flv\"";
    let e = validate(&format!(
        "[[streams]]\npath = \"a\"\n{demo}\n[[streams]]\npath = \"/a/\"\n{demo}\n"
    ))
    .unwrap_err();
    assert_eq!(e.key, "streams[a].path");
    assert!(e.message.contains("duplicate"), "{e}");
    let e = validate("[[streams]]\npath = \"a\"\nsource = \"file:nope.flv\"\n").unwrap_err();
    assert_eq!(e.key, "streams[a].source");
    assert!(e.message.contains("does not exist"), "{e}");
    let e = validate("[[streams]]\npath = \"a\"\nsource = \"gopher://x\"\n").unwrap_err();
    assert!(e.message.contains("unsupported source 'gopher'"), "{e}");
    let e = validate(&format!("[[streams]]\npath = \"a b\"\n{demo}\n")).unwrap_err();
    assert_eq!(e.key, "streams[0].path");
    let e = validate(&format!("[[streams]]\npath = \"a\"\n{demo}\nshard = 5\n")).unwrap_err();
    assert_eq!(e.key, "streams[a].shard");
    let e = validate("[[streams]]\npath = \"a\"\n").unwrap_err();
    assert_eq!(e.key, "streams[a]");
    assert!(e.message.contains("source"), "{e}");
    let e = validate(&format!(
        "[[streams]]\npath = \"a\"\n{demo}\npublish_key = \"k\"\n"
    ))
    .unwrap_err();
    assert_eq!(e.key, "streams[a].publish_key");
    let e = validate("[rtmp]\nchunk_size = 1\n").unwrap_err();
    assert_eq!(e.key, "rtmp.chunk_size");
}

#[test]
fn rtsp_sources_are_checked() {
    let cam = "source = \"rtsp://admin:p%40ss@192.0.2.10/Streaming/Channels/101\"";
    let s = validate(&format!("[[streams]]\npath = \"cam\"\n{cam}\n")).unwrap();
    let SourceUrl::Rtsp(r) = &s.table.plans[0].source else {
        panic!("not rtsp: {:?}", s.table.plans[0].source);
    };
    assert_eq!(r.url.host, "192.0.2.10");
    assert_eq!(r.url.port, 554);
    assert_eq!(r.url.password.as_deref(), Some("p@ss"));
    assert_eq!(r.transport, RtspTransport::Auto);
    assert!(!r.on_demand);
    assert_eq!(r.close_after, Duration::from_secs(10));
    assert!(r.credentials.is_none());
    assert_eq!(s.table.plans[0].source.kind(), "rtsp");

    let s = validate(&format!(
        "[rtsp]\ntransport = \"udp\"\n[[streams]]\npath = \"cam\"\n{cam}\non_demand = true\n\
         on_demand_close_after = \"3s\"\nuser = \"u\"\npassword = \"p\"\n"
    ))
    .unwrap();
    let SourceUrl::Rtsp(r) = &s.table.plans[0].source else {
        panic!("not rtsp");
    };
    assert_eq!(r.transport, RtspTransport::Udp, "the [rtsp] default");
    assert_eq!(r.follow_redirects, FollowRedirects::SameHost, "the default");
    assert!(r.on_demand);
    assert_eq!(r.close_after, Duration::from_secs(3));
    let c = r.credentials.as_ref().expect("credentials");
    assert_eq!((c.user.as_str(), c.password.as_str()), ("u", "p"));

    for (extra, key, needle) in [
        (
            "on_demand_close_after = \"3s\"",
            "streams[cam].on_demand_close_after",
            "on_demand",
        ),
        ("password = \"p\"", "streams[cam].password", "user"),
        (
            "transport = \"quic\"",
            "streams[cam].transport",
            "unknown variant",
        ),
        (
            "follow_redirects = \"elsewhere\"",
            "streams[cam].follow_redirects",
            "unknown variant",
        ),
    ] {
        let e = validate(&format!("[[streams]]\npath = \"cam\"\n{cam}\n{extra}\n")).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.message.contains(needle), "{e}");
    }
    let e = validate(
        "[[streams]]\npath = \"a\"\nsource = \"file:configs/media/demo.flv\"\non_demand = true\n",
    )
    .unwrap_err();
    assert_eq!(e.key, "streams[a].on_demand");
    assert!(e.message.contains("rtsp:// sources only"), "{e}");
    let e = validate("[[streams]]\npath = \"a\"\nsource = \"rtsp://\"\n").unwrap_err();
    assert_eq!(e.key, "streams[a].source");
    let e = validate("[rtsp]\nudp_port_min = 40000\nudp_port_max = 30000\n").unwrap_err();
    assert_eq!(e.key, "rtsp.udp_port_min");
    let e = validate("[rtsp]\nretry_min = \"10s\"\nretry_max = \"1s\"\n").unwrap_err();
    assert_eq!(e.key, "rtsp.retry_max");
    let e = validate("[rtsp]\nread_timeout = \"0s\"\n").unwrap_err();
    assert_eq!(e.key, "rtsp.read_timeout");
    let e = validate("[rtsp]\nfollow_redirects = \"all\"\n").unwrap_err();
    assert_eq!(e.key, "rtsp.follow_redirects");
    assert!(e.message.contains("same-host"), "{e}");
    // The [rtsp] default, and a stream's own.
    let s = validate(&format!(
        "[rtsp]\nfollow_redirects = \"any\"\n[[streams]]\npath = \"a\"\n{cam}\n\
         [[streams]]\npath = \"b\"\n{cam}\nfollow_redirects = \"never\"\n"
    ))
    .unwrap();
    let redirects: Vec<FollowRedirects> = s
        .table
        .plans
        .iter()
        .map(|st| match &st.source {
            SourceUrl::Rtsp(r) => r.follow_redirects,
            other => panic!("not rtsp: {other:?}"),
        })
        .collect();
    assert_eq!(redirects, [FollowRedirects::Any, FollowRedirects::Never]);
}

#[test]
fn streams_spread_round_robin() {
    let demo = "source = \"file:configs/media/demo.flv\"";
    let s = validate(&format!(
        "[[streams]]\npath = \"a\"\n{demo}\n[[streams]]\npath = \"b\"\n{demo}\n[[streams]]\npath = \"c\"\n{demo}\nshard = 0\n"
    ))
    .unwrap();
    let shards: Vec<usize> = s.table.plans.iter().map(|p| p.shard).collect();
    assert_eq!(shards, [0, 1, 0]);
}

#[test]
fn publish_keys_per_path_and_global() {
    let s = validate(
        "[rtmp]\npublish_key = \"all\"\n[[streams]]\npath = \"live/cam\"\npublish_key = \"cam\"\n",
    )
    .unwrap();
    let global = s.config.rtmp.publish_key.as_deref();
    assert_eq!(s.table.publish_key("live/cam", global), Some("cam"));
    assert_eq!(s.table.publish_key("live/other", global), Some("all"));
    assert!(s.table.plans.is_empty());
    let s = validate("").unwrap();
    assert_eq!(s.table.publish_key("live/x", None), None);
}

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("16KiB"), Ok(16384));
    assert_eq!(parse_size("8MiB"), Ok(8 << 20));
    assert_eq!(parse_size("512"), Ok(512));
    assert!(parse_size("lots").is_err());
    assert!(parse_size("99999999999999GiB").is_err());
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("10").is_err());
}

#[test]
fn printed_config_parses_back_to_the_same() {
    let c = Config::parse(DEFAULT_CONFIG).unwrap();
    let again = Config::parse(&c.to_toml()).unwrap();
    assert_eq!(c, again);
}

#[test]
fn paths_normalize() {
    let p = |s: &str| StreamPath::parse(s).map(|p| p.to_string());
    assert_eq!(p("/live/cam1/").as_deref(), Ok("live/cam1"));
    assert!(p("live//cam").is_err());
    assert!(p("../etc").is_err());
    assert!(p("").is_err());
    assert_eq!(
        StreamPath::parse("a b").unwrap_err().to_string(),
        "character ' ' not allowed in a stream path"
    );
}

#[test]
fn stream_paths_are_stream_paths() {
    let demo = "source = \"file:configs/media/demo.flv\"";
    let s = validate(&format!(
        "[[streams]]\npath = \"/live/cam1/\"\n{demo}\n[[streams]]\npath = \"push\"\npublish_key = \"k\"\n"
    ))
    .unwrap();
    assert_eq!(
        s.table.plans[0].path,
        StreamPath::parse("live/cam1").unwrap()
    );
    assert!(s.table.has_source("live/cam1"));
    assert!(
        !s.table.has_source("/live/cam1/"),
        "callers pass normalised paths"
    );
    assert_eq!(s.table.publish_key("push", None), Some("k"));
    let e = validate(&format!("[[streams]]\npath = \"a%zz\"\n{demo}\n")).unwrap_err();
    assert_eq!(e.key, "streams[0].path");
    assert_eq!(e.message, "bad percent-escape in a stream path");
    let e = validate(&format!("[[streams]]\npath = \"live//x\"\n{demo}\n")).unwrap_err();
    assert_eq!(e.message, "empty, '.' or '..' path segment");
}

#[test]
fn per_address_connection_limits_are_checked() {
    let s = validate("").expect("defaults");
    assert_eq!(s.config.http.max_connections_per_ip, 256);
    assert_eq!(s.config.rtmp.max_connections_per_ip, 64);
    for key in ["http", "rtmp"] {
        for bad in ["-1", "1000001"] {
            let e = validate(&format!("[{key}]\nmax_connections_per_ip = {bad}\n")).unwrap_err();
            assert_eq!(e.key, format!("{key}.max_connections_per_ip"));
        }
        let e = validate(&format!("[{key}]\nmax_connections_per_ip = 1000001\n")).unwrap_err();
        assert!(e.message.contains("0 turns the limit off"), "{e}");
        validate(&format!("[{key}]\nmax_connections_per_ip = 0\n")).expect("0: no limit");
        let s = validate(&format!("[{key}]\nmax_connections_per_ip = 2\n")).expect("valid");
        let v = if key == "http" {
            s.config.http.max_connections_per_ip
        } else {
            s.config.rtmp.max_connections_per_ip
        };
        assert_eq!(v, 2);
    }
}

#[test]
fn webrtc_abuse_bounds() {
    let w = validate("").expect("defaults").config.webrtc;
    assert_eq!(w.max_sessions_per_ip, 64);
    assert_eq!(w.keyframe_interval.0, Duration::from_secs(2));
    assert_eq!(w.gop_resend_budget, ByteSize(32 << 20));
    let w = validate("[webrtc]\nmax_sessions_per_ip = 0\n").expect("0: no limit");
    assert_eq!(w.config.webrtc.max_sessions_per_ip, 0);
    let e = validate("[webrtc]\ngop_resend_budget = \"1KiB\"\n").unwrap_err();
    assert_eq!(e.key, "webrtc.gop_resend_budget");
    let e = validate("[webrtc]\nkeyframe_interval = \"10ms\"\n").unwrap_err();
    assert_eq!(e.key, "webrtc.keyframe_interval");
    let e = validate("[webrtc]\nmax_sessions_per_ip = -1\n").unwrap_err();
    assert_eq!(e.key, "webrtc.max_sessions_per_ip");
}

#[test]
fn configured_paths_sharing_an_rtmp_name_are_refused() {
    let demo = "source = \"file:configs/media/demo.flv\"";
    let e = validate(&format!(
        "[[streams]]\npath = \"demo\"\n{demo}\n[[streams]]\npath = \"live/demo\"\npublish_key = \"k\"\n"
    ))
    .unwrap_err();
    assert_eq!(e.key, "streams[live/demo].path");
    assert!(e.message.contains("share an RTMP name"), "{}", e.message);
    let e = validate(&format!(
        "[[streams]]\npath = \"live/demo\"\n{demo}\n[[streams]]\npath = \"demo\"\n{demo}\n"
    ))
    .unwrap_err();
    assert_eq!(e.key, "streams[demo].path");
    let s = validate(&format!(
        "[[streams]]\npath = \"demo\"\n{demo}\n[[streams]]\npath = \"live/a/demo\"\npublish_key = \"k\"\n"
    ))
    .unwrap();
    let held: Vec<(&str, Holder)> = s.table.configured_paths();
    assert_eq!(
        held,
        [
            ("demo", Holder::Source),
            ("live/a/demo", Holder::PublishTarget)
        ]
    );
}

#[test]
fn allow_origins_are_origins() {
    let ok = validate(
        "[http]\nallow_origins = [\"*\", \"http://a.example\", \"https://A.example:8443\", \"http://[::1]:8080\"]\n",
    );
    assert!(ok.is_ok(), "{ok:?}");
    assert!(validate("").unwrap().config.http.allow_origins.is_empty());
    for (bad, i) in [
        ("\"a.example\"", 0),
        ("\"*\", \"http://a.example/\"", 1),
        ("\"http://a.example/page\"", 0),
        ("\"ftp://a.example\"", 0),
        ("\"http://\"", 0),
        ("\"http://a.example:0\"", 0),
        ("\"http://[::1]x\"", 0),
    ] {
        let e = validate(&format!("[http]\nallow_origins = [{bad}]\n")).unwrap_err();
        assert_eq!(e.key, format!("http.allow_origins[{i}]"), "{bad}");
        assert!(e.message.contains("is not an origin"), "{}", e.message);
    }
}

#[test]
fn tls_is_off_by_default_and_an_empty_tls_listen_is_off() {
    let s = validate("").expect("valid");
    assert!(s.tls.http.is_none() && s.tls.rtmp.is_none());
    let s = validate("[http]\ntls_listen = \"\"\n[rtmp]\ntls_listen = \" \"\n").expect("valid");
    assert!(s.tls.http.is_none() && s.tls.rtmp.is_none());
    assert!(s.tls.certificates().is_empty());
}

#[test]
fn tls_key_errors_name_the_key() {
    let e = |t: &str| validate(t).expect_err("refused").key;
    assert_eq!(e("[http]\ntls_listen = \"127.0.0.1:0\"\n"), "http.tls_cert");
    assert_eq!(e("[http]\ntls_cert = \"c.pem\"\n"), "http.tls_key");
    assert_eq!(e("[http]\ntls_key = \"k.pem\"\n"), "http.tls_cert");
    assert_eq!(e("[rtmp]\ntls_listen = \"127.0.0.1:0\"\n"), "rtmp.tls_cert");
    assert_eq!(
        e("[rtmp]\ntls_listen = \"127.0.0.1:0\"\ntls_cert = \"c.pem\"\n"),
        "rtmp.tls_key"
    );
    assert_eq!(
        e(
            "[http]\ntls_listen = \"127.0.0.1:0\"\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n"
        ),
        "http.tls_cert"
    );
    let err = Config::parse("[http]\ntls_listen = \"8443\"\n").expect_err("not an address");
    assert_eq!(err.key, "http.tls_listen");
}
