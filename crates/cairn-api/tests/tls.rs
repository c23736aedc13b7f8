//! HTTPS serving: handshake details and peer address reach handlers, bad clients do not stop
//! the server, configuration errors name the file at fault, shutdown is graceful and prompt.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Router};
use cairn_api::tls::{TlsInfo, cipher_suite_name, load_config, serve_tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Pem {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    cert_pem: String,
}

fn self_signed() -> Pem {
    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_pem = generated.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    Pem {
        _dir: dir,
        cert,
        key,
        cert_pem,
    }
}

async fn echo(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(tls): Extension<TlsInfo>,
    headers: http::HeaderMap,
) -> String {
    serde_json::json!({ "peer": peer.to_string(), "tls": tls.with_host(&headers) }).to_string()
}

fn app() -> Router {
    Router::new().route("/echo", get(echo)).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "done"
        }),
    )
}

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(pem: &Pem) -> Server {
        let config = load_config(&pem.cert, &pem.key).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_tls(listener, app(), config, async move {
            let _ = stopped.await;
        }));
        Server { addr, stop, task }
    }

    /// Triggers shutdown and returns how long `serve_tls` took to return.
    async fn shut_down(self) -> Duration {
        let started = Instant::now();
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("serve_tls returns")
            .unwrap()
            .unwrap();
        started.elapsed()
    }
}

fn client(pem: &Pem, addr: SocketAddr, tls12: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pem.cert_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10));
    if tls12 {
        builder = builder.max_tls_version(reqwest::tls::Version::TLS_1_2);
    }
    builder.build().unwrap()
}

async fn get_echo(client: &reqwest::Client, addr: SocketAddr) -> serde_json::Value {
    let response = client
        .get(format!("https://localhost:{}/echo", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_tls_details_and_peer_address() {
    let pem = self_signed();
    let server = Server::start(&pem).await;
    let host = format!("localhost:{}", server.addr.port());

    let body = get_echo(&client(&pem, server.addr, false), server.addr).await;
    assert_eq!(body["tls"]["tlsVersion"], "TLSv1.3", "{body}");
    let suite = body["tls"]["cipherSuite"].as_str().unwrap();
    assert!(suite.starts_with("TLS_"), "{body}");
    assert_eq!(body["tls"]["clientProvidedHostHeader"], host.as_str());
    let peer: SocketAddr = body["peer"].as_str().unwrap().parse().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.1");
    assert_ne!(peer.port(), 0);

    // rcgen's default key is ECDSA P-256, so TLS 1.2 picks an ECDHE-ECDSA suite.
    let body = get_echo(&client(&pem, server.addr, true), server.addr).await;
    assert_eq!(body["tls"]["tlsVersion"], "TLSv1.2", "{body}");
    let suite = body["tls"]["cipherSuite"].as_str().unwrap();
    assert!(suite.starts_with("ECDHE-ECDSA-"), "{body}");

    assert!(server.shut_down().await < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_the_tls_port_fails_and_serving_goes_on() {
    let pem = self_signed();
    let server = Server::start(&pem).await;

    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    // The server answers with a TLS alert (or nothing) and closes the connection.
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the server closes a plain-HTTP connection");
    assert!(!reply.starts_with(b"HTTP/"), "{reply:?}");

    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://127.0.0.1:{}/echo", server.addr.port());
    assert!(plain.get(url).send().await.is_err());

    let body = get_echo(&client(&pem, server.addr, false), server.addr).await;
    assert_eq!(body["tls"]["tlsVersion"], "TLSv1.3");

    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_prompt_with_idle_and_unfinished_connections() {
    let pem = self_signed();
    let server = Server::start(&pem).await;
    let addr = server.addr;

    // An idle keep-alive connection, and a connection that never starts its handshake.
    let kept = client(&pem, addr, false);
    get_echo(&kept, addr).await;
    let _silent = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let took = server.shut_down().await;
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_request_finish() {
    let pem = self_signed();
    let server = Server::start(&pem).await;
    let c = client(&pem, server.addr, false);
    let url = format!("https://localhost:{}/slow", server.addr.port());
    let request = tokio::spawn(async move { c.get(url).send().await?.text().await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let took = server.shut_down().await;
    assert_eq!(request.await.unwrap().unwrap(), "done");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
}

fn error_text(cert: &Path, key: &Path) -> String {
    match load_config(cert, key) {
        Ok(_) => panic!(
            "load_config({}, {}) succeeded",
            cert.display(),
            key.display()
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn load_config_errors_name_the_file() {
    let pem = self_signed();
    let other = self_signed();
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("missing.pem");
    let msg = error_text(&missing, &pem.key);
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("certificate"), "{msg}");
    let msg = error_text(&pem.cert, &missing);
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("key"), "{msg}");

    // The key file given as the certificate: no certificate in it.
    let msg = error_text(&pem.key, &pem.key);
    assert!(msg.contains(&pem.key.display().to_string()), "{msg}");
    assert!(msg.contains("no certificate"), "{msg}");

    // The certificate file given as the key: no key in it.
    let msg = error_text(&pem.cert, &pem.cert);
    assert!(msg.contains(&pem.cert.display().to_string()), "{msg}");
    assert!(msg.contains("no private key"), "{msg}");

    // Another certificate's key.
    let msg = error_text(&pem.cert, &other.key);
    assert!(msg.contains(&other.key.display().to_string()), "{msg}");
    assert!(msg.contains(&pem.cert.display().to_string()), "{msg}");
    assert!(msg.contains("does not match"), "{msg}");

    // Certificate and key in one file work.
    let both = dir.path().join("both.pem");
    let key_pem = std::fs::read_to_string(&pem.key).unwrap();
    std::fs::write(&both, format!("{}{}", pem.cert_pem, key_pem)).unwrap();
    let config = load_config(&both, &both).unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
}

#[test]
fn every_provider_suite_has_a_cloudtrail_name() {
    for suite in rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES {
        let name = cipher_suite_name(suite.suite());
        match suite.version().version {
            rustls::ProtocolVersion::TLSv1_3 => {
                assert!(name.starts_with("TLS_") && !name.contains("WITH"), "{name}")
            }
            _ => assert!(name.starts_with("ECDHE-") && !name.contains('_'), "{name}"),
        }
    }
    assert_eq!(
        cipher_suite_name(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        "ECDHE-RSA-AES128-GCM-SHA256"
    );
    assert_eq!(
        cipher_suite_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
        "TLS_AES_128_GCM_SHA256"
    );
    // Suites without a mapping keep the rustls name.
    assert_eq!(
        cipher_suite_name(rustls::CipherSuite::TLS_RSA_WITH_AES_128_GCM_SHA256),
        "TLS_RSA_WITH_AES_128_GCM_SHA256"
    );
}
