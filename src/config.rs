//! Typed settings, loaded once at start from the environment (and `.env` through dotenvy).
//!
//! Every variable is parsed here, at the edge, so the rest of the code never sees a raw string.
//! A bad value stops start-up with an error that names the variable. Secrets are wrapped in
//! [`Secret`], whose `Debug` and `Display` never print the value, so `tracing::debug!(?settings)`
//! is safe.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use chrono::NaiveTime;
use thiserror::Error;

pub mod limits;

pub use limits::HttpSettings;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The only way to read the value: the call site says plainly that it handles a secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid value for {var}: {reason}")]
    Invalid { var: &'static str, reason: String },
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct ExotelSettings {
    pub account_sid: Option<String>,
    pub api_key: Option<Secret>,
    pub api_token: Option<Secret>,
    pub virtual_number: Option<String>,
    pub exophlo_id: Option<String>,
    /// `https://api.exotel.com` (Singapore) or `https://api.in.exotel.com` (Mumbai), or an emulator.
    pub base_url: String,
}

#[derive(Debug, Clone)]
pub struct DeepgramSettings {
    pub api_key: Option<Secret>,
    /// Full live-listen endpoint, e.g. `wss://api.deepgram.com/v1/listen`.
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    pub api_key: Option<Secret>,
    /// Base of an OpenAI-compatible API (`…/v1`), so Ollama, vLLM or Groq work too.
    pub base_url: String,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct ElevenLabsSettings {
    pub api_key: Option<Secret>,
    pub voice_id: Option<String>,
    pub base_url: String,
}

/// Which vendor does each job of a live call (`STT_PROVIDER`, `TTS_PROVIDER`, `CARRIER`), and
/// the settings of the vendors without a section of their own.
#[derive(Debug, Clone)]
pub struct VendorSettings {
    pub stt: SttProvider,
    pub tts: TtsProvider,
    pub carrier: CarrierKind,
    pub openai_speech: OpenAiSpeechSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SttProvider {
    Deepgram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtsProvider {
    ElevenLabs,
    /// An OpenAI-compatible `/v1/audio/speech` endpoint: OpenAI, or a self-hosted Kokoro,
    /// Piper, LocalAI and the like.
    OpenAi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierKind {
    Exotel,
}

/// An OpenAI-compatible speech endpoint (`TTS_PROVIDER=openai`).
#[derive(Debug, Clone)]
pub struct OpenAiSpeechSettings {
    /// `OPENAI_TTS_API_KEY`, else `OPENAI_API_KEY`; a self-hosted server may need none.
    pub api_key: Option<Secret>,
    /// `…/v1`: `OPENAI_TTS_BASE_URL`, else `OPENAI_BASE_URL`.
    pub base_url: String,
    pub model: String,
    pub voice: String,
    /// The rate of the server's raw `pcm` (OpenAI: 24,000; Piper: 22,050).
    pub sample_rate: u32,
}

/// How the dialer paces and places calls.
#[derive(Debug, Clone)]
pub struct DialerSettings {
    /// How often the scheduler looks for due leads.
    pub tick: std::time::Duration,
    /// Calls placed per second at most (Exotel allows 200 requests/minute per account).
    pub rate_per_sec: f64,
    /// A call with no carrier news for this long is checked through the call-details API.
    pub reconcile_after: std::time::Duration,
    /// A call whose media stream ended this long ago without a final carrier status is checked
    /// then (checks run every quarter of it), so its slot is free about 90 s after the call.
    pub reconcile_after_media: std::time::Duration,
    /// `direct` streams calls straight to our `/media` (Exotel "Connect Voice AI");
    /// `flow` (default) runs the flow `EXOTEL_EXOPHLO_ID`.
    pub direct_stream: bool,
    /// Longest call in seconds (`TimeLimit`).
    pub time_limit_secs: u32,
    /// Ring timeout in seconds (`TimeOut`).
    pub ring_timeout_secs: u32,
    /// Ask Exotel to record calls.
    pub record: bool,
}

/// Rates for the cost report, in `currency`. Defaults are approximate list prices (Exotel India,
/// Deepgram Nova streaming, gpt-4o-mini, ElevenLabs): set the ones of your contracts.
#[derive(Debug, Clone, PartialEq)]
pub struct CostSettings {
    /// ISO 4217 code the rates are in (reports only label amounts with it).
    pub currency: String,
    /// Per started minute of conversation, per call.
    pub carrier_per_min: f64,
    /// Per minute of audio streamed to speech-to-text.
    pub stt_per_min: f64,
    pub llm_per_1k_input_tokens: f64,
    pub llm_per_1k_output_tokens: f64,
    pub tts_per_1k_chars: f64,
}

/// Outbound webhooks (`call.completed` to a campaign's `webhook_url`).
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// HMAC-SHA256 key for `X-VoiceAgent-Signature`; unset = deliveries are sent unsigned.
    pub signing_secret: Option<Secret>,
    /// Attempts before a delivery is marked `failed`.
    pub max_attempts: u32,
    /// First retry delay; later ones are 3, 12, 60, 180 and 360 times it (10 s → … 1 h).
    pub retry_base: std::time::Duration,
    /// Per request, connection to last byte.
    pub timeout: std::time::Duration,
    /// How often the delivery loop looks for due deliveries.
    pub poll: std::time::Duration,
}

/// Everything the service reads from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind_addr: SocketAddr,
    /// When set, `GET /metrics` is also served here, alone and without auth (keep it private).
    pub metrics_addr: Option<SocketAddr>,
    /// Public base URL the carrier uses to reach us (webhooks, `/media`).
    pub our_base_url: String,
    pub database_url: String,
    pub redis_url: Option<String>,
    /// When set, every REST endpoint but `/health` needs `Authorization: Bearer <API_KEY>`.
    pub api_key: Option<Secret>,
    pub log_format: LogFormat,
    pub calling_hours_start: NaiveTime,
    pub calling_hours_end: NaiveTime,
    pub max_concurrent_calls: u32,
    pub max_attempts: u32,
    /// Largest CSV upload accepted, in bytes (413 above it).
    pub csv_max_bytes: u64,
    /// Shared secret carried by the carrier's webhook and `/media` URLs.
    pub webhook_secret: Secret,
    pub dialer: DialerSettings,
    pub exotel: ExotelSettings,
    pub deepgram: DeepgramSettings,
    pub openai: OpenAiSettings,
    pub elevenlabs: ElevenLabsSettings,
    pub vendors: VendorSettings,
    pub costs: CostSettings,
    pub webhooks: WebhookSettings,
    /// The HTTP listener's connection cap and timeouts.
    pub http: HttpSettings,
    /// How long a request waits for the database before answering 503 (`DB_ACQUIRE_TIMEOUT_MS`).
    pub db_wait: std::time::Duration,
    /// URLs the service fetches may point at private addresses (`ALLOW_PRIVATE_URLS`).
    pub allow_private_urls: bool,
    /// OTLP/HTTP collector base URL (`…:4318`): traces are exported there when set, and not
    /// built at all when unset.
    pub otel_endpoint: Option<String>,
}

/// Every variable the service reads, with the one-line meaning `.env.example` repeats.
pub const VARIABLES: &[&str] = &[
    "BIND_ADDR",
    "METRICS_ADDR",
    "OUR_BASE_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "API_KEY",
    "LOG_FORMAT",
    "CALLING_HOURS_START",
    "CALLING_HOURS_END",
    "MAX_CONCURRENT_CALLS",
    "MAX_ATTEMPTS",
    "CSV_MAX_BYTES",
    "WEBHOOK_SECRET",
    "DIAL_TICK_MS",
    "DIAL_RATE_PER_SEC",
    "RECONCILE_AFTER_SECS",
    "RECONCILE_AFTER_MEDIA_SECS",
    "EXOTEL_STREAM_MODE",
    "EXOTEL_TIME_LIMIT_SECS",
    "EXOTEL_RING_TIMEOUT_SECS",
    "EXOTEL_RECORD",
    "EXOTEL_ACCOUNT_SID",
    "EXOTEL_API_KEY",
    "EXOTEL_API_TOKEN",
    "EXOTEL_VIRTUAL_NUMBER",
    "EXOTEL_EXOPHLO_ID",
    "EXOTEL_BASE_URL",
    "DEEPGRAM_API_KEY",
    "DEEPGRAM_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_MODEL",
    "ELEVENLABS_API_KEY",
    "ELEVENLABS_VOICE_ID",
    "ELEVENLABS_BASE_URL",
    "STT_PROVIDER",
    "TTS_PROVIDER",
    "CARRIER",
    "OPENAI_TTS_API_KEY",
    "OPENAI_TTS_BASE_URL",
    "OPENAI_TTS_MODEL",
    "OPENAI_TTS_VOICE",
    "OPENAI_TTS_SAMPLE_RATE",
    "COST_CURRENCY",
    "COST_CARRIER_PER_MIN",
    "COST_STT_PER_MIN",
    "COST_LLM_PER_1K_INPUT_TOKENS",
    "COST_LLM_PER_1K_OUTPUT_TOKENS",
    "COST_TTS_PER_1K_CHARS",
    "WEBHOOK_SIGNING_SECRET",
    "WEBHOOK_MAX_ATTEMPTS",
    "WEBHOOK_RETRY_BASE_MS",
    "WEBHOOK_TIMEOUT_SECS",
    "WEBHOOK_POLL_MS",
    "HTTP_MAX_CONNECTIONS",
    "HTTP_HEADER_TIMEOUT_MS",
    "HTTP_REQUEST_TIMEOUT_MS",
    "CSV_UPLOAD_TIMEOUT_SECS",
    "SHUTDOWN_DRAIN_MS",
    "DB_ACQUIRE_TIMEOUT_MS",
    "ALLOW_PRIVATE_URLS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

impl Settings {
    /// Loads `.env` (if present) and then the process environment; the environment wins.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is not silently ignored.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(invalid("(.env file)", e.to_string())),
        }
        let vars: HashMap<String, String> = VARIABLES
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        Self::from_map(&vars)
    }

    /// Builds settings from a map of variables, so tests never touch the process environment.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let secret = |k: &str| get(k).map(Secret::new);

        let bind_addr: SocketAddr = parse_or(&get, "BIND_ADDR", "127.0.0.1:8000".parse().unwrap())?;
        let metrics_addr = match get("METRICS_ADDR") {
            Some(v) => Some(
                v.parse::<SocketAddr>()
                    .map_err(|e| invalid("METRICS_ADDR", format!("`{v}`: {e}")))?,
            ),
            None => None,
        };
        let our_base_url = match get("OUR_BASE_URL") {
            Some(u) => parse_http_url("OUR_BASE_URL", &u)?,
            None => format!("http://{bind_addr}"),
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://voice-agent.db".into());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let redis_url = match get("REDIS_URL") {
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => Some(u),
            Some(_) => {
                return Err(invalid(
                    "REDIS_URL",
                    "must start with redis:// or rediss://",
                ));
            }
            None => None,
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") | Some("pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("`{other}`: expected `text` or `json`"),
                ));
            }
        };
        let calling_hours_start = parse_time(&get, "CALLING_HOURS_START", "10:00")?;
        let calling_hours_end = parse_time(&get, "CALLING_HOURS_END", "19:00")?;
        if calling_hours_start >= calling_hours_end {
            return Err(invalid(
                "CALLING_HOURS_END",
                "must be later than CALLING_HOURS_START",
            ));
        }
        let max_concurrent_calls: u32 = parse_or(&get, "MAX_CONCURRENT_CALLS", 10)?;
        if max_concurrent_calls == 0 {
            return Err(invalid("MAX_CONCURRENT_CALLS", "must be at least 1"));
        }
        let max_attempts: u32 = parse_or(&get, "MAX_ATTEMPTS", 3)?;
        if !(1..=20).contains(&max_attempts) {
            return Err(invalid("MAX_ATTEMPTS", "must be between 1 and 20"));
        }
        let csv_max_bytes: u64 = parse_or(&get, "CSV_MAX_BYTES", 50 * 1024 * 1024)?;
        if csv_max_bytes == 0 {
            return Err(invalid("CSV_MAX_BYTES", "must be at least 1"));
        }

        let webhook_secret = match secret("WEBHOOK_SECRET") {
            Some(s) if s.expose().len() < 16 => {
                return Err(invalid("WEBHOOK_SECRET", "must be at least 16 characters"));
            }
            Some(s) => s,
            None => Secret::new(random_token()),
        };
        let tick_ms: u64 = parse_or(&get, "DIAL_TICK_MS", 1000)?;
        if !(10..=60_000).contains(&tick_ms) {
            return Err(invalid("DIAL_TICK_MS", "must be between 10 and 60000"));
        }
        let rate_per_sec: f64 = parse_or(&get, "DIAL_RATE_PER_SEC", 2.0)?;
        if !(rate_per_sec > 0.0 && rate_per_sec <= 1000.0) {
            return Err(invalid(
                "DIAL_RATE_PER_SEC",
                "must be above 0 and at most 1000",
            ));
        }
        let reconcile_secs: u64 = parse_or(&get, "RECONCILE_AFTER_SECS", 900)?;
        let reconcile_media_secs: u64 = parse_or(&get, "RECONCILE_AFTER_MEDIA_SECS", 60)?;
        if !(1..=3600).contains(&reconcile_media_secs) {
            return Err(invalid(
                "RECONCILE_AFTER_MEDIA_SECS",
                "must be between 1 and 3600",
            ));
        }
        let direct_stream = match get("EXOTEL_STREAM_MODE").as_deref() {
            None | Some("flow") => false,
            Some("direct") => true,
            Some(other) => {
                return Err(invalid(
                    "EXOTEL_STREAM_MODE",
                    format!("`{other}`: expected `flow` or `direct`"),
                ));
            }
        };
        let time_limit_secs: u32 = parse_or(&get, "EXOTEL_TIME_LIMIT_SECS", 1800)?;
        if !(30..=14_400).contains(&time_limit_secs) {
            return Err(invalid(
                "EXOTEL_TIME_LIMIT_SECS",
                "must be between 30 and 14400",
            ));
        }
        let ring_timeout_secs: u32 = parse_or(&get, "EXOTEL_RING_TIMEOUT_SECS", 30)?;
        let record: bool = parse_or(&get, "EXOTEL_RECORD", false)?;

        let url_or = |k: &'static str, default: &str| -> Result<String, ConfigError> {
            match get(k) {
                Some(u) => parse_http_url(k, &u),
                None => Ok(default.to_string()),
            }
        };
        let deepgram_url =
            get("DEEPGRAM_URL").unwrap_or_else(|| "wss://api.deepgram.com/v1/listen".to_string());
        if !(deepgram_url.starts_with("ws://") || deepgram_url.starts_with("wss://")) {
            return Err(invalid("DEEPGRAM_URL", "must start with ws:// or wss://"));
        }

        let otel_endpoint = match get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(u) => Some(parse_http_url("OTEL_EXPORTER_OTLP_ENDPOINT", &u)?),
            None => None,
        };
        let costs = parse_costs(&get)?;
        let webhooks = parse_webhooks(&get)?;
        let http = limits::parse_http(&get)?;
        let db_wait = limits::parse_db_wait(&get)?;
        let allow_private_urls = limits::parse_allow_private(&get)?;

        Ok(Settings {
            bind_addr,
            metrics_addr,
            our_base_url,
            database_url,
            redis_url,
            api_key: secret("API_KEY"),
            log_format,
            calling_hours_start,
            calling_hours_end,
            max_concurrent_calls,
            max_attempts,
            csv_max_bytes,
            webhook_secret,
            dialer: DialerSettings {
                tick: std::time::Duration::from_millis(tick_ms),
                rate_per_sec,
                reconcile_after: std::time::Duration::from_secs(reconcile_secs),
                reconcile_after_media: std::time::Duration::from_secs(reconcile_media_secs),
                direct_stream,
                time_limit_secs,
                ring_timeout_secs,
                record,
            },
            exotel: ExotelSettings {
                account_sid: get("EXOTEL_ACCOUNT_SID"),
                api_key: secret("EXOTEL_API_KEY"),
                api_token: secret("EXOTEL_API_TOKEN"),
                virtual_number: get("EXOTEL_VIRTUAL_NUMBER"),
                exophlo_id: get("EXOTEL_EXOPHLO_ID"),
                base_url: url_or("EXOTEL_BASE_URL", "https://api.exotel.com")?,
            },
            deepgram: DeepgramSettings {
                api_key: secret("DEEPGRAM_API_KEY"),
                url: deepgram_url,
            },
            openai: OpenAiSettings {
                api_key: secret("OPENAI_API_KEY"),
                base_url: url_or("OPENAI_BASE_URL", "https://api.openai.com/v1")?,
                model: get("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
            },
            elevenlabs: ElevenLabsSettings {
                api_key: secret("ELEVENLABS_API_KEY"),
                voice_id: get("ELEVENLABS_VOICE_ID"),
                base_url: url_or("ELEVENLABS_BASE_URL", "https://api.elevenlabs.io")?,
            },
            vendors: parse_vendors(&get)?,
            costs,
            webhooks,
            http,
            db_wait,
            allow_private_urls,
            otel_endpoint,
        })
    }

    /// Settings for tests and embedded use: defaults everywhere, the given database.
    pub fn for_database(database_url: &str) -> Self {
        let mut vars = HashMap::new();
        vars.insert("DATABASE_URL".to_string(), database_url.to_string());
        Self::from_map(&vars).expect("default settings are valid")
    }
}

