//! The vendors, one folder (or file) each: real clients of the external services, each with a
//! configurable base URL, a timeout on every call, and typed errors; none knows whether it
//! talks to the real service or to an emulator. The speech vendors implement the call's ports
//! (`voice::stt`, `voice::tts`); [`Providers`] holds the ones configuration chose.

pub mod deepgram;
pub mod elevenlabs;
pub mod exotel;
pub mod openai;
pub mod openai_speech;

use std::sync::Arc;

use crate::config::TtsProvider;
use crate::voice::llm::ChatModel;
use crate::voice::stt::SttVendor;
use crate::voice::tts::TtsVendor;

/// The vendors a live call uses, built once from settings.
#[derive(Clone)]
pub struct Providers {
    pub stt: Arc<dyn SttVendor>,
    pub llm: Arc<dyn ChatModel>,
    /// The TTS vendor, or the variable that is missing to configure it (calls are then refused
    /// with a log line naming it).
    pub tts: Result<Arc<dyn TtsVendor>, &'static str>,
}

impl Providers {
    /// `metrics`: where the vendors count their failed attempts and recoveries.
    pub fn from_settings(
        settings: &crate::config::Settings,
        http: reqwest::Client,
        metrics: &crate::metrics::Metrics,
    ) -> Self {
        let counted = metrics.providers.clone();
        let stt = deepgram::DeepgramStt::new(
            deepgram::DeepgramClient::new(&settings.deepgram),
            counted.clone(),
        );
        let tts = match settings.vendors.tts {
            TtsProvider::ElevenLabs => {
                elevenlabs::ElevenLabsConfig::from_settings(&settings.elevenlabs)
                    .map(|config| {
                        let vendor =
                            elevenlabs::ElevenLabsTts::new(config, http.clone(), counted.clone());
                        Arc::new(vendor) as Arc<dyn TtsVendor>
                    })
                    .map_err(|e| match e {
                        elevenlabs::ElevenLabsError::NotConfigured(var) => var,
                        _ => "ELEVENLABS_API_KEY",
                    })
            }
            TtsProvider::OpenAi => {
                let config =
                    openai_speech::SpeechConfig::from_settings(&settings.vendors.openai_speech);
                let vendor =
                    openai_speech::OpenAiSpeech::new(config, http.clone(), counted.clone());
                Ok(Arc::new(vendor) as Arc<dyn TtsVendor>)
            }
        };
        Self {
            stt: Arc::new(stt),
            llm: Arc::new(
                openai::OpenAiClient::from_settings(http, &settings.openai).with_metrics(counted),
            ),
            tts,
        }
    }
}

/// WebSocket settings for provider sockets. tungstenite's defaults (128 KiB read and write
/// buffers, 64 MiB messages) cost several hundred KiB per live call across our three sockets;
/// our messages are a few KiB (100 ms of audio, a transcript, a text chunk), so small buffers
/// lose nothing and let one core hold thousands of calls.
pub fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(WS_MAX_MESSAGE * 4)
        .max_message_size(Some(WS_MAX_MESSAGE))
        .max_frame_size(Some(WS_MAX_MESSAGE))
}

/// Opens a provider WebSocket: [`ws_config`] and the shared TLS set-up ([`crate::tls`]).
pub async fn ws_connect(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let connector = crate::tls::ws_connector()
        .map_err(|e| tokio_tungstenite::tungstenite::Error::Io(std::io::Error::other(e)))?;
    tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(ws_config()),
        true,
        Some(connector),
    )
    .await
}

/// Read buffer per WebSocket (also used for the carrier's `/media` socket). tungstenite zeroes
/// this much before every read, so it is sized near one carrier frame (~2.2 KiB of JSON).
pub const WS_READ_BUFFER: usize = 4 * 1024;
/// Largest message accepted on a call's sockets (a TTS audio chunk is well under this).
pub const WS_MAX_MESSAGE: usize = 4 * 1024 * 1024;
