//! One TLS configuration for every client: HTTP (reqwest: Exotel, OpenAI, ElevenLabs' HTTP
//! fallback, outbound webhooks, the trace exporter) and WebSocket (tokio-tungstenite: Deepgram,
//! ElevenLabs). Certificates are verified by the platform's verifier against the system's root
//! store, so a corporate CA added to it (on Debian: `/usr/local/share/ca-certificates` and
//! `update-ca-certificates`; or `SSL_CERT_FILE`) is trusted by both kinds of client alike,
//! instead of one reading the system store and the other a compiled-in Mozilla list.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls_platform_verifier::ConfigVerifierExt;

/// The shared configuration, built once. `Err` when the system's roots cannot be read.
pub fn client_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut config =
                ClientConfig::with_platform_verifier().map_err(|e| format!("TLS roots: {e}"))?;
            // HTTP/2 where the server offers it (reqwest), else HTTP/1.1; WebSockets take the
            // configuration through `ws_connector`, which asks for HTTP/1.1 only.
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
}

/// A reqwest client builder using [`client_config`].
pub fn http_client() -> Result<reqwest::ClientBuilder, String> {
    let config = (*client_config()?).clone();
    Ok(reqwest::Client::builder().tls_backend_preconfigured(config))
}

/// The connector for `tokio_tungstenite::connect_async_tls_with_config`: the same roots, ALPN
/// limited to HTTP/1.1 (a WebSocket upgrade is an HTTP/1.1 exchange).
pub fn ws_connector() -> Result<tokio_tungstenite::Connector, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let config = CONFIG
        .get_or_init(|| {
            let mut config = (*client_config()?).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()?;
    Ok(tokio_tungstenite::Connector::Rustls(config))
}
