//! ElevenLabs text-to-speech client: a per-call [`TtsSession`] over the `multi-stream-input`
//! WebSocket (one context per agent turn), and [`ElevenLabs::synthesize_stream`], the HTTP
//! streaming fallback. Wire facts: `/work/shared/protocols/elevenlabs.md`.
//!
//! What this module guarantees to the pipeline:
//! - audio comes out in whole samples (an odd byte of a PCM stream is carried to the next chunk);
//! - every text chunk sent ends with whitespace, so phrases are never glued ("Solar.We");
//! - each turn's context is closed when the turn is done or cancelled, so a socket never nears
//!   the 5-context limit, and audio still arriving for a closed context is dropped;
//! - keep-alives only ever target the live context (a closed one would be reopened).
//!
//! It owns no audio pacing and no carrier framing; it must not import `crate::emulators`.

use std::borrow::Cow;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, Stream, StreamExt};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};

use crate::config::{ElevenLabsSettings, Secret};

/// The low-latency model (Hindi supported).
pub const DEFAULT_MODEL: &str = "eleven_flash_v2_5";

/// Audio encodings we ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// 16-bit little-endian mono PCM at 8 kHz: Exotel's format, no transcoding.
    Pcm8000,
    Pcm16000,
    /// G.711 μ-law at 8 kHz (Twilio), one byte per sample.
    Ulaw8000,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Pcm8000 => "pcm_8000",
            OutputFormat::Pcm16000 => "pcm_16000",
            OutputFormat::Ulaw8000 => "ulaw_8000",
        }
    }

    pub fn sample_rate(self) -> u32 {
        match self {
            OutputFormat::Pcm16000 => 16_000,
            OutputFormat::Pcm8000 | OutputFormat::Ulaw8000 => 8_000,
        }
    }

    pub fn bytes_per_sample(self) -> usize {
        match self {
            OutputFormat::Ulaw8000 => 1,
            OutputFormat::Pcm8000 | OutputFormat::Pcm16000 => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VoiceSettings {
    pub stability: f32,
    pub similarity_boost: f32,
    pub style: f32,
    pub use_speaker_boost: bool,
    pub speed: f32,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self {
            stability: 0.5,
            similarity_boost: 0.75,
            style: 0.0,
            use_speaker_boost: true,
            speed: 1.0,
        }
    }
}

/// Everything both transports need.
#[derive(Debug, Clone)]
pub struct ElevenLabsConfig {
    /// `https://api.elevenlabs.io` or an emulator; the WebSocket URL is derived from it.
    pub base_url: String,
    pub api_key: Secret,
    pub voice_id: String,
    pub model_id: String,
    pub language_code: Option<String>,
    pub output_format: OutputFormat,
    pub voice_settings: VoiceSettings,
    /// WebSocket handshake; HTTP time to response headers.
    pub connect_timeout: Duration,
    /// HTTP: longest wait between two body chunks.
    pub stall_timeout: Duration,
    /// HTTP: the whole synthesis.
    pub request_timeout: Duration,
    /// Asked of the server (`inactivity_timeout`, whole seconds, max 180).
    pub inactivity_timeout_secs: u32,
    /// A live context that sent nothing for this long gets a keep-alive.
    pub keepalive_interval: Duration,
}

impl ElevenLabsConfig {
    pub fn from_settings(settings: &ElevenLabsSettings) -> Result<Self, TtsError> {
        let api_key = settings
            .api_key
            .clone()
            .ok_or(TtsError::NotConfigured("ELEVENLABS_API_KEY"))?;
        let voice_id = settings
            .voice_id
            .clone()
            .ok_or(TtsError::NotConfigured("ELEVENLABS_VOICE_ID"))?;
        Ok(Self::new(&settings.base_url, api_key, voice_id))
    }

    /// Defaults: `eleven_flash_v2_5`, `pcm_8000`, 5 s connect, 60 s inactivity.
    pub fn new(base_url: &str, api_key: Secret, voice_id: impl Into<String>) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            voice_id: voice_id.into(),
            model_id: DEFAULT_MODEL.into(),
            language_code: None,
            output_format: OutputFormat::Pcm8000,
            voice_settings: VoiceSettings::default(),
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            inactivity_timeout_secs: 60,
            keepalive_interval: Duration::from_secs(10),
        }
    }

    fn endpoint(&self, voice_id: &str, last: &str) -> Result<Url, TtsError> {
        let mut url = Url::parse(&self.base_url)
            .map_err(|e| TtsError::Protocol(format!("bad ElevenLabs base URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| TtsError::Protocol("ElevenLabs base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(["v1", "text-to-speech", voice_id, last]);
        Ok(url)
    }

    fn ws_url(&self) -> Result<Url, TtsError> {
        let mut url = self.endpoint(&self.voice_id, "multi-stream-input")?;
        let scheme = match url.scheme() {
            "https" | "wss" => "wss",
            _ => "ws",
        };
        url.set_scheme(scheme)
            .map_err(|_| TtsError::Protocol("cannot derive the WebSocket URL".into()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("model_id", &self.model_id)
                .append_pair("output_format", self.output_format.as_str())
                .append_pair(
                    "inactivity_timeout",
                    &self.inactivity_timeout_secs.clamp(1, 180).to_string(),
                );
            if let Some(lang) = &self.language_code {
                q.append_pair("language_code", lang);
            }
        }
        Ok(url)
    }
}

/// What went wrong, typed by what the caller should do about it.
#[derive(Debug, Error)]
pub enum TtsError {
    #[error("ElevenLabs is not configured: {0} is missing")]
    NotConfigured(&'static str),
    #[error("ElevenLabs rejected the API key: {0}")]
    InvalidApiKey(String),
    #[error("ElevenLabs voice not found: {0}")]
    VoiceNotFound(String),
    #[error("ElevenLabs quota exceeded: {0}")]
    QuotaExceeded(String),
    #[error("ElevenLabs: too many concurrent requests (retry): {0}")]
    TooManyConcurrentRequests(String),
    #[error("ElevenLabs system busy (back off): {0}")]
    SystemBusy(String),
    #[error("ElevenLabs answered {status} `{code}`: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("ElevenLabs timed out {0}")]
    Timeout(&'static str),
    #[error("ElevenLabs HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("ElevenLabs WebSocket failed: {0}")]
    WebSocket(#[from] Box<tungstenite::Error>),
    #[error("unexpected answer from ElevenLabs: {0}")]
    Protocol(String),
    #[error("the TTS session is closed")]
    SessionClosed,
    #[error("no turn is started")]
    NoTurn,
}

/// What to do after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAdvice {
    /// Queue and try again soon (`too_many_concurrent_requests`, transport hiccups).
    Retry,
    /// Try again later, with backoff (`system_busy`, 5xx).
    BackOff,
    /// Retrying will not help (bad key, unknown voice, quota, bad request).
    GiveUp,
}

impl TtsError {
    pub fn retry_advice(&self) -> RetryAdvice {
        match self {
            TtsError::TooManyConcurrentRequests(_)
            | TtsError::Timeout(_)
            | TtsError::Http(_)
            | TtsError::WebSocket(_) => RetryAdvice::Retry,
            TtsError::SystemBusy(_) => RetryAdvice::BackOff,
            TtsError::Api { status, .. } if *status >= 500 || *status == 429 => {
                RetryAdvice::BackOff
            }
            _ => RetryAdvice::GiveUp,
        }
    }

    /// Maps an error answer (`{"detail":{"status":…,"message":…}}`) to a variant.
    fn from_answer(status: u16, body: &[u8]) -> TtsError {
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let detail = &parsed["detail"];
        let code = detail["status"].as_str().unwrap_or("").to_string();
        let message = detail["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
        match (code.as_str(), status) {
            ("invalid_api_key", _) | ("", 401) => TtsError::InvalidApiKey(message),
            ("voice_not_found", _) => TtsError::VoiceNotFound(message),
            ("quota_exceeded", _) => TtsError::QuotaExceeded(message),
            ("too_many_concurrent_requests", _) => TtsError::TooManyConcurrentRequests(message),
            ("system_busy", _) => TtsError::SystemBusy(message),
            _ => TtsError::Api {
                status,
                code,
                message,
            },
        }
    }
}

/// Re-cuts a byte stream into whole samples, carrying a split sample to the next chunk.
#[derive(Debug)]
pub struct SampleAligner {
    bytes_per_sample: usize,
    carry: Option<u8>,
}

impl SampleAligner {
    pub fn new(format: OutputFormat) -> Self {
        Self {
            bytes_per_sample: format.bytes_per_sample(),
            carry: None,
        }
    }

    /// The whole samples available after `chunk` (possibly empty).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        if self.bytes_per_sample == 1 {
            return chunk;
        }
        let mut joined = match self.carry.take() {
            None if chunk.len().is_multiple_of(2) => return chunk,
            None => chunk,
            Some(first) => {
                let mut b = BytesMut::with_capacity(chunk.len() + 1);
                b.extend_from_slice(&[first]);
                b.extend_from_slice(&chunk);
                b.freeze()
            }
        };
        if !joined.len().is_multiple_of(2) {
            self.carry = Some(joined[joined.len() - 1]);
            joined.truncate(joined.len() - 1);
        }
        joined
    }

    /// True when half a sample is waiting (at the end of a stream: a truncated sample).
    pub fn has_carry(&self) -> bool {
        self.carry.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP streaming fallback

/// Audio chunks in the configured format, always whole samples.
pub type AudioStream = Pin<Box<dyn Stream<Item = Result<Bytes, TtsError>> + Send>>;

/// The HTTP side, sharing the service's one `reqwest::Client`.
#[derive(Debug, Clone)]
pub struct ElevenLabs {
    http: reqwest::Client,
    config: Arc<ElevenLabsConfig>,
}

impl ElevenLabs {
    pub fn new(http: reqwest::Client, config: ElevenLabsConfig) -> Self {
        Self {
            http,
            config: Arc::new(config),
        }
    }

    pub fn config(&self) -> &ElevenLabsConfig {
        &self.config
    }

    /// Synthesizes `text` with `voice_id` over `POST …/stream`. Errors before the first byte
    /// (bad key, busy, …) come back here; errors later come through the stream.
    #[tracing::instrument(skip(self, text), fields(chars = text.chars().count()))]
    pub async fn synthesize_stream(
        &self,
        text: &str,
        voice_id: &str,
    ) -> Result<AudioStream, TtsError> {
        let c = &self.config;
        let url = c.endpoint(voice_id, "stream")?;
        let mut body = json!({
            "text": text,
            "model_id": c.model_id,
            "voice_settings": c.voice_settings,
        });
        if let Some(lang) = &c.language_code {
            body["language_code"] = json!(lang);
        }
        let request = self
            .http
            .post(url)
            .query(&[("output_format", c.output_format.as_str())])
            .header("xi-api-key", c.api_key.expose())
            .json(&body)
            .timeout(c.request_timeout)
            .send();
        let response = tokio::time::timeout(c.connect_timeout, request)
            .await
            .map_err(|_| TtsError::Timeout("waiting for the HTTP response"))??;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(TtsError::from_answer(status.as_u16(), &body));
        }
        let state = BodyState {
            body: Box::pin(response.bytes_stream()),
            aligner: SampleAligner::new(c.output_format),
            stall: c.stall_timeout,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, next_aligned)))
    }
}

struct BodyState {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    aligner: SampleAligner,
    stall: Duration,
    done: bool,
}

async fn next_aligned(mut st: BodyState) -> Option<(Result<Bytes, TtsError>, BodyState)> {
    if st.done {
        return None;
    }
    loop {
        match tokio::time::timeout(st.stall, st.body.next()).await {
            Err(_) => {
                st.done = true;
                return Some((Err(TtsError::Timeout("waiting for audio bytes")), st));
            }
            Ok(Some(Err(e))) => {
                st.done = true;
                return Some((Err(TtsError::Http(e)), st));
            }
            Ok(Some(Ok(chunk))) => {
                let aligned = st.aligner.push(chunk);
                if !aligned.is_empty() {
                    return Some((Ok(aligned), st));
                }
            }
            Ok(None) => {
                if st.aligner.has_carry() {
                    tracing::warn!("ElevenLabs audio ended with half a sample; dropped");
                }
                return None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket session

/// One agent turn's context id on the socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContextId(String);

impl ContextId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContextId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which characters an audio chunk speaks, with times relative to the chunk's start.
///
/// ElevenLabs sends the characters as an array of one-character strings. They are read into
/// one string and a count: an audio message carries two alignments, and read as JSON values
/// (or as a `Vec<String>`) they were one allocation per character, the largest single share of
/// the bench's allocations (heaptrack).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alignment {
    /// The characters, concatenated, and how many there were.
    #[serde(deserialize_with = "concat_chars")]
    pub chars: AlignedChars,
    pub char_start_times_ms: Vec<u32>,
    pub char_durations_ms: Vec<u32>,
}

/// The `chars` of an [`Alignment`]: their text and their number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlignedChars {
    pub text: String,
    pub count: usize,
}

/// Reads `["H","i"]` into one string without a `String` per element.
fn concat_chars<'de, D: serde::Deserializer<'de>>(d: D) -> Result<AlignedChars, D::Error> {
    use serde::de::{DeserializeSeed, SeqAccess, Visitor};

    /// Appends one string element to the text.
    struct Append<'s>(&'s mut String);
    impl<'de> DeserializeSeed<'de> for Append<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for Append<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a character")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
            self.0.push_str(v);
            Ok(())
        }
    }

    struct Chars;
    impl<'de> Visitor<'de> for Chars {
        type Value = AlignedChars;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array of characters")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AlignedChars, A::Error> {
            let mut chars = AlignedChars {
                text: String::with_capacity(seq.size_hint().unwrap_or(16)),
                count: 0,
            };
            while seq.next_element_seed(Append(&mut chars.text))?.is_some() {
                chars.count += 1;
            }
            Ok(chars)
        }
    }
    d.deserialize_seq(Chars)
}

#[derive(Debug, Clone, PartialEq)]
pub enum TtsEvent {
    /// Audio of the live turn, in the session's output format. For PCM: whole 16-bit samples
    /// (μ-law is one byte per sample).
    Audio {
        context: ContextId,
        pcm: Bytes,
        alignment: Option<Alignment>,
    },
    /// All audio of a flushed turn has arrived; its context is being closed.
    /// `first_audio`: from the turn's first text to its first audio byte.
    TurnDone {
        context: ContextId,
        first_audio: Option<Duration>,
    },
    /// The turn (if any) will produce no more audio: fall back.
    Error {
        context: Option<ContextId>,
        error: SessionError,
    },
    /// The session is over (after `close`, or when its handle was dropped).
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    /// An error JSON from ElevenLabs (`input_timeout_exceeded`, `max_active_conversations`, …).
    #[error("ElevenLabs error `{code}`: {message}")]
    Server { code: String, message: String },
    /// The socket dropped while a turn was being spoken.
    #[error("TTS socket dropped mid-turn: {0}")]
    Dropped(String),
    /// No socket could be opened for the turn.
    #[error("TTS socket could not be reopened: {0}")]
    Connect(String),
}

enum Command {
    Start(ContextId),
    Text(ContextId, String),
    Flush(ContextId),
    Cancel(ContextId),
    Close,
}

/// A call's TTS: one socket, one context per agent turn. Open it when the call starts so the
/// handshake is off the critical path; read [`TtsEvent`]s from the receiver `connect` returns.
#[derive(Debug)]
pub struct TtsSession {
    commands: mpsc::Sender<Command>,
    turns: u64,
    /// The most recent turn, until cancelled.
    current: Option<ContextId>,
    /// Whether `current` may still take text (not yet flushed).
    accepting: bool,
}

impl TtsSession {
    /// Opens the socket (bounded by `connect_timeout`) and starts the session task, which lives
    /// until `close` or until this handle is dropped.
    #[tracing::instrument(skip_all, fields(voice = %config.voice_id, format = config.output_format.as_str()))]
    pub async fn connect(
        config: ElevenLabsConfig,
    ) -> Result<(TtsSession, mpsc::Receiver<TtsEvent>), TtsError> {
        let socket = open_socket(&config).await?;
        let (commands, command_rx) = mpsc::channel(256);
        let (event_tx, events) = mpsc::channel(256);
        let actor = Actor {
            config,
            socket: Some(socket),
            events: event_tx,
            live: None,
        };
        tokio::spawn(actor.run(command_rx));
        let session = TtsSession {
            commands,
            turns: 0,
            current: None,
            accepting: false,
        };
        Ok((session, events))
    }

    /// Starts a turn (a new context). An unfinished previous turn is cancelled.
    pub async fn start_turn(&mut self) -> Result<ContextId, TtsError> {
        self.turns += 1;
        let id = ContextId(format!("turn-{}", self.turns));
        self.command(Command::Start(id.clone())).await?;
        self.current = Some(id.clone());
        self.accepting = true;
        Ok(id)
    }

    /// Sends a phrase of the current turn. A chunk not ending in whitespace gets a space, so
    /// send whole words or phrases, never fragments of a word.
    pub async fn send_text(&mut self, chunk: &str) -> Result<(), TtsError> {
        let id = self.accepting_turn()?;
        if chunk.trim().is_empty() {
            return Ok(());
        }
        let mut text = chunk.to_string();
        if !text.ends_with(char::is_whitespace) {
            text.push(' ');
        }
        self.command(Command::Text(id, text)).await
    }

    /// Ends the current turn's text: what is buffered is spoken, then `TurnDone` follows.
    pub async fn flush(&mut self) -> Result<(), TtsError> {
        let id = self.accepting_turn()?;
        self.accepting = false;
        self.command(Command::Flush(id)).await
    }

    /// Barge-in: stops the current turn; audio still arriving for it is dropped.
    pub async fn cancel_turn(&mut self) -> Result<(), TtsError> {
        self.accepting = false;
        match self.current.take() {
            Some(id) => self.command(Command::Cancel(id)).await,
            None => Ok(()),
        }
    }

    /// Closes the socket; `Closed` follows on the event channel.
    pub async fn close(self) -> Result<(), TtsError> {
        self.command(Command::Close).await
    }

    fn accepting_turn(&self) -> Result<ContextId, TtsError> {
        match (&self.current, self.accepting) {
            (Some(id), true) => Ok(id.clone()),
            _ => Err(TtsError::NoTurn),
        }
    }

    async fn command(&self, command: Command) -> Result<(), TtsError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| TtsError::SessionClosed)
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open_socket(config: &ElevenLabsConfig) -> Result<Socket, TtsError> {
    let url = config.ws_url()?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| TtsError::WebSocket(Box::new(e)))?;
    let mut key = HeaderValue::from_str(config.api_key.expose())
        .map_err(|_| TtsError::InvalidApiKey("the key is not a valid header value".into()))?;
    key.set_sensitive(true);
    request.headers_mut().insert("xi-api-key", key);
    match tokio::time::timeout(
        config.connect_timeout,
        tokio_tungstenite::connect_async_with_config(request, Some(super::ws_config()), true),
    )
    .await
    {
        Err(_) => Err(TtsError::Timeout("opening the TTS WebSocket")),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response.body().clone().unwrap_or_default();
            Err(TtsError::from_answer(response.status().as_u16(), &body))
        }
        Ok(Err(e)) => Err(TtsError::WebSocket(Box::new(e))),
    }
}

