//! Real clients of the external services, one file per system. Each has a configurable base
//! URL, a timeout on every call, and typed errors; none knows whether it talks to the real
//! service or to an emulator.

pub mod deepgram;
pub mod elevenlabs;
pub mod exotel;
pub mod openai;

/// The clients a live call uses, built once from settings.
#[derive(Clone)]
pub struct Providers {
    pub stt: deepgram::DeepgramClient,
    pub llm: openai::OpenAiClient,
    /// `None` until ElevenLabs is configured (calls are then refused with a log line).
    pub tts: Option<elevenlabs::ElevenLabsConfig>,
}

impl Providers {
    /// `metrics`: where the clients that retry internally (OpenAI) count their failed attempts.
    pub fn from_settings(
        settings: &crate::config::Settings,
        http: reqwest::Client,
        metrics: &crate::metrics::Metrics,
    ) -> Self {
        Self {
            stt: deepgram::DeepgramClient::new(&settings.deepgram),
            llm: openai::OpenAiClient::from_settings(http, &settings.openai)
                .with_metrics(metrics.providers.clone()),
            tts: elevenlabs::ElevenLabsConfig::from_settings(&settings.elevenlabs).ok(),
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

/// Read buffer per WebSocket (also used for the carrier's `/media` socket). tungstenite zeroes
/// this much before every read, so it is sized near one carrier frame (~2.2 KiB of JSON).
pub const WS_READ_BUFFER: usize = 4 * 1024;
/// Largest message accepted on a call's sockets (a TTS audio chunk is well under this).
pub const WS_MAX_MESSAGE: usize = 4 * 1024 * 1024;
