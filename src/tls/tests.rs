use super::*;

struct Pair {
    cert: String,
    key: String,
}

fn pair(name: &str) -> Pair {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("cert");
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("corecast-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("dir");
    d
}

#[test]
fn a_matching_pair_loads() {
    let d = dir("ok");
    let p = pair("localhost");
    let c = write(&d, "c.pem", &p.cert);
    let k = write(&d, "k.pem", &p.key);
    let ck = load(&c, &k).expect("loads");
    assert_eq!(ck.cert.len(), 1);
}

#[test]
fn a_key_of_another_certificate_is_refused_naming_the_key() {
    let d = dir("mismatch");
    let (a, b) = (pair("localhost"), pair("localhost"));
    let c = write(&d, "c.pem", &a.cert);
    let k = write(&d, "k.pem", &b.key);
    let e = load(&c, &k).expect_err("mismatch");
    assert_eq!(e.file(), PemFile::Key);
    assert!(e.to_string().contains("does not match"), "{e}");
}

#[test]
fn missing_files_garbage_and_swapped_files_are_errors_naming_the_file() {
    let d = dir("bad");
    let p = pair("localhost");
    let c = write(&d, "c.pem", &p.cert);
    let k = write(&d, "k.pem", &p.key);
    let junk = write(&d, "junk.pem", "hello\n");
    let broken = write(
        &d,
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let none = d.join("absent.pem");
    let cases = [
        (&none, &k, PemFile::Cert),
        (&c, &none, PemFile::Key),
        (&junk, &k, PemFile::Cert),
        (&broken, &k, PemFile::Cert),
        (&c, &junk, PemFile::Key),
        (&k, &c, PemFile::Cert),
    ];
    for (cert, key, file) in cases {
        let e = load(cert, key).expect_err("refused");
        assert_eq!(e.file(), file, "{cert:?} {key:?}: {e}");
    }
}

#[test]
fn reload_swaps_the_certificate_and_a_failed_one_keeps_the_old() {
    let d = dir("reload");
    let (a, b) = (pair("localhost"), pair("localhost"));
    let c = write(&d, "c.pem", &a.cert);
    let k = write(&d, "k.pem", &a.key);
    let cert = Certificate::load(c.clone(), k.clone()).expect("load");
    let first = cert.current().cert[0].clone();
    write(&d, "c.pem", &b.cert);
    // Certificate replaced, key not yet: the reload fails and the old pair stays.
    assert!(cert.reload().is_err());
    assert_eq!(cert.current().cert[0], first);
    write(&d, "k.pem", &b.key);
    cert.reload().expect("reload");
    assert_ne!(cert.current().cert[0], first);
}
