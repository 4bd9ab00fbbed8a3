//! Local emulators of the providers' wire protocols (Exotel, Deepgram, OpenAI, ElevenLabs), for
//! tests, benchmarks and the offline demo. Each is a test double at the network edge: the
//! product's real clients talk to it over real sockets and cannot tell the difference.
//!
//! The product never imports this module; only the `emulate`/`demo`/`bench` commands and tests
//! do.

pub mod callee;
pub mod deepgram;
pub mod elevenlabs;
pub mod exotel;
pub mod openai;
pub mod openai_speech;
pub mod speech;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// An emulator serving on a local port; dropping it (or calling `stop`) shuts it down.
pub struct Running {
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Running {
    /// `http://127.0.0.1:PORT`
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT`
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves `router` on `addr` (use port 0 for any free port) until stopped.
pub async fn serve(router: axum::Router, addr: SocketAddr) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let result = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "emulator server failed");
        }
    });
    Ok(Running { addr, stop })
}
