//! Test certificates (a CA and leaves for `127.0.0.1`/`localhost`, made with rcgen) and a
//! rustls client that reports the certificate the server served.
#![allow(dead_code)]

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::Digest;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A leaf certificate and its key, PEM and DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
    /// base64 of the SHA-256 of the leaf's SubjectPublicKeyInfo (Chromium's
    /// `--ignore-certificate-errors-spki-list`).
    pub spki_sha256: String,
}

/// A test CA, with `ca.pem`, `cert.pem` and `key.pem` (a first leaf) written in `dir`.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    pub dir: PathBuf,
    pub ca_pem: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub leaf: Leaf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "corecast test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key"))
            .expect("ca cert");
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("write ca");
        let mut pki = Pki {
            ca,
            dir: dir.to_path_buf(),
            ca_pem,
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            leaf: Leaf {
                cert_pem: String::new(),
                key_pem: String::new(),
                der: Vec::new(),
                spki_sha256: String::new(),
            },
        };
        pki.leaf = pki.issue();
        pki.install(&pki.leaf);
        pki
    }

    /// A new leaf for `127.0.0.1` and `localhost` signed by the CA (a new key each time).
    pub fn issue(&self) -> Leaf {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf cert");
        let spki = sha2::Sha256::digest(key.subject_public_key_info());
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
            spki_sha256: base64::engine::general_purpose::STANDARD.encode(spki),
        }
    }

    /// Writes `leaf` over `cert.pem` and `key.pem` (each replaced by a rename, as a
    /// certificate renewal tool does).
    pub fn install(&self, leaf: &Leaf) {
        for (path, text) in [(&self.key, &leaf.key_pem), (&self.cert, &leaf.cert_pem)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("write pem");
            std::fs::rename(&tmp, path).expect("rename pem");
        }
    }

    /// `[http]` lines serving HTTPS on an ephemeral loopback port with this PKI's files.
    pub fn http_lines(&self) -> String {
        format!(
            "tls_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            self.cert.display(),
            self.key.display()
        )
    }

    /// A rustls client config trusting this CA.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca.der().to_vec()))
            .expect("add CA");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(cfg)
    }

    /// Connects to `addr` over TLS (verifying against the CA, as `127.0.0.1`) and
    /// completes the handshake.
    pub fn connect(&self, addr: SocketAddr) -> TlsClient {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let conn = rustls::ClientConnection::new(self.client_config(), name).expect("client");
        let mut s = rustls::StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .expect("TLS handshake with the server");
        }
        TlsClient(s, addr)
    }
}

/// A TLS client connection.
pub struct TlsClient(
    pub rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    SocketAddr,
);

impl TlsClient {
    /// The DER of the certificate the server presented.
    pub fn served(&self) -> Vec<u8> {
        self.0
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .expect("server certificate")
    }

    /// Sends a GET for `path` (keep-alive) and reads the answer.
    pub fn get(&mut self, path: &str, headers: &str) -> super::HttpResponse {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n{headers}\r\n", self.1);
        self.0.write_all(req.as_bytes()).expect("send request");
        self.0.flush().expect("flush");
        let mut r = std::io::BufReader::new(&mut self.0);
        super::read_response(&mut r).expect("an HTTP answer over TLS")
    }
}
