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
