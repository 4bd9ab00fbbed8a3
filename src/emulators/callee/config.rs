//! A call's settings ([`CalleeConfig`], [`MarkEcho`]), what Exotel knows about the call when
//! the stream starts ([`StartInfo`]), and why a stream never starts ([`CalleeError`]).

use std::time::Duration;

use super::persona::{Language, Persona};

#[derive(Debug, Clone)]
pub struct CalleeConfig {
    pub persona: Persona,
    pub language: Language,
    /// Seeds every random choice (reply delays, lead-ins, backchannel words): same seed, same call.
    pub seed: u64,
    /// The stream ends after this long (`stop` with reason `stopped`), like Exotel's `TimeLimit`.
    pub max_duration: Duration,
    /// Silence after the agent's last sound before the person answers (plus up to 150 ms).
    pub reply_delay: Duration,
    /// With nothing left to say, how long the person waits for the bot to hang up before
    /// hanging up itself.
    pub patience: Duration,
    /// Most answers the person gives.
    pub max_turns: u32,
    /// Audio per `media` frame sent (Exotel: about 100 ms; 100 ms is 1,600 bytes at 8 kHz).
    pub frame: Duration,
    /// WebSocket handshake limit (Exotel: 10 s).
    pub connect_timeout: Duration,
    /// The silence the bot's speech-to-text needs to call a turn finished (Deepgram's
    /// `endpointing`). Only measurement uses it: with it, the report's
    /// [`CallReport::after_endpoint`](super::CallReport::after_endpoint) times each answer from the frame whose audio completed that
    /// silence, so a benchmark can subtract the providers' delays exactly.
    pub endpointing: Option<Duration>,
    /// When marks are echoed.
    pub marks: MarkEcho,
}

/// When the emulated Exotel echoes a bot's `mark`.
///
/// Exotel's docs say a mark is echoed "when everything queued before it has played"
/// (`shared/protocols/exotel.md` §1): that is [`MarkEcho::Played`], the default. They say
/// nothing of how late an echo may be, nor whether one can be lost, and a bot that waits on
/// one forever never hangs up: [`MarkEcho::Late`] (a slow network or platform) and
/// [`MarkEcho::Never`] (an integration that drops them) are the other readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MarkEcho {
    #[default]
    Played,
    /// This long after the audio before it has played.
    Late(Duration),
    Never,
}

impl Default for CalleeConfig {
    fn default() -> Self {
        Self {
            persona: Persona::Interested,
            language: Language::En,
            seed: 0,
            max_duration: Duration::from_secs(60),
            reply_delay: Duration::from_millis(400),
            patience: Duration::from_secs(4),
            max_turns: 3,
            frame: Duration::from_millis(100),
            connect_timeout: Duration::from_secs(10),
            endpointing: None,
            marks: MarkEcho::Played,
        }
    }
}

impl CalleeConfig {
    pub fn new(persona: Persona) -> Self {
        Self {
            persona,
            ..Self::default()
        }
    }
}

/// What Exotel knows about the call when the stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    pub call_sid: String,
    pub account_sid: String,
    /// The person's number (Exotel dials the lead first).
    pub from: String,
    /// Our ExoPhone.
    pub to: String,
}

impl StartInfo {
    pub fn new(call_sid: &str, from: &str, to: &str) -> Self {
        Self {
            call_sid: call_sid.into(),
            account_sid: "emulated-account".into(),
            from: from.into(),
            to: to.into(),
        }
    }
}

/// Why a stream never started.
#[derive(Debug, thiserror::Error)]
pub enum CalleeError {
    #[error("invalid media URL: {0}")]
    InvalidUrl(String),
    /// `no_answer` and `busy` never reach `/media`.
    #[error("the {0} persona never answers")]
    NeverAnswers(Persona),
    #[error("no WebSocket handshake within {0:?}")]
    ConnectTimeout(Duration),
    #[error("could not open the media WebSocket: {0}")]
    Connect(String),
}