fn parse_or<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match get(var) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e: T::Err| invalid(var, format!("`{v}`: {e}"))),
    }
}

fn parse_vendors(get: &impl Fn(&str) -> Option<String>) -> Result<VendorSettings, ConfigError> {
    let stt = match get("STT_PROVIDER").as_deref() {
        None | Some("deepgram") => SttProvider::Deepgram,
        Some(other) => {
            return Err(invalid(
                "STT_PROVIDER",
                format!("`{other}`: expected `deepgram`"),
            ));
        }
    };
    let tts = match get("TTS_PROVIDER").as_deref() {
        None | Some("elevenlabs") => TtsProvider::ElevenLabs,
        Some("openai") => TtsProvider::OpenAi,
        Some(other) => {
            return Err(invalid(
                "TTS_PROVIDER",
                format!("`{other}`: expected `elevenlabs` or `openai`"),
            ));
        }
    };
    let carrier = match get("CARRIER").as_deref() {
        None | Some("exotel") => CarrierKind::Exotel,
        Some(other) => return Err(invalid("CARRIER", format!("`{other}`: expected `exotel`"))),
    };
    let base_url = match get("OPENAI_TTS_BASE_URL") {
        Some(u) => parse_http_url("OPENAI_TTS_BASE_URL", &u)?,
        None => match get("OPENAI_BASE_URL") {
            Some(u) => parse_http_url("OPENAI_BASE_URL", &u)?,
            None => "https://api.openai.com/v1".into(),
        },
    };
    let sample_rate: u32 = parse_or(get, "OPENAI_TTS_SAMPLE_RATE", 24_000)?;
    if !(8_000..=48_000).contains(&sample_rate) {
        return Err(invalid(
            "OPENAI_TTS_SAMPLE_RATE",
            "must be between 8000 and 48000 (the rate of the server's raw pcm)",
        ));
    }
    Ok(VendorSettings {
        stt,
        tts,
        carrier,
        openai_speech: OpenAiSpeechSettings {
            api_key: get("OPENAI_TTS_API_KEY")
                .or_else(|| get("OPENAI_API_KEY"))
                .map(Secret::new),
            base_url,
            model: get("OPENAI_TTS_MODEL").unwrap_or_else(|| "gpt-4o-mini-tts".into()),
            voice: get("OPENAI_TTS_VOICE").unwrap_or_else(|| "alloy".into()),
            sample_rate,
        },
    })
}

