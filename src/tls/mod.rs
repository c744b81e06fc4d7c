//! TLS for the TCP listeners (HTTPS and RTMPS), with rustls over the aws-lc-rs provider.
//!
//! - [`Certificate`]: a certificate chain and key loaded from PEM files, served through a
//!   rustls [`ResolvesServerCert`] whose current [`CertifiedKey`] [`Certificate::reload`]
//!   swaps (SIGHUP): the next handshake gets the new one, open connections keep theirs.
//! - [`Acceptor`]: the rustls server config of one listener; [`Acceptor::accept`] runs
//!   the handshake over an accepted socket, with bounded buffers.
//! - [`Stream`]: what the HTTP and RTMP drivers read and write, plain TCP or TLS over it.
//!   Both implement the same `futures-io` traits, so a driver is the same code either way.
//!
//! The module knows nothing of HTTP or RTMP; the drivers use it.

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

/// Most bytes of TLS records and unsent plaintext rustls buffers per connection before a
/// write waits for the socket: a peer that does not read cannot make it grow.
pub const BUFFER_LIMIT: usize = 256 * 1024;

/// Which of the two PEM files a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFile {
    /// The certificate chain.
    Cert,
    /// The private key.
    Key,
}

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file holds no usable PEM section of the expected kind.
    #[error("{}: {why}", path.display())]
    Pem {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The key does not belong to the certificate, or is of a kind rustls cannot use.
    #[error("{}: {why}", path.display())]
    Key {
        /// The key's path.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl TlsError {
    /// The file the error is about.
    pub fn file(&self) -> PemFile {
        match self {
            TlsError::Read { file, .. } | TlsError::Pem { file, .. } => *file,
            TlsError::Key { .. } => PemFile::Key,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads the certificate chain at `cert` and the private key at `key` (PEM), and checks
/// that the key belongs to the first certificate.
pub fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |file, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            file,
            path: path.to_path_buf(),
            source,
        })
    };
    let pem_err = |file, path: &Path, why: String| TlsError::Pem {
        file,
        path: path.to_path_buf(),
        why,
    };
    let cert_pem = read(PemFile::Cert, cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(PemFile::Cert, cert, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        let why = "no CERTIFICATE section found (expected a PEM certificate chain)".into();
        return Err(pem_err(PemFile::Cert, cert, why));
    }
    let key_pem = read(PemFile::Key, key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        let why = match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY section found (expected a PEM private key)".to_string()
            }
            e => format!("bad PEM: {e}"),
        };
        pem_err(PemFile::Key, key, why)
    })?;
    CertifiedKey::from_der(chain, key_der, &provider()).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        why: match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the key does not match the certificate in {}",
                cert.display()
            ),
            e => format!("unusable key or certificate: {e}"),
        },
    })
}

/// A certificate and key loaded from PEM files, swappable while the server runs. Shared
/// by every shard (the handshake takes a read lock for one `Arc` clone).
#[derive(Debug)]
pub struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificate {
    /// Loads the certificate chain at `cert` and the key at `key`.
    pub fn load(cert: PathBuf, key: PathBuf) -> Result<Self, TlsError> {
        let loaded = load(&cert, &key)?;
        Ok(Certificate {
            cert,
            key,
            current: RwLock::new(Arc::new(loaded)),
        })
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// Reads the files again; on success the next handshake serves what they hold now. On
    /// failure the certificate served stays as it was.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = Arc::new(load(&self.cert, &self.key)?);
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = loaded;
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The TLS side of one listener: its rustls config, shared by every shard.
#[derive(Clone)]
pub struct Acceptor {
    inner: futures_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Acceptor")
    }
}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer did not finish it in time.
    #[error("handshake not completed within {0:?}")]
    Timeout(Duration),
    /// The peer sent something that is not TLS, or TLS rustls refused, or left.
    #[error("handshake failed: {0}")]
    Failed(io::Error),
}

