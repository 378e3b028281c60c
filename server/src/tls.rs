//! TLS on the listeners, with rustls: the certificate, key and client CA
//! read from the `[tls]` section's files, and read again on
//! [`Server::reload_tls`](crate::Server::reload_tls) (chainlogd calls it on SIGHUP). A reload that
//! fails keeps what is in force; connections already open keep the
//! certificate they were made with.
//!
//! The handshake runs in the connection's own task, within the frame
//! timeout, after the connection has taken its place among
//! `max_connections`, so a client that connects and says nothing holds a
//! place for at most that long.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
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
    /// certificate, a CA that is not one).
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

/// Completes the TLS handshake within `limit` (the frame timeout, or less
/// for a connection that is refused). A failure is counted and logged; the
/// connection is then dropped.
pub(crate) async fn handshake(
    ctx: &Ctx,
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    limit: std::time::Duration,
) -> Option<TlsStream<TcpStream>> {
    let why = match tokio::time::timeout(limit, acceptor.accept(stream)).await {
        Ok(Ok(s)) => return Some(s),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no handshake within {} ms", limit.as_millis()),
    };
    ctx.metrics
        .tls_handshake_failures
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, error = %why, "tls handshake failed");
    None
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
    let builder = if c.client_ca.as_os_str().is_empty() {
        builder.with_no_client_auth()
    } else {
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
        let verifier = match c.client_auth {
            ClientAuth::Required => verifier,
            ClientAuth::Optional => verifier.allow_unauthenticated(),
        };
        builder.with_client_cert_verifier(
            verifier
                .build()
                .map_err(|e| TlsError::Rejected(e.to_string()))?,
        )
    };
    let chain = certificates("cert", &c.cert)?;
    let key = PrivateKeyDer::from_pem_file(&c.key).map_err(|e| TlsError::File {
        what: "key",
        path: c.key.display().to_string(),
        why: pem_error(e),
    })?;
    builder.with_single_cert(chain, key).map_err(rejected)
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