fn parse_costs(get: &impl Fn(&str) -> Option<String>) -> Result<CostSettings, ConfigError> {
    let currency = get("COST_CURRENCY").unwrap_or_else(|| "USD".into());
    if !(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(invalid(
            "COST_CURRENCY",
            format!("`{currency}`: expected a three-letter code such as USD or INR"),
        ));
    }
    let rate = |var: &'static str, default: f64| -> Result<f64, ConfigError> {
        let v: f64 = parse_or(get, var, default)?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(invalid(var, "must be a number, 0 or more"));
        }
        Ok(v)
    };
    Ok(CostSettings {
        currency,
        carrier_per_min: rate("COST_CARRIER_PER_MIN", 0.012)?,
        stt_per_min: rate("COST_STT_PER_MIN", 0.0077)?,
        llm_per_1k_input_tokens: rate("COST_LLM_PER_1K_INPUT_TOKENS", 0.00015)?,
        llm_per_1k_output_tokens: rate("COST_LLM_PER_1K_OUTPUT_TOKENS", 0.0006)?,
        tts_per_1k_chars: rate("COST_TTS_PER_1K_CHARS", 0.18)?,
    })
}

fn parse_webhooks(get: &impl Fn(&str) -> Option<String>) -> Result<WebhookSettings, ConfigError> {
    let signing_secret = match get("WEBHOOK_SIGNING_SECRET") {
        Some(s) if s.len() < 16 => {
            return Err(invalid(
                "WEBHOOK_SIGNING_SECRET",
                "must be at least 16 characters",
            ));
        }
        other => other.map(Secret::new),
    };
    let max_attempts: u32 = parse_or(get, "WEBHOOK_MAX_ATTEMPTS", 8)?;
    if !(1..=50).contains(&max_attempts) {
        return Err(invalid("WEBHOOK_MAX_ATTEMPTS", "must be between 1 and 50"));
    }
    let base_ms: u64 = parse_or(get, "WEBHOOK_RETRY_BASE_MS", 10_000)?;
    if !(1..=3_600_000).contains(&base_ms) {
        return Err(invalid(
            "WEBHOOK_RETRY_BASE_MS",
            "must be between 1 and 3600000",
        ));
    }
    let timeout_secs: u64 = parse_or(get, "WEBHOOK_TIMEOUT_SECS", 10)?;
    if !(1..=120).contains(&timeout_secs) {
        return Err(invalid("WEBHOOK_TIMEOUT_SECS", "must be between 1 and 120"));
    }
    let poll_ms: u64 = parse_or(get, "WEBHOOK_POLL_MS", 1000)?;
    if !(10..=60_000).contains(&poll_ms) {
        return Err(invalid("WEBHOOK_POLL_MS", "must be between 10 and 60000"));
    }
    Ok(WebhookSettings {
        signing_secret,
        max_attempts,
        retry_base: std::time::Duration::from_millis(base_ms),
        timeout: std::time::Duration::from_secs(timeout_secs),
        poll: std::time::Duration::from_millis(poll_ms),
    })
}

