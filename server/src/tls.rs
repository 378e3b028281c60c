//! TLS on the listeners, with rustls: the certificate, key and client CA
//! read from the `[tls]` section's files, and read again on
//! [`Server::reload_tls`](crate::Server::reload_tls) (chainlogd calls it on SIGHUP). A reload that
//! fails keeps what is in force; connections already open keep the
//! certificate they were made with.
//!
//! The handshake runs in the connection's own task, after the connection
//! has taken its place among `max_connections`, within the frame timeout
//! (the metrics listener's header timeout there); then the protocol's
//! preamble has a frame timeout of its own. So a client that connects and
//! says nothing holds a place for at most twice the frame timeout.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::{ClientAuth, Listener, TlsConfig};
use crate::ctx::Ctx;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file is missing, unreadable, or not PEM of the right kind.
    #[error("tls {what} {path}: {why}")]
    File {
        /// `cert`, `key` or `client_ca`.
        what: &'static str,
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// rustls refused the combination (a key that does not match the
    /// certificate, say); the message names the files.
    #[error("tls: {0}")]
    Rejected(String),
}

/// The acceptors in force, one per listener kind (they differ in ALPN).
#[derive(Clone)]
struct Acceptors {
    protocol: TlsAcceptor,
    http: TlsAcceptor,
}

/// TLS for the server's listeners.
pub(crate) struct Tls {
    config: TlsConfig,
    current: RwLock<Acceptors>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files; an error names the file and what is wrong.
    pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
        Ok(Tls {
            config: config.clone(),
            current: RwLock::new(acceptors(config)?),
        })
    }

    /// Reads the files again; on success new connections use them, on
    /// failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = acceptors(&self.config)?;
        *self.current.write() = fresh;
        Ok(())
    }

    /// The acceptor for `l`, if it speaks TLS.
    pub fn acceptor(&self, l: Listener) -> Option<TlsAcceptor> {
        if !self.config.covers(l) {
            return None;
        }
        let a = self.current.read();
        Some(match l {
            Listener::Protocol => a.protocol.clone(),
            Listener::Http | Listener::Metrics => a.http.clone(),
        })
    }
}

/// Takes a connection just accepted on listener `l`: over TLS if `l`
/// speaks it, the handshake completed within `limit` (and given up if the
/// server stops); as it is otherwise. `None`: the handshake failed, which
/// is counted and logged, and the connection is dropped.
pub(crate) async fn accept(
    ctx: &Ctx,
    l: Listener,
    stream: TcpStream,
    peer: SocketAddr,
    limit: Duration,
) -> Option<Stream> {
    let Some(acceptor) = ctx.tls_acceptor(l) else {
        return Some(Stream::Plain(stream));
    };
    let mut stop = ctx.stop_signal();
    let why = tokio::select! {
        r = tokio::time::timeout(limit, acceptor.accept(stream)) => match r {
            Ok(Ok(s)) => return Some(Stream::Tls(Box::new(s))),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no handshake within {} ms", limit.as_millis()),
        },
        () = crate::ctx::stopped(&mut stop) => return None,
    };
    ctx.metrics
        .tls_handshake_failures
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, listener = l.name(), error = %why, "tls handshake failed");
    None
}

/// A connection's bytes: plain TCP, or TLS over it.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
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
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    /// Over TLS, sends close_notify first.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn acceptors(c: &TlsConfig) -> Result<Acceptors, TlsError> {
    let base = server_config(c)?;
    let mut http = base.clone();
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Acceptors {
        protocol: TlsAcceptor::from(Arc::new(base)),
        http: TlsAcceptor::from(Arc::new(http)),
    })
}

fn server_config(c: &TlsConfig) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let rejected = |e: rustls::Error| TlsError::Rejected(e.to_string());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(rejected)?;
    let builder = if let Some(auth) = c.client_auth() {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates("client_ca", &c.client_ca)? {
            roots.add(cert).map_err(|e| TlsError::File {
                what: "client_ca",
                path: c.client_ca.display().to_string(),
                why: e.to_string(),
            })?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = match auth {
            ClientAuth::Required => verifier,
            ClientAuth::Optional => verifier.allow_unauthenticated(),
        };
        builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::File {
            what: "client_ca",
            path: c.client_ca.display().to_string(),
            why: e.to_string(),
        })?)
    } else {
        builder.with_no_client_auth()
    };
    let chain = certificates("cert", &c.cert)?;
    let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| TlsError::File {
        what: "key",
        path: c.key.display().to_string(),
        why: pem_error(e),
    })?;
    builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::Rejected(format!(
            "cert {} with key {}: {e}",
            c.cert.display(),
            c.key.display()
        ))
    })
}

/// Every certificate in a PEM file; at least one.
fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |why: String| TlsError::File {
        what,
        path: path.display().to_string(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(pem_error(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(pem_error(e)))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE in it".into()));
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(e) => e.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of this kind in it".into(),
        other => format!("not valid PEM: {other:?}"),
    }
}