/// The turn whose audio is wanted. Audio for any other context is dropped.
struct LiveTurn {
    id: ContextId,
    flushed: bool,
    first_text_at: Option<Instant>,
    first_audio: Option<Duration>,
    aligner: SampleAligner,
    last_sent: Instant,
}

/// One message from the socket. The audio (base64, the bulk of the message) and the context
/// id are borrowed from the frame's text when they hold no JSON escapes, as base64 never does.
#[derive(Debug)]
struct ServerMessage<'a> {
    audio: Option<Cow<'a, str>>,
    is_final: Option<bool>,
    context_id: Option<Cow<'a, str>>,
    alignment: Option<Alignment>,
    normalized_alignment: Option<Alignment>,
    message: Option<String>,
    error: Option<String>,
}

impl<'a> ServerMessage<'a> {
    /// Reads a message: first strictly, borrowing the audio and reading the alignments
    /// directly; a message that does not fit (an escaped string, an alignment of an unexpected
    /// shape) is read again loosely, so its audio still plays, without that alignment, as it
    /// did when every message was read as JSON values.
    fn parse(text: &'a str) -> serde_json::Result<Self> {
        // `Option<Cow<str>>` never borrows in serde; `Option<&str>` does, and fails on escapes.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Strict<'a> {
            #[serde(borrow, default)]
            audio: Option<&'a str>,
            is_final: Option<bool>,
            #[serde(borrow, default)]
            context_id: Option<&'a str>,
            #[serde(default)]
            alignment: Option<Alignment>,
            #[serde(default)]
            normalized_alignment: Option<Alignment>,
            message: Option<String>,
            error: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Loose {
            audio: Option<String>,
            is_final: Option<bool>,
            context_id: Option<String>,
            alignment: Option<Value>,
            normalized_alignment: Option<Value>,
            message: Option<String>,
            error: Option<String>,
        }
        if let Ok(m) = serde_json::from_str::<Strict>(text) {
            return Ok(ServerMessage {
                audio: m.audio.map(Cow::Borrowed),
                is_final: m.is_final,
                context_id: m.context_id.map(Cow::Borrowed),
                alignment: m.alignment,
                normalized_alignment: m.normalized_alignment,
                message: m.message,
                error: m.error,
            });
        }
        let loose: Loose = serde_json::from_str(text)?;
        let read = |v: Option<Value>| v.and_then(|v| serde_json::from_value(v).ok());
        Ok(ServerMessage {
            audio: loose.audio.map(Cow::Owned),
            is_final: loose.is_final,
            context_id: loose.context_id.map(Cow::Owned),
            alignment: read(loose.alignment),
            normalized_alignment: read(loose.normalized_alignment),
            message: loose.message,
            error: loose.error,
        })
    }
}

