//! HTTPS serving with rustls (aws-lc-rs provider): loading a PEM certificate
//! chain and key into a server configuration, and serving an axum `Router`
//! over TLS with HTTP/1.1. Every request carries the peer address as
//! `ConnectInfo<SocketAddr>` and the negotiated protocol and cipher suite as
//! [`TlsInfo`], the fields CloudTrail records in `tlsDetails`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, ProtocolVersion, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long in-flight connections may run after shutdown starts before they are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pause after an accept error that is not about a single connection (e.g. too many open files).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Why a TLS certificate or key could not be loaded. Each message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS {kind} file {}: {source}", path.display())]
    Read {
        kind: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("TLS {kind} file {} is not valid PEM: {detail}", path.display())]
    Pem {
        kind: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error(
        "TLS certificate file {} contains no certificate (expected a '-----BEGIN CERTIFICATE-----' block)",
        path.display()
    )]
    NoCertificate { path: PathBuf },
    #[error("TLS certificate file {}: the first certificate cannot be used: {detail}", path.display())]
    BadCertificate { path: PathBuf, detail: String },
    #[error(
        "TLS key file {} contains no private key (expected a 'BEGIN PRIVATE KEY', 'BEGIN RSA PRIVATE KEY' or 'BEGIN EC PRIVATE KEY' block)",
        path.display()
    )]
    NoKey { path: PathBuf },
    #[error("TLS key file {}: the private key cannot be used: {detail}", path.display())]
    BadKey { path: PathBuf, detail: String },
    #[error(
        "TLS key file {} does not match the certificate in {} (the key's public key differs from the certificate's)",
        key.display(),
        cert.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS configuration from {} and {} failed: {detail}", cert.display(), key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// Loads a PEM certificate chain (end-entity certificate first) and a PEM private key
/// (PKCS#8, PKCS#1 RSA or SEC1 EC) into a server configuration: TLS 1.2 and 1.3 with the
/// aws-lc-rs provider, no client authentication, ALPN `http/1.1`.
pub fn load_config(cert_pem: &Path, key_pem: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certificates(cert_pem)?;
    let key = read_key(key_pem)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    check_pair(&provider, &chain, &key, cert_pem, key_pem)?;
    let config_error = |e: rustls::Error| TlsError::Config {
        cert: cert_pem.to_path_buf(),
        key: key_pem.to_path_buf(),
        detail: e.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(config_error)?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

fn read_file(kind: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        kind,
        path: path.to_path_buf(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file("certificate", path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            kind: "certificate",
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file("key", path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(key) => Ok(key),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoKey {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(TlsError::Pem {
            kind: "key",
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// Tells which file is at fault before rustls builds the configuration: an unusable key,
/// an unparsable certificate, or a key that belongs to another certificate.
fn check_pair(
    provider: &CryptoProvider,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), TlsError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::BadKey {
            path: key_path.to_path_buf(),
            detail: e.to_string(),
        })?;
    match CertifiedKey::new(chain.to_vec(), signing_key).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        }),
        Err(e) => Err(TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// What a connection negotiated, in CloudTrail's `tlsDetails` form. Every request served by
/// [`serve_tls`] carries one as an extension (`axum::Extension<TlsInfo>`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsInfo {
    /// "TLSv1.2" or "TLSv1.3".
    pub tls_version: String,
    /// OpenSSL-style name for TLS 1.2 ("ECDHE-RSA-AES128-GCM-SHA256"), IANA name for TLS 1.3
    /// ("TLS_AES_128_GCM_SHA256").
    pub cipher_suite: String,
    /// The request's Host header; None at connection level, see [`TlsInfo::with_host`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_provided_host_header: Option<String>,
}

impl TlsInfo {
    /// Reads the protocol version and cipher suite of a connection whose handshake is done.
    pub fn from_connection(conn: &ServerConnection) -> TlsInfo {
        TlsInfo {
            tls_version: conn
                .protocol_version()
                .map(tls_version_name)
                .unwrap_or_default(),
            cipher_suite: conn
                .negotiated_cipher_suite()
                .map(|s| cipher_suite_name(s.suite()))
                .unwrap_or_default(),
            client_provided_host_header: None,
        }
    }

    /// This connection's details with the request's Host header filled in.
    pub fn with_host(&self, headers: &http::HeaderMap) -> TlsInfo {
        TlsInfo {
            client_provided_host_header: headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            ..self.clone()
        }
    }
}

/// CloudTrail's `tlsVersion` for a protocol version: "TLSv1.2", "TLSv1.3".
pub fn tls_version_name(version: ProtocolVersion) -> String {
    match version {
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        ProtocolVersion::TLSv1_1 => "TLSv1.1".to_owned(),
        ProtocolVersion::TLSv1_0 => "TLSv1".to_owned(),
        other => format!("{other:?}"),
    }
}

/// CloudTrail's `cipherSuite` for a suite: the OpenSSL name for TLS 1.2 suites and the IANA
/// name for TLS 1.3 suites, covering every suite of the aws-lc-rs provider; others get the
/// rustls name ("TLS_RSA_WITH_AES_128_GCM_SHA256"), or "CipherSuite(0x1234)" if unknown.
pub fn cipher_suite_name(suite: CipherSuite) -> String {
    let name = match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "ECDHE-ECDSA-CHACHA20-POLY1305"
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        other => {
            return other
                .as_str()
                .map_or_else(|| format!("{other:?}"), str::to_owned);
        }
    };
    name.to_owned()
}

/// Serves `app` over HTTPS until `shutdown` resolves, then stops accepting, lets open
/// connections finish their requests for up to [`SHUTDOWN_GRACE`], drops the rest and returns.
///
/// Each connection does its handshake in its own task (at most [`HANDSHAKE_TIMEOUT`]); failed
/// handshakes are logged at debug level. Requests carry `ConnectInfo<SocketAddr>` and
/// [`TlsInfo`] extensions. Only HTTP/1.1 is served: any other ALPN protocol in `config` is
/// not offered.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(http11_only(config));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(connection(
                        acceptor.clone(),
                        tcp,
                        peer,
                        app.clone(),
                        stop_rx.clone(),
                    ));
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "accepting a TLS connection failed");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting connections failed; retrying shortly");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    // Receivers see the change even if they subscribed late; an error only means none are left.
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            connections = connections.len(),
            "dropping TLS connections still open after the shutdown grace period"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// The configuration with ALPN limited to `http/1.1`, since that is all `serve_tls` speaks.
fn http11_only(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
    if config.alpn_protocols.iter().all(|p| p == ALPN_HTTP11) {
        return config;
    }
    let mut config = ServerConfig::clone(&config);
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Arc::new(config)
}

/// Errors about one connection only, after which accepting can go on at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn connection(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "setting TCP_NODELAY failed");
    }
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let stream = tokio::select! {
        result = handshake => match result {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = stopping(&mut stop) => return,
    };
    let info = TlsInfo::from_connection(stream.get_ref().1);
    let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(info.clone());
        // A Router is always ready, so calling it without poll_ready is fine.
        tower::Service::call(&mut app.clone(), request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stopping(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
    }
}

/// Resolves once shutdown has started (or the server is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stopping| *stopping).await;
}