/// A random 32-character token (used when `WEBHOOK_SECRET` is not configured).
fn random_token() -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

fn parse_time(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
) -> Result<NaiveTime, ConfigError> {
    let v = get(var).unwrap_or_else(|| default.to_string());
    crate::clock::parse_hhmm(&v).ok_or_else(|| invalid(var, format!("`{v}`: expected HH:MM")))
}

fn parse_http_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(invalid(
            var,
            format!("`{value}`: must start with http:// or https://"),
        ));
    }
    Ok(value.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_the_original_system() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.max_concurrent_calls, 10);
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8000");
        assert_eq!(s.database_url, "sqlite://voice-agent.db");
        assert_eq!(s.openai.model, "gpt-4o-mini");
        assert_eq!(s.calling_hours_start.to_string(), "10:00:00");
        assert_eq!(s.our_base_url, "http://127.0.0.1:8000");
        assert_eq!(s.metrics_addr, None, "no metrics listener unless asked");
        assert_eq!(s.http, HttpSettings::default());
        assert_eq!(s.db_wait, std::time::Duration::from_secs(3));
        assert!(
            !s.allow_private_urls,
            "private targets are refused unless asked"
        );
        let s = Settings::from_map(&vars(&[("METRICS_ADDR", "127.0.0.1:9100")])).unwrap();
        assert_eq!(s.metrics_addr, Some("127.0.0.1:9100".parse().unwrap()));
    }

    #[test]
    fn bad_value_names_the_variable() {
        let err = Settings::from_map(&vars(&[("MAX_CONCURRENT_CALLS", "lots")])).unwrap_err();
        assert!(err.to_string().contains("MAX_CONCURRENT_CALLS"), "{err}");
        let err = Settings::from_map(&vars(&[("CALLING_HOURS_START", "25:00")])).unwrap_err();
        assert!(err.to_string().contains("CALLING_HOURS_START"), "{err}");
        let err = Settings::from_map(&vars(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        let err = Settings::from_map(&vars(&[("LOG_FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("LOG_FORMAT"), "{err}");
        let err = Settings::from_map(&vars(&[("COST_TTS_PER_1K_CHARS", "-1")])).unwrap_err();
        assert!(err.to_string().contains("COST_TTS_PER_1K_CHARS"), "{err}");
        let err = Settings::from_map(&vars(&[("COST_CURRENCY", "dollars")])).unwrap_err();
        assert!(err.to_string().contains("COST_CURRENCY"), "{err}");
        let err = Settings::from_map(&vars(&[("WEBHOOK_SIGNING_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_SIGNING_SECRET"), "{err}");
        let err = Settings::from_map(&vars(&[("WEBHOOK_MAX_ATTEMPTS", "0")])).unwrap_err();
        assert!(err.to_string().contains("WEBHOOK_MAX_ATTEMPTS"), "{err}");
        let err = Settings::from_map(&vars(&[("METRICS_ADDR", "9100")])).unwrap_err();
        assert!(err.to_string().contains("METRICS_ADDR"), "{err}");
        for (var, value) in [
            ("HTTP_MAX_CONNECTIONS", "3"),
            ("HTTP_HEADER_TIMEOUT_MS", "0"),
            ("HTTP_REQUEST_TIMEOUT_MS", "soon"),
            ("CSV_UPLOAD_TIMEOUT_SECS", "0"),
            ("SHUTDOWN_DRAIN_MS", "-1"),
            ("DB_ACQUIRE_TIMEOUT_MS", "10"),
            ("ALLOW_PRIVATE_URLS", "maybe"),
        ] {
            let err = Settings::from_map(&vars(&[(var, value)])).unwrap_err();
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn cost_and_webhook_defaults() {
        let s = Settings::from_map(&HashMap::new()).unwrap();
        assert_eq!(s.costs.currency, "USD");
        assert_eq!(s.costs.carrier_per_min, 0.012);
        assert!(s.webhooks.signing_secret.is_none());
        assert_eq!(s.webhooks.max_attempts, 8);
        assert_eq!(s.webhooks.retry_base, std::time::Duration::from_secs(10));
        let s = Settings::from_map(&vars(&[
            ("COST_CURRENCY", "INR"),
            ("COST_TTS_PER_1K_CHARS", "15"),
            ("WEBHOOK_SIGNING_SECRET", "whsec-0123456789abcdef"),
        ]))
        .unwrap();
        assert_eq!(s.costs.currency, "INR");
        assert_eq!(s.costs.tts_per_1k_chars, 15.0);
        assert!(!format!("{s:?}").contains("whsec-0123456789abcdef"));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let s = Settings::from_map(&vars(&[
            ("API_KEY", "top-secret-api-key"),
            ("EXOTEL_API_TOKEN", "exo-token-value"),
            ("OPENAI_API_KEY", "sk-live-123"),
        ]))
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("top-secret-api-key"));
        assert!(!printed.contains("exo-token-value"));
        assert!(!printed.contains("sk-live-123"));
        assert_eq!(s.api_key.as_ref().unwrap().expose(), "top-secret-api-key");
    }

    #[test]
    fn env_example_lists_every_variable() {
        let example = include_str!("../.env.example");
        for var in VARIABLES {
            assert!(
                example.contains(&format!("{var}=")),
                "{var} missing from .env.example"
            );
        }
    }
}