/// Owns the socket; everything the session does happens here, in order.
struct Actor {
    config: ElevenLabsConfig,
    socket: Option<Socket>,
    events: mpsc::Sender<TtsEvent>,
    live: Option<LiveTurn>,
}

impl Actor {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        // A keep-alive must come well within the server's inactivity timeout.
        let server_timeout = Duration::from_secs(self.config.inactivity_timeout_secs.max(1) as u64);
        self.config.keepalive_interval = self.config.keepalive_interval.min(server_timeout / 2);
        let tick = (self.config.keepalive_interval / 2).max(Duration::from_millis(10));
        let mut keepalive = tokio::time::interval(tick);
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Close) | None => break,
                    Some(command) => self.on_command(command).await,
                },
                message = next_message(&mut self.socket) => self.on_socket(message).await,
                _ = keepalive.tick() => self.keep_alive().await,
            }
        }
        if let Some(mut socket) = self.socket.take() {
            let _ = socket
                .send(Message::text(json!({"close_socket": true}).to_string()))
                .await;
            // Let the server close; do not wait long.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(_)) = socket.next().await {}
            })
            .await;
        }
        let _ = self.events.send(TtsEvent::Closed).await;
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Start(id) => self.start(id).await,
            Command::Text(id, text) => {
                if let Some(turn) = self.live.as_mut().filter(|t| t.id == id) {
                    turn.first_text_at.get_or_insert_with(Instant::now);
                    let msg = json!({"text": text, "context_id": id.as_str()});
                    self.send_for_turn(msg).await;
                }
            }
            Command::Flush(id) => {
                let Some(turn) = self.live.as_mut().filter(|t| t.id == id) else {
                    return;
                };
                if turn.first_text_at.is_none() {
                    // Nothing was said: the turn is done without asking the server.
                    self.finish_turn().await;
                    return;
                }
                turn.flushed = true;
                let msg = json!({"context_id": id.as_str(), "flush": true});
                self.send_for_turn(msg).await;
            }
            Command::Cancel(id) => {
                if self.live.as_ref().is_some_and(|t| t.id == id) {
                    self.live = None;
                    self.close_context(&id).await;
                }
            }
            Command::Close => {}
        }
    }

    async fn start(&mut self, id: ContextId) {
        if let Some(previous) = self.live.take() {
            self.close_context(&previous.id).await;
        }
        self.read_pending().await;
        let init = json!({
            "text": " ",
            "context_id": id.as_str(),
            "voice_settings": self.config.voice_settings,
        })
        .to_string();
        // A socket that dropped between turns is replaced once, here.
        let mut sent = match self.socket.as_mut() {
            Some(socket) => socket.send(Message::text(init.clone())).await.is_ok(),
            None => false,
        };
        if !sent {
            // Boxed: a reopen is rare, and inline its connect and handshake states would sit in
            // every session task's future for the whole call (heaptrack: ~19 KB per task).
            match Box::pin(open_socket(&self.config)).await {
                Ok(mut socket) => {
                    tracing::info!(context = %id, "TTS socket reopened");
                    sent = socket.send(Message::text(init)).await.is_ok();
                    self.socket = Some(socket);
                }
                Err(e) => {
                    self.socket = None;
                    self.emit(TtsEvent::Error {
                        context: Some(id),
                        error: SessionError::Connect(e.to_string()),
                    })
                    .await;
                    return;
                }
            }
        }
        if !sent {
            self.socket = None;
            let error = SessionError::Connect("the new socket failed at once".into());
            self.emit(TtsEvent::Error {
                context: Some(id),
                error,
            })
            .await;
            return;
        }
        self.live = Some(LiveTurn {
            id,
            flushed: false,
            first_text_at: None,
            first_audio: None,
            aligner: SampleAligner::new(self.config.output_format),
            last_sent: Instant::now(),
        });
    }

    /// Handles what has already arrived on the socket, without waiting. A socket that sat idle
    /// may have been closed by the server (its inactivity timeout) with that still unread; a new
    /// turn sent into it would fail and fall back to HTTP, where a new socket serves it whole.
    async fn read_pending(&mut self) {
        use futures::FutureExt;
        while let Some(socket) = self.socket.as_mut() {
            let Some(message) = socket.next().now_or_never() else {
                break;
            };
            self.on_socket(message).await;
        }
    }

    /// Sends a message of the live turn; a failure ends the turn with an error event.
    async fn send_for_turn(&mut self, msg: Value) {
        let ok = match self.socket.as_mut() {
            Some(socket) => socket.send(Message::text(msg.to_string())).await.is_ok(),
            None => false,
        };
        if ok {
            if let Some(turn) = self.live.as_mut() {
                turn.last_sent = Instant::now();
            }
        } else {
            self.socket = None;
            self.fail_turn(SessionError::Dropped("sending to the socket failed".into()))
                .await;
        }
    }

    async fn close_context(&mut self, id: &ContextId) {
        if let Some(socket) = self.socket.as_mut() {
            let msg = json!({"context_id": id.as_str(), "close_context": true});
            if socket.send(Message::text(msg.to_string())).await.is_err() {
                self.socket = None;
            }
        }
    }

    /// Keeps the live context (and so the socket) alive while the agent is slow to speak.
    async fn keep_alive(&mut self) {
        let Some(turn) = self.live.as_ref() else {
            return;
        };
        if turn.last_sent.elapsed() >= self.config.keepalive_interval {
            let msg = json!({"text": "", "context_id": turn.id.as_str()});
            self.send_for_turn(msg).await;
        }
    }

    async fn on_socket(&mut self, message: Option<Result<Message, tungstenite::Error>>) {
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let reason =
                    frame.map_or_else(|| "closed".into(), |f| format!("closed {}", f.code));
                self.socket_lost(reason).await;
                return;
            }
            Some(Ok(_)) => return,
            Some(Err(e)) => {
                self.socket_lost(e.to_string()).await;
                return;
            }
            None => {
                self.socket_lost("ended".into()).await;
                return;
            }
        };
        let msg = match ServerMessage::parse(text.as_str()) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable ElevenLabs message ignored");
                return;
            }
        };
        if msg.error.is_some() || (msg.message.is_some() && msg.audio.is_none()) {
            let error = SessionError::Server {
                code: msg.error.unwrap_or_else(|| "unknown".into()),
                message: msg.message.unwrap_or_default(),
            };
            if self.live.is_some() {
                tracing::warn!(%error, "ElevenLabs failed a turn");
                self.fail_turn(error).await;
            } else {
                // Between turns nothing is lost (typically an idle timeout): the server closes
                // the socket, so it is dropped now and the next turn opens a new one.
                tracing::info!(%error, "ElevenLabs closed an idle session socket");
                self.socket = None;
            }
            return;
        }
        let Some(turn) = self.live.as_mut() else {
            return;
        };
        if msg.context_id.as_deref() != Some(turn.id.as_str()) {
            // Late audio of a closed context (e.g. after a barge-in): never played.
            return;
        }
        if let Some(audio) = msg.audio.as_deref().filter(|a| !a.is_empty()) {
            let bytes = match base64_simd::STANDARD.decode_to_vec(audio) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::warn!(error = %e, "undecodable ElevenLabs audio ignored");
                    return;
                }
            };
            if turn.first_audio.is_none() {
                turn.first_audio = turn.first_text_at.map(|t| t.elapsed());
                tracing::debug!(context = %turn.id, first_audio = ?turn.first_audio, "first TTS audio");
            }
            let pcm = turn.aligner.push(bytes);
            let alignment = msg.alignment.or(msg.normalized_alignment);
            if !pcm.is_empty() {
                let event = TtsEvent::Audio {
                    context: turn.id.clone(),
                    pcm,
                    alignment,
                };
                self.emit(event).await;
            }
        }
        if msg.is_final == Some(true) {
            self.finish_turn().await;
        }
    }

    /// The live turn's audio is complete: report it and close its context.
    async fn finish_turn(&mut self) {
        if let Some(turn) = self.live.take() {
            tracing::info!(context = %turn.id, first_audio = ?turn.first_audio, "TTS turn done");
            self.close_context(&turn.id).await;
            self.emit(TtsEvent::TurnDone {
                context: turn.id,
                first_audio: turn.first_audio,
            })
            .await;
        }
    }

    async fn fail_turn(&mut self, error: SessionError) {
        let context = self.live.take().map(|t| t.id);
        self.emit(TtsEvent::Error { context, error }).await;
    }

    async fn socket_lost(&mut self, reason: String) {
        self.socket = None;
        if self.live.is_some() {
            self.fail_turn(SessionError::Dropped(reason)).await;
        } else {
            tracing::info!(%reason, "TTS socket closed between turns; the next turn reopens it");
        }
    }

    async fn emit(&self, event: TtsEvent) {
        // A dropped receiver means nobody listens any more; the session ends with its handle.
        let _ = self.events.send(event).await;
    }
}