impl Acceptor {
    /// An acceptor serving `cert`, offering the ALPN protocols `alpn` (e.g. `http/1.1`;
    /// none for RTMPS) and sending `tls13_tickets` TLS 1.3 session tickets after the
    /// handshake (0 for RTMPS: librtmp over GnuTLS, as in rtmpdump, takes the ticket
    /// records that arrive before the RTMP handshake for a failed read and gives up; a
    /// long-lived RTMP connection gains nothing from resumption anyway).
    pub fn new(
        cert: Arc<Certificate>,
        alpn: &[&[u8]],
        tls13_tickets: usize,
    ) -> Result<Self, rustls::Error> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(cert);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.max_early_data_size = 0;
        config.send_tls13_tickets = tls13_tickets;
        Ok(Acceptor {
            inner: futures_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Runs the server handshake over `tcp`, bounded by `timeout`.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        timeout: Duration,
    ) -> Result<Stream, HandshakeError> {
        let handshake = async {
            let accept = self.inner.accept_with(tcp, |conn| {
                conn.set_buffer_limit(Some(BUFFER_LIMIT));
            });
            accept.await.map_err(HandshakeError::Failed)
        };
        let timer = async {
            glommio::timer::sleep(timeout).await;
            Err(HandshakeError::Timeout(timeout))
        };
        let tls = futures_lite::future::or(handshake, timer).await?;
        Ok(Stream::Tls(Box::new(tls)))
    }
}

/// A connection as the HTTP and RTMP drivers see it: plain TCP, or TLS over TCP.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (handshake done).
    Tls(Box<futures_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath (addresses, socket options, time-outs).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the bytes go through TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Writes every buffer of `pending` (drained; shared fan-out buffers are written as
    /// they are, never joined) and returns the bytes written.
    ///
    /// Plain TCP: everything goes out in one `sendmsg` when the socket has room (the
    /// common case: one system call however many buffers), what does not fit is written
    /// with glommio, which waits for the socket (bounded by its write time-out). TLS: up
    /// to 64 buffers at a time as one vectored write, which rustls seals into full records
    /// across the buffers (no small record per buffer, no plaintext copy), then flushed
    /// (rustls holds at most [`BUFFER_LIMIT`] of it). `pending` is the caller's scratch
    /// list, kept between calls so that a send costs no allocation.
    pub async fn write_bufs(&mut self, pending: &mut Vec<bytes::Bytes>) -> io::Result<usize> {
        use futures_lite::AsyncWriteExt;
        if pending.is_empty() {
            return Ok(0);
        }
        let total: usize = pending.iter().map(bytes::Bytes::len).sum();
        if self.is_tls() {
            self.write_vectored_all(pending).await?;
            pending.clear();
            self.flush().await?;
            return Ok(total);
        }
        let mut skip = writev_now(self.tcp(), pending)?;
        for b in pending.drain(..) {
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            self.write_all(&b[skip..]).await?;
            skip = 0;
        }
        Ok(total)
    }

    /// Writes `pending` up to 64 buffers at a time as vectored writes, until all is written.
    async fn write_vectored_all(&mut self, pending: &mut [bytes::Bytes]) -> io::Result<()> {
        use futures_lite::AsyncWriteExt;
        const MAX_SLICES: usize = 64;
        let mut done = 0; // buffers fully written
        while done < pending.len() {
            let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
            let batch = &pending[done..pending.len().min(done + MAX_SLICES)];
            for (s, b) in slices.iter_mut().zip(batch) {
                *s = io::IoSlice::new(b);
            }
            let mut n = self.write_vectored(&slices[..batch.len()]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while n > 0 && done < pending.len() {
                let b = &mut pending[done];
                if n < b.len() {
                    bytes::Buf::advance(b, n);
                    n = 0;
                } else {
                    n -= b.len();
                    done += 1;
                }
            }
        }
        Ok(())
    }

    /// Ends the connection: over TLS with a `close_notify` alert (flushed, bounded by the
    /// socket's write time-out), so the peer can tell the end from a cut; plain TCP is
    /// just closed.
    pub async fn close(mut self) {
        use futures_lite::AsyncWriteExt;
        if let Stream::Tls(s) = &mut self {
            s.get_mut().1.send_close_notify();
            let _ = s.flush().await;
        }
    }
}

/// Writes as much of `bufs` as the socket takes right now, without waiting. Returns the
/// number of bytes written (0 if the socket is full).
fn writev_now(stream: &TcpStream, bufs: &[bytes::Bytes]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    const MAX_IOV: usize = 64;
    let mut total = 0;
    let mut start = 0;
    while start < bufs.len() {
        let batch = &bufs[start..bufs.len().min(start + MAX_IOV)];
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOV];
        for (v, b) in iov.iter_mut().zip(batch) {
            v.iov_base = b.as_ptr() as *mut libc::c_void;
            v.iov_len = b.len();
        }
        let want: usize = batch.iter().map(bytes::Bytes::len).sum();
        // SAFETY: zeroed msghdr is valid (no name, no control data); every iovec points
        // into a live `Bytes` of `batch` with its exact length (only the first `batch.len()`
        // entries are passed), and sendmsg only reads them.
        // MSG_DONTWAIT keeps the call from blocking whatever the socket's mode.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
            msg.msg_iovlen = batch.len();
            libc::sendmsg(
                stream.as_raw_fd(),
                &msg,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(total),
                _ => Err(e),
            };
        }
        let n = n as usize;
        total += n;
        if n < want {
            return Ok(total);
        }
        start += batch.len();
    }
    Ok(total)
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Self {
        Stream::Plain(s)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    /// Over TLS, rustls seals the slices into full records without joining them first.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

#[cfg(test)]
mod tests;
