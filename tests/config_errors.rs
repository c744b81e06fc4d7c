//! A bad configuration or environment stops the binary with one clear line and exit code 2.
#![allow(clippy::disallowed_methods)] // Tests and benchmarks drive real time.

mod common;

use common::*;

fn expect_exit_2(config: &str, needle: &str) {
    let path = write_config("cfg", config);
    let (code, err) = run_to_exit(&["--config", path.to_str().expect("utf8")], None);
    assert_eq!(code, 2, "stderr: {err}");
    assert!(
        err.contains(needle),
        "stderr {err:?} does not mention {needle:?}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn unknown_key() {
    expect_exit_2("[runtime]\nshardz = 2\n", "runtime.shardz");
}

#[test]
fn wrong_type() {
    expect_exit_2("[http]\nlisten = 8080\n", "http.listen");
    expect_exit_2("[runtime]\nshards = \"lots\"\n", "runtime.shards");
}

#[test]
fn bad_cpu_id() {
    expect_exit_2("[runtime]\ncpus = [4096]\n", "runtime.cpus[0]");
}

#[test]
fn duplicate_path_and_missing_file() {
    let demo = demo_stream("a", 0).replace("shard = 0\n", "");
    expect_exit_2(&format!("{demo}{demo}"), "streams[a].path");
    expect_exit_2(
        "[[streams]]\npath = \"a\"\nsource = \"file:/nonexistent/x.flv\"\n",
        "streams[a].source",
    );
}

#[test]
fn port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    expect_exit_2(
        &test_config("").replace(
            "[http]\nlisten = \"127.0.0.1:0\"",
            &format!("[http]\nlisten = \"127.0.0.1:{port}\""),
        ),
        "http.listen",
    );
}

#[test]
fn unreadable_config_file() {
    let (code, err) = run_to_exit(&["--config", "/nonexistent/corecast.toml"], None);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn print_config_prints_the_effective_config() {
    let (code, _) = run_to_exit(&["--print-config"], None);
    assert_eq!(code, 0);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corecast"))
        .arg("--print-config")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("[runtime]") && text.contains("io_memory = \"512KiB\""),
        "{text}"
    );
    assert!(text.contains("path = \"demo\""), "{text}");
}

fn low_memlock() {
    let lim = libc::rlimit {
        rlim_cur: 128 * 1024,
        rlim_max: 128 * 1024,
    };
    // SAFETY: setrlimit with a valid rlimit; called between fork and exec.
    unsafe {
        libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim);
    }
}

#[test]
fn too_low_memlock_names_the_limit_and_the_fix() {
    let path = write_config("memlock", &test_config(""));
    let (code, err) = run_to_exit(
        &["--config", path.to_str().expect("utf8")],
        Some(low_memlock),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("RLIMIT_MEMLOCK is 128 KiB"), "{err}");
    assert!(err.contains("ulimit -l"), "{err}");
}

/// A test PKI in a temp dir: `cert.pem`/`key.pem` (a leaf for 127.0.0.1) and `ca.pem`.
fn tls_files(tag: &str) -> common::tls::Pki {
    let dir = std::env::temp_dir().join(format!(
        "corecast-test-cfg-tls-{tag}-{}",
        std::process::id()
    ));
    common::tls::Pki::new(&dir)
}

fn with_http(lines: &str) -> String {
    test_config_http(lines, "")
}

#[test]
fn tls_listen_without_a_certificate() {
    expect_exit_2(
        &with_http("tls_listen = \"127.0.0.1:0\"\n"),
        "http.tls_cert",
    );
    expect_exit_2(
        &test_config_sections("", "tls_listen = \"127.0.0.1:0\"\n", ""),
        "rtmp.tls_cert",
    );
    expect_exit_2(&with_http("tls_listen = \"8443\"\n"), "http.tls_listen");
}

#[test]
fn tls_missing_or_bad_certificate_or_mismatched_key() {
    let pki = tls_files("bad");
    let lines = |cert: &std::path::Path, key: &std::path::Path| {
        format!(
            "tls_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        )
    };
    let missing = pki.dir.join("absent.pem");
    expect_exit_2(&with_http(&lines(&missing, &pki.key)), "http.tls_cert");
    expect_exit_2(&with_http(&lines(&pki.cert, &missing)), "http.tls_key");
    let junk = pki.dir.join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    expect_exit_2(&with_http(&lines(&junk, &pki.key)), "http.tls_cert");
    expect_exit_2(&with_http(&lines(&pki.cert, &junk)), "http.tls_key");
    // A key of another certificate.
    let other = pki.issue();
    let other_key = pki.dir.join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).expect("write");
    expect_exit_2(&with_http(&lines(&pki.cert, &other_key)), "http.tls_key");
    // RTMPS with its own files: the errors name the rtmp keys.
    expect_exit_2(
        &test_config_sections("", &lines(&pki.cert, &other_key), ""),
        "rtmp.tls_key",
    );
}

#[test]
fn tls_port_in_use() {
    let pki = tls_files("port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let lines = pki
        .http_lines()
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    expect_exit_2(&with_http(&lines), "http.tls_listen");
}
