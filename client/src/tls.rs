//! TLS for the client (rustls): which certificate authorities to trust,
//! an optional client certificate, and the connection's byte stream,
//! plain or TLS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::ClientError;

/// How to connect over TLS: the CAs the server's certificate must chain
/// to, and the certificate to present if the server asks for one.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    config: Arc<rustls::ClientConfig>,
    server_name: Option<String>,
}

impl TlsOptions {
    /// Trusts the CA certificates in the PEM file `ca`, or without one the
    /// system's; presents `identity` (a PEM certificate chain and its
    /// private key) if given.
    pub fn new(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<TlsOptions, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                for cert in read_certificates(path)? {
                    roots
                        .add(cert)
                        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    // A system certificate rustls cannot use is skipped, as
                    // other TLS clients skip it.
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(tls_error(
                        "no system CA certificates found: name a CA file".into(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = read_certificates(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls_error(format!("{}: {e:?}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_error(e.to_string()))?
            }
        };
        Ok(TlsOptions {
            config: Arc::new(config),
            server_name: None,
        })
    }

    /// Checks the server's certificate against `name` instead of the host
    /// in the address (to connect by IP address to a certificate issued
    /// for a DNS name, say).
    pub fn with_server_name(mut self, name: impl Into<String>) -> TlsOptions {
        self.server_name = Some(name.into());
        self
    }

    /// Completes a handshake over `sock` with the server at `addr`
    /// (`host:port`), whose host names the certificate unless
    /// [`with_server_name`](Self::with_server_name) said otherwise.
    pub(crate) fn handshake(
        &self,
        addr: &str,
        mut sock: TcpStream,
    ) -> Result<Transport, ClientError> {
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => host_of(addr).to_string(),
        };
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| tls_error(format!("{name:?} is not a DNS name or IP address")))?;
        let mut conn = rustls::ClientConnection::new(self.config.clone(), server_name)
            .map_err(|e| tls_error(e.to_string()))?;
        // The handshake has its own deadline; afterwards reads block as on
        // a plain connection.
        sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(|e| tls_error(format!("handshake with {addr}: {e}")))?;
        }
        sock.set_read_timeout(None)?;
        Ok(Transport::Tls(Box::new(rustls::StreamOwned::new(
            conn, sock,
        ))))
    }
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The host part of `host:port` (`[::1]:7400` gives `::1`).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let err = |e: rustls::pki_types::pem::Error| tls_error(format!("{}: {e:?}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "{}: no CERTIFICATE in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The TLS failure inside an I/O error, if that is what it is: how rustls
/// reports, on the first read after a TLS 1.3 handshake, that the server
/// refused this client's certificate (or sent no certificate request that
/// the client could meet).
pub(crate) fn refusal(e: &std::io::Error) -> Option<ClientError> {
    let r = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(tls_error(format!("the server refused the connection: {r}")))
}

fn tls_error(m: String) -> ClientError {
    ClientError::Tls(m)
}

/// A connection's bytes: plain TCP or TLS over it.
#[derive(Debug)]
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    /// The TCP socket under it.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &s.sock,
        }
    }

    /// The server's certificate (DER), over TLS.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(s) => s.conn.peer_certificates()?.first().map(|c| c.to_vec()),
        }
    }

    /// Says goodbye (TLS close_notify) and closes the socket.
    pub fn close(&mut self) {
        if let Transport::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let _ = self.socket().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn the_host_of_an_address() {
        assert_eq!(host_of("localhost:7400"), "localhost");
        assert_eq!(host_of("127.0.0.1:7400"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7400"), "::1");
        assert_eq!(host_of("db.example.com"), "db.example.com");
    }
}
