//! An OpenAI-compatible speech endpoint as the call's TTS vendor (`TTS_PROVIDER=openai`):
//! OpenAI itself, or a self-hosted server that speaks its API (Kokoro, Piper, LocalAI, …).
//!
//! Wire facts (OpenAI's API reference, `CreateSpeechRequest`): `POST {base}/audio/speech` with
//! `Authorization: Bearer`, a JSON body `{"model", "input" (at most 4,096 characters), "voice",
//! "response_format": "pcm", "speed"}`; the answer streams raw 16-bit little-endian mono PCM at
//! 24 kHz with no header (a self-hosted server may use another rate: `OPENAI_TTS_SAMPLE_RATE`);
//! errors are `{"error": {"message", "type", "code"}}`. The endpoint takes whole text, not a
//! stream of it, so each phrase of a turn is one request, spoken in order as the phrases arrive;
//! it gives no alignment, so the session says `Spoken` after each phrase's audio, and a barge-in
//! drops the request in flight (which aborts it). The audio is resampled to the call's rate
//! (`resample`).

mod resample;
mod session;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use resample::Resampler;
pub use session::SpeechSession;

use crate::config::{OpenAiSpeechSettings, Secret};
use crate::metrics::ProviderMetrics;
use crate::voice::tts::{self, TtsOptions};
use crate::voice::{ErrorKind, Provider};

/// What every session of this vendor shares.
#[derive(Debug, Clone)]
pub struct SpeechConfig {
    /// `…/v1`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub model: String,
    pub voice: String,
    /// The rate of the server's `pcm`.
    pub sample_rate: u32,
    /// To the response headers.
    pub connect_timeout: Duration,
    /// The longest wait between two body chunks once audio flows.
    pub stall_timeout: Duration,
    /// A whole phrase.
    pub request_timeout: Duration,
}

impl SpeechConfig {
    pub fn from_settings(settings: &OpenAiSpeechSettings) -> Self {
        Self {
            base_url: settings.base_url.trim_end_matches('/').to_string(),
            api_key: settings.api_key.clone(),
            model: settings.model.clone(),
            voice: settings.voice.clone(),
            sample_rate: settings.sample_rate,
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }

    fn endpoint(&self) -> String {
        format!("{}/audio/speech", self.base_url)
    }
}

/// The vendor: opens one session per call on the service's HTTP client.
#[derive(Debug, Clone)]
pub struct OpenAiSpeech {
    config: Arc<SpeechConfig>,
    http: reqwest::Client,
    metrics: ProviderMetrics,
}

impl OpenAiSpeech {
    pub fn new(config: SpeechConfig, http: reqwest::Client, metrics: ProviderMetrics) -> Self {
        Self {
            config: Arc::new(config),
            http,
            metrics,
        }
    }
}

#[async_trait]
impl tts::TtsVendor for OpenAiSpeech {
    fn provider(&self) -> Provider {
        Provider::OpenAiSpeech
    }

    async fn open(&self, options: &TtsOptions) -> Result<Box<dyn tts::TtsSession>, tts::TtsError> {
        let rate = options.format.sample_rate();
        let resampler = Resampler::new(self.config.sample_rate, rate).map_err(|message| {
            tts::TtsError::Failed {
                provider: Provider::OpenAiSpeech,
                kind: ErrorKind::Protocol,
                message,
            }
        })?;
        Ok(Box::new(SpeechSession::new(
            self.config.clone(),
            options.voice.clone(),
            self.http.clone(),
            self.metrics.clone(),
            resampler,
        )))
    }
}
