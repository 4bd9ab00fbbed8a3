//! One root store for every client: a server whose certificate is signed by a "corporate" CA
//! that only the system's store trusts (here `SSL_CERT_FILE`, as an image with the CA added
//! would) is reached by the service's HTTP client and by its WebSocket connector alike, and a
//! server signed by a CA the store does not hold is refused by both.
//!
//! Its own test binary, with one test: the trust store is read once per process, from the
//! environment set at the start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::routing::get;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            // A client that refuses our certificate fails its handshake: wait for the next.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// An HTTPS and WSS server presenting `<ca>-server.pem`; returns its port.
async fn server(ca: &str) -> u16 {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(fixture(&format!("{ca}-server.pem")))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(fixture(&format!("{ca}-server.key"))).unwrap();
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    let app = axum::Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async { ws.on_upgrade(|_socket| async {}) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test]
async fn a_ca_in_the_system_store_is_trusted_by_http_and_websocket_clients_alike() {
    // SAFETY: the only test of this binary, before any thread that reads the environment.
    unsafe { std::env::set_var("SSL_CERT_FILE", fixture("corporate-ca.pem")) };
    let http = voice_agent::tls::http_client().unwrap().build().unwrap();
    let ws = |port: u16| async move {
        let request = format!("wss://localhost:{port}/ws")
            .into_client_request()
            .unwrap();
        voice_agent::providers::ws_connect(request).await
    };

    let trusted = server("corporate").await;
    let body = http
        .get(format!("https://localhost:{trusted}/ok"))
        .send()
        .await
        .expect("HTTPS to the corporate CA's server")
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");
    ws(trusted).await.expect("WSS to the corporate CA's server");

    let untrusted = server("other").await;
    let refused = http
        .get(format!("https://localhost:{untrusted}/ok"))
        .send()
        .await
        .expect_err("a CA the store does not hold");
    assert!(
        format!("{refused:?}").contains("UnknownIssuer"),
        "{refused:?}"
    );
    let refused = ws(untrusted)
        .await
        .expect_err("a CA the store does not hold");
    assert!(
        format!("{refused:?}").contains("UnknownIssuer"),
        "{refused}"
    );
}