/// The next socket message, or never when there is no socket.
async fn next_message(socket: &mut Option<Socket>) -> Option<Result<Message, tungstenite::Error>> {
    match socket.as_mut() {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_messages_are_read_with_their_alignment_or_the_normalized_one() {
        let text = r#"{"audio":"AAEC","isFinal":null,"contextId":"t1",
            "alignment":{"chars":["H","\"","ü"," "],"charStartTimesMs":[0,60,120,180],"charDurationsMs":[60,60,60,60]},
            "normalizedAlignment":{"chars":["h"],"charStartTimesMs":[0],"charDurationsMs":[240]}}"#;
        let msg = ServerMessage::parse(text).unwrap();
        assert_eq!(msg.audio.as_deref(), Some("AAEC"));
        assert!(
            matches!(msg.audio, Some(Cow::Borrowed(_))),
            "audio is not copied"
        );
        assert_eq!(msg.context_id.as_deref(), Some("t1"));
        let a = msg.alignment.or(msg.normalized_alignment).unwrap();
        assert_eq!(a.chars.text, "H\"ü ");
        assert_eq!(a.chars.count, 4);
        assert_eq!(a.char_start_times_ms, [0, 60, 120, 180]);

        let only_normalized = r#"{"audio":"AAEC","contextId":"t1","alignment":null,
            "normalizedAlignment":{"chars":["o","k"],"charStartTimesMs":[0,60],"charDurationsMs":[60,60]}}"#;
        let msg = ServerMessage::parse(only_normalized).unwrap();
        let a = msg.alignment.or(msg.normalized_alignment).unwrap();
        assert_eq!((a.chars.text.as_str(), a.chars.count), ("ok", 2));

        // An alignment of an unexpected shape costs the alignment, never the audio.
        let odd = r#"{"audio":"AAEC","contextId":"t1","isFinal":false,
            "alignment":{"chars":[1],"charStartTimesMs":[0.5],"charDurationsMs":[]},
            "normalizedAlignment":{"chars":["o"],"charStartTimesMs":[0],"charDurationsMs":[60]}}"#;
        let msg = ServerMessage::parse(odd).unwrap();
        assert_eq!(msg.audio.as_deref(), Some("AAEC"));
        assert_eq!(msg.is_final, Some(false));
        assert!(msg.alignment.is_none());
        assert_eq!(msg.normalized_alignment.unwrap().chars.text, "o");
        let escaped = ServerMessage::parse(r#"{"audio":"AA\/C","contextId":"t1"}"#).unwrap();
        assert_eq!(
            escaped.audio.as_deref(),
            Some("AA/C"),
            "an escaped string is still read"
        );
        let no_alignment = ServerMessage::parse(r#"{"audio":"AAEC","alignment":"x"}"#).unwrap();
        assert_eq!(no_alignment.audio.as_deref(), Some("AAEC"));
        assert!(no_alignment.alignment.is_none());
        assert!(ServerMessage::parse("not json").is_err());
    }

    #[test]
    fn odd_chunks_come_out_as_whole_samples() {
        let bytes: Vec<u8> = (0..=255).collect();
        for size in [1usize, 3, 7, 333] {
            let mut aligner = SampleAligner::new(OutputFormat::Pcm8000);
            let mut out = Vec::new();
            for chunk in bytes.chunks(size) {
                let aligned = aligner.push(Bytes::copy_from_slice(chunk));
                assert_eq!(aligned.len() % 2, 0, "size {size}");
                out.extend_from_slice(&aligned);
            }
            assert_eq!(out, bytes, "size {size}");
            assert!(!aligner.has_carry());
        }
    }

    #[test]
    fn ulaw_bytes_pass_through() {
        let mut aligner = SampleAligner::new(OutputFormat::Ulaw8000);
        assert_eq!(aligner.push(Bytes::from_static(b"abc")).as_ref(), b"abc");
    }

    #[test]
    fn answers_map_to_typed_errors() {
        let body = br#"{"detail":{"status":"system_busy","message":"busy"}}"#;
        let e = TtsError::from_answer(429, body);
        assert!(matches!(e, TtsError::SystemBusy(_)));
        assert_eq!(e.retry_advice(), RetryAdvice::BackOff);
        let body = br#"{"detail":{"status":"too_many_concurrent_requests","message":"x"}}"#;
        assert_eq!(
            TtsError::from_answer(429, body).retry_advice(),
            RetryAdvice::Retry
        );
        assert!(matches!(
            TtsError::from_answer(401, b"nope"),
            TtsError::InvalidApiKey(_)
        ));
        assert_eq!(
            TtsError::from_answer(400, br#"{"detail":{"status":"quota_exceeded"}}"#).retry_advice(),
            RetryAdvice::GiveUp
        );
    }

    #[test]
    fn websocket_url_is_derived_from_the_base_url() {
        let mut c = ElevenLabsConfig::new("https://api.elevenlabs.io/", Secret::new("k"), "v1d");
        c.language_code = Some("hi".into());
        let url = c.ws_url().unwrap();
        assert_eq!(
            url.as_str(),
            "wss://api.elevenlabs.io/v1/text-to-speech/v1d/multi-stream-input?model_id=eleven_flash_v2_5&output_format=pcm_8000&inactivity_timeout=60&language_code=hi"
        );
        let c = ElevenLabsConfig::new("http://127.0.0.1:9", Secret::new("k"), "v");
        assert!(
            c.ws_url()
                .unwrap()
                .as_str()
                .starts_with("ws://127.0.0.1:9/v1/")
        );
    }
}
