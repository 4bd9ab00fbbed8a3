//! A simulated person on the phone, reached the way Exotel's Voicebot applet reaches a bot: a
//! WebSocket client on the bot's `/media` URL speaking Exotel's protocol
//! (`shared/protocols/exotel.md` §1) the way Exotel sends it (numbers as strings, `stream_sid`).
//!
//! What it owns: one call's stream. It sends `connected`, `start`, then one `media` frame of
//! caller audio per [`CalleeConfig::frame`] of real time on an absolute schedule (silence, or
//! [`speech::synthesize`] audio while the person talks). It plays the bot's audio out at real-time
//! pace ("the ear"), hears it with a [`SpeechDecoder`], echoes each `mark` only once everything
//! queued before it has played, honours `clear`, and checks everything the bot sends against the
//! protocol, counting [`Violations`]. A [`Persona`] decides, from what it has heard, when to talk
//! and what to say. The result is a [`CallReport`].
//!
//! What it must not do: block, or allocate per frame more than the frame itself (thousands of
//! calls run at once, one task each). It is emulator-only: the product never imports it.
//!
//! The file reads top to bottom: personas and configuration, the report, the URL, the ear (bot
//! audio played out), the mouth (caller audio sent), the person (turn-taking), the call loop.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::exotel::CalleeOutcome;
use super::speech::{self, SYMBOL_MS, SpeechDecoder};

/// Exotel puts at most this many URL query parameters into `start.custom_parameters`.
const MAX_CUSTOM_PARAMETERS: usize = 3;
/// Bot audio must come in multiples of this (20 ms at 8 kHz).
const ALIGNMENT: usize = 320;
/// Exotel's largest accepted media payload.
const MAX_PAYLOAD: usize = 100_000;
/// Exotel's smallest recommended media payload.
const GUIDANCE_PAYLOAD: usize = 3_200;
/// Silence that separates two heard agent utterances.
const UTTERANCE_GAP: Duration = Duration::from_millis(300);
/// A playback queue dry for longer than this mid-phrase is an audible gap.
const UNDERRUN: Duration = Duration::from_millis(20);
/// Voicemail greetings and `hangs_up` start this long after the stream starts.
const OPENING_AFTER: Duration = Duration::from_millis(300);
/// `hangs_up` hangs up this long after starting to speak.
const HANG_UP_AFTER: Duration = Duration::from_secs(1);
/// `interrupts` barges in this far into the agent's first utterance.
const INTERRUPT_AFTER: Duration = Duration::from_secs(1);
/// `backchannel` leaves at least this much between two acknowledgements.
const BACKCHANNEL_GAP: Duration = Duration::from_millis(2_500);
/// The beep after a voicemail greeting.
const BEEP: Duration = Duration::from_millis(500);
/// Bounded wait for the close handshake after we hang up.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

const SYMBOL: Duration = Duration::from_millis(SYMBOL_MS as u64);

// ---------------------------------------------------------------------------------------------
// Personas and configuration

/// Who answers the phone. Parsed from a CSV `persona` column (`interested`, `not_interested`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Persona {
    /// Answers the greeting with interest, then "yes" to questions, for a few turns.
    #[default]
    Interested,
    NotInterested,
    /// Asks to be called tomorrow at 5 pm.
    Callback,
    WrongNumber,
    /// Asks never to be called again.
    DoNotCall,
    /// Never says anything: the bot's silence handling must end the call.
    Silent,
    /// Starts "Hello, who is this?" and hangs up mid-sentence after about a second.
    HangsUp,
    /// Barges in about a second into the agent's greeting, then behaves like `Interested`.
    Interrupts,
    /// Says "haan" / "hmm" / "ok" while the agent talks, then answers like `Interested`.
    Backchannel,
    /// An answering machine: plays its greeting and a beep, then stays silent.
    Voicemail,
    /// Never answers: an Exotel outcome, never a `/media` stream.
    NoAnswer,
    /// Line busy: an Exotel outcome, never a `/media` stream.
    Busy,
}

impl Persona {
    pub const ALL: [Persona; 12] = [
        Persona::Interested,
        Persona::NotInterested,
        Persona::Callback,
        Persona::WrongNumber,
        Persona::DoNotCall,
        Persona::Silent,
        Persona::HangsUp,
        Persona::Interrupts,
        Persona::Backchannel,
        Persona::Voicemail,
        Persona::NoAnswer,
        Persona::Busy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Persona::Interested => "interested",
            Persona::NotInterested => "not_interested",
            Persona::Callback => "callback",
            Persona::WrongNumber => "wrong_number",
            Persona::DoNotCall => "do_not_call",
            Persona::Silent => "silent",
            Persona::HangsUp => "hangs_up",
            Persona::Interrupts => "interrupts",
            Persona::Backchannel => "backchannel",
            Persona::Voicemail => "voicemail",
            Persona::NoAnswer => "no_answer",
            Persona::Busy => "busy",
        }
    }

    /// What Exotel reports for a call to this persona.
    pub fn outcome(self) -> CalleeOutcome {
        match self {
            Persona::NoAnswer => CalleeOutcome::NoAnswer,
            Persona::Busy => CalleeOutcome::Busy,
            _ => CalleeOutcome::Answered,
        }
    }

    /// Exotel's `AnsweredBy` for an answered call.
    pub fn answered_by(self) -> &'static str {
        match self {
            Persona::Voicemail => "Machine",
            _ => "Human",
        }
    }

    /// The first thing this persona says, if anything.
    pub fn first_line(self, language: Language) -> Option<&'static str> {
        let line = match self {
            Persona::Interested | Persona::Backchannel => Line::Interested,
            Persona::NotInterested => Line::NotInterested,
            Persona::Callback => Line::Callback,
            Persona::WrongNumber => Line::WrongNumber,
            Persona::DoNotCall => Line::DoNotCall,
            Persona::HangsUp => Line::WhoIsThis,
            Persona::Interrupts => Line::Wait,
            Persona::Voicemail => Line::Voicemail,
            Persona::Silent | Persona::NoAnswer | Persona::Busy => return None,
        };
        Some(line.text(language))
    }
}

impl fmt::Display for Persona {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown persona {0:?}")]
pub struct UnknownPersona(pub String);

impl FromStr for Persona {
    type Err = UnknownPersona;

    /// Case-insensitive; `-` and spaces count as `_` (`Not Interested`, `do-not-call`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| match c {
                '-' | ' ' => '_',
                c => c.to_ascii_lowercase(),
            })
            .collect();
        Persona::ALL
            .into_iter()
            .find(|p| p.as_str() == norm)
            .ok_or_else(|| UnknownPersona(s.to_string()))
    }
}

/// The language the person speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    #[default]
    En,
    /// Hindi, in Devanagari.
    Hi,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {0:?} (expected en or hi)")]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "en" | "en-in" | "en_in" | "english" => Ok(Language::En),
            "hi" | "hi-in" | "hi_in" | "hindi" => Ok(Language::Hi),
            _ => Err(UnknownLanguage(s.to_string())),
        }
    }
}

/// Everything the person can say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    Interested,
    Yes,
    Okay,
    NotInterested,
    StillNotInterested,
    Callback,
    CallbackConfirm,
    WrongNumber,
    DoNotCall,
    WhoIsThis,
    Wait,
    Voicemail,
}

impl Line {
    fn text(self, language: Language) -> &'static str {
        use Language::{En, Hi};
        match (self, language) {
            (Line::Interested, En) => "Yes, I am interested. Tell me more.",
            (Line::Interested, Hi) => "हाँ, मुझे दिलचस्पी है। और बताइए।",
            (Line::Yes, En) => "Yes, that works for me.",
            (Line::Yes, Hi) => "हाँ, यह मेरे लिए ठीक है।",
            (Line::Okay, En) => "Okay.",
            (Line::Okay, Hi) => "ठीक है।",
            (Line::NotInterested, En) => "No thanks, I am not interested.",
            (Line::NotInterested, Hi) => "नहीं, धन्यवाद। मुझे दिलचस्पी नहीं है।",
            (Line::StillNotInterested, En) => "I said no. I am not interested.",
            (Line::StillNotInterested, Hi) => "मैंने कहा ना, मुझे दिलचस्पी नहीं है।",
            (Line::Callback, En) => "I am busy right now. Please call me tomorrow at 5 pm.",
            (Line::Callback, Hi) => "मैं अभी व्यस्त हूँ। कृपया कल शाम 5 बजे कॉल करें।",
            (Line::CallbackConfirm, En) => "Yes, tomorrow at 5 pm.",
            (Line::CallbackConfirm, Hi) => "हाँ, कल शाम 5 बजे।",
            (Line::WrongNumber, En) => "Sorry, you have the wrong number.",
            (Line::WrongNumber, Hi) => "माफ़ कीजिए, आपने गलत नंबर लगाया है।",
            (Line::DoNotCall, En) => "Please don't call me again.",
            (Line::DoNotCall, Hi) => "कृपया मुझे दोबारा कॉल मत कीजिए।",
            (Line::WhoIsThis, En) => "Hello, who is this?",
            (Line::WhoIsThis, Hi) => "हैलो, कौन बोल रहा है?",
            (Line::Wait, En) => "Wait, wait, what is this about?",
            (Line::Wait, Hi) => "रुकिए, रुकिए, यह किस बारे में है?",
            (Line::Voicemail, En) => {
                "The person you are calling is not available. Please leave a message after the tone."
            }
            (Line::Voicemail, Hi) => {
                "आप जिस व्यक्ति को कॉल कर रहे हैं वह उपलब्ध नहीं है। कृपया टोन के बाद संदेश छोड़ें।"
            }
        }
    }
}

/// Short acknowledgements (each well under 0.5 s).
fn backchannels(language: Language) -> &'static [&'static str] {
    match language {
        Language::En => &["haan", "hmm", "ok"],
        Language::Hi => &["हाँ", "हम्म", "अच्छा"],
    }
}

fn is_goodbye(heard: &str) -> bool {
    let lower = heard.to_lowercase();
    [
        "bye",
        "have a nice day",
        "have a great day",
        "thank you for your time",
        "अलविदा",
        "शुभ दिन",
    ]
    .iter()
    .any(|k| lower.contains(k))
}

fn is_question(heard: &str) -> bool {
    heard.contains('?') || heard.contains("क्या")
}

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
    /// [`CallReport::after_endpoint`] times each answer from the frame whose audio completed that
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

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The bot closed the WebSocket (how a bot hangs up on Exotel), or the connection dropped.
    Bot,
    /// The person hung up (`stop` with reason `callended`).
    Callee,
    /// The person had nothing left to say and hung up after waiting
    /// [`CalleeConfig::patience`] for the bot to do it (`stop` with reason `callended`): a bot
    /// that should have hung up did not.
    Impatient,
    /// [`CalleeConfig::max_duration`] elapsed (`stop` with reason `stopped`).
    MaxDuration,
}

/// Protocol breaches by the bot, counted rather than fatal (Exotel itself is lenient).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Violations {
    /// Text frames that are not JSON.
    pub bad_json: u64,
    /// JSON with fields of the wrong type, or a `media` without a payload, a `mark` without a name.
    pub malformed: u64,
    /// Events other than `media`, `mark`, `clear` (or no `event`).
    pub unknown_event: u64,
    pub missing_stream_sid: u64,
    pub wrong_stream_sid: u64,
    pub bad_base64: u64,
    /// Payloads that are not a multiple of 320 bytes.
    pub misaligned_payload: u64,
    /// Payloads under 320 bytes.
    pub undersized_payload: u64,
    /// Payloads over 100,000 bytes.
    pub oversized_payload: u64,
    pub binary_frames: u64,
}

impl Violations {
    pub fn total(&self) -> u64 {
        self.bad_json
            + self.malformed
            + self.unknown_event
            + self.missing_stream_sid
            + self.wrong_stream_sid
            + self.bad_base64
            + self.misaligned_payload
            + self.undersized_payload
            + self.oversized_payload
            + self.binary_frames
    }
}

impl std::ops::AddAssign for Violations {
    fn add_assign(&mut self, o: Self) {
        self.bad_json += o.bad_json;
        self.malformed += o.malformed;
        self.unknown_event += o.unknown_event;
        self.missing_stream_sid += o.missing_stream_sid;
        self.wrong_stream_sid += o.wrong_stream_sid;
        self.bad_base64 += o.bad_base64;
        self.misaligned_payload += o.misaligned_payload;
        self.undersized_payload += o.undersized_payload;
        self.oversized_payload += o.oversized_payload;
        self.binary_frames += o.binary_frames;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaStats {
    pub frames_sent: u64,
    /// Valid `media` frames from the bot.
    pub frames_received: u64,
    pub bytes_received: u64,
    /// Received frames under Exotel's 3,200-byte guidance (one per phrase, the last, is normal).
    pub frames_below_guidance: u64,
    pub marks_received: u64,
    pub marks_echoed: u64,
    /// Played marks never echoed ([`MarkEcho::Never`]).
    pub marks_withheld: u64,
    /// Marks dropped by a `clear` before the audio ahead of them had played.
    pub marks_cancelled: u64,
    /// Marks still waiting for their audio when the call ended.
    pub marks_pending_at_end: u64,
    pub clears_received: u64,
    /// `clear`s received while no agent audio was queued or playing.
    pub useless_clears: u64,
    /// Frames that arrived after the playback queue had run dry for over 20 ms in the middle of
    /// a phrase (no mark, clear or caller turn since the previous frame): chopped speech.
    pub late_frames: u64,
    /// Total silence those late frames caused.
    pub underrun: Duration,
    /// Agent audio received but not yet played when the call ended (e.g. a bot hanging up
    /// over its own goodbye).
    pub unplayed_at_end: Duration,
    /// Agent audio received after the last mark (or `clear`) when the call ended: a phrase whose
    /// mark never came (a bot that waits on its TTS for ever leaves its last phrase so).
    pub unmarked_at_end: Duration,
    /// When the bot hung up: how long after its last audio had played.
    pub hangup_after_audio: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// An answer, said after the agent finished.
    Turn,
    /// A short acknowledgement while the agent talks; not a turn.
    Backchannel,
    /// Talking over the agent to stop it.
    Interruption,
    /// An answering machine's greeting.
    Voicemail,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaidLine {
    /// What went out on the wire: the whole line, or the part said before the call ended.
    pub text: String,
    pub kind: LineKind,
    /// Speech start, from the `start` event.
    pub at: Duration,
    /// Speech length (zero if the call ended first).
    pub duration: Duration,
    /// Whether agent audio was playing when the person started.
    pub over_agent_audio: bool,
}

#[derive(Debug, Clone)]
pub struct CallReport {
    pub call_sid: String,
    pub stream_sid: String,
    pub persona: Persona,
    pub language: Language,
    pub ended_by: EndedBy,
    /// From `start` sent to the end of the stream.
    pub duration: Duration,
    /// Agent speech as the person heard it (played out), one entry per utterance (split at
    /// 300 ms of silence).
    pub heard: Vec<String>,
    pub said: Vec<SaidLine>,
    pub stats: MediaStats,
    pub violations: Violations,
    /// From `start` sent to the first agent frame carrying sound.
    pub first_agent_audio: Option<Duration>,
    /// Per answer: end of the person's speech to the first agent frame with sound received.
    pub voice_to_voice: Vec<Duration>,
    /// Per answer (with [`CalleeConfig::endpointing`] set): from sending the frame whose audio
    /// completed the endpointing silence to the first agent frame with sound received — the
    /// voice-to-voice time with the carrier's frame granularity and the endpointing removed.
    pub after_endpoint: Vec<Duration>,
    /// The `custom_parameters` sent in `start`.
    pub custom_parameters: Vec<(String, String)>,
    /// Why the connection ended, when it was not a clean close.
    pub error: Option<String>,
}

impl CallReport {
    /// Everything heard, utterances joined by spaces.
    pub fn heard_text(&self) -> String {
        self.heard.join(" ")
    }

    /// What the person said of one kind, in order.
    pub fn said(&self, kind: LineKind) -> Vec<&str> {
        self.said
            .iter()
            .filter(|l| l.kind == kind)
            .map(|l| l.text.as_str())
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The URL

/// A parsed `/media` URL.
#[derive(Debug, PartialEq, Eq)]
struct Endpoint {
    /// Without the user info.
    url: String,
    /// `Authorization` header value from `user:pass@`.
    authorization: Option<String>,
    custom_parameters: Vec<(String, String)>,
    sample_rate: u32,
}

fn parse_endpoint(url: &str) -> Result<Endpoint, CalleeError> {
    let invalid = |m: &str| CalleeError::InvalidUrl(format!("{m}: {url:?}"));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme"))?;
    if !scheme.eq_ignore_ascii_case("ws") && !scheme.eq_ignore_ascii_case("wss") {
        return Err(invalid("not ws:// or wss://"));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    let authorization = userinfo.map(|u| {
        let (user, pass) = u.split_once(':').unwrap_or((u, ""));
        let pair = format!("{}:{}", percent_decode(user), percent_decode(pass));
        format!("Basic {}", B64.encode(pair))
    });
    let query = tail
        .split('#')
        .next()
        .and_then(|t| t.split_once('?'))
        .map_or("", |(_, q)| q);
    let mut custom_parameters = Vec::new();
    let mut sample_rate = 8000;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == "sample-rate" || k == "sample_rate" {
            sample_rate = v
                .parse()
                .ok()
                .filter(|r| [8000, 16000, 24000].contains(r))
                .unwrap_or(8000);
        } else if custom_parameters.len() < MAX_CUSTOM_PARAMETERS {
            custom_parameters.push((k.into_owned(), v.into_owned()));
        }
    }
    Ok(Endpoint {
        url: format!("{scheme}://{host}{tail}"),
        authorization,
        custom_parameters,
        sample_rate,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Deterministic randomness (SplitMix64): no crate, no global state.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max + 1))
    }
}

/// Audio clock: bytes of 16-bit PCM at a sample rate.
#[derive(Debug, Clone, Copy)]
struct Clock {
    bytes_per_sec: u64,
}

impl Clock {
    fn new(sample_rate: u32) -> Self {
        Self {
            bytes_per_sec: sample_rate as u64 * 2,
        }
    }

    fn sample_rate(self) -> u32 {
        (self.bytes_per_sec / 2) as u32
    }

    /// How long `bytes` take to play (rounded up, so a deadline is never early).
    fn duration(self, bytes: usize) -> Duration {
        Duration::from_nanos((bytes as u64 * 1_000_000_000).div_ceil(self.bytes_per_sec))
    }

    /// Bytes that play in `d` (rounded down).
    fn bytes(self, d: Duration) -> usize {
        (d.as_nanos() * self.bytes_per_sec as u128 / 1_000_000_000) as usize
    }
}

/// Sound rather than silence: the service's own test (`media::call`), through the same
/// vectorised peak, since every agent frame of every simulated caller passes through it.
fn voiced_bytes(pcm: &[u8]) -> bool {
    crate::pcm::peak(pcm) > 500
}

// ---------------------------------------------------------------------------------------------
// The ear: the bot's audio, played out at real-time pace and heard as it plays

#[derive(Debug)]
enum Queued {
    Audio { pcm: Vec<u8>, voiced: bool },
    Mark(String),
}

/// Exotel's playback buffer for the bot's audio, and the person listening to it.
///
/// Time is modelled exactly rather than ticked: `cursor` is the instant at which the first
/// unplayed byte starts playing, so a mark's due time is known in advance and `advance(now)`
/// plays (decodes) exactly what real-time playback would have played by `now`.
#[derive(Debug)]
struct Ear {
    clock: Clock,
    queue: VecDeque<Queued>,
    cursor: Instant,
    /// Bytes of the queue's first audio already played.
    head_played: usize,
    audio_queued: usize,
    voiced_queued: usize,
    /// When the queue last ran out of audio.
    drained_at: Option<Instant>,
    /// No mark, clear or caller turn since the last audio frame: the next frame continues it.
    mid_phrase: bool,
    decoder: SpeechDecoder,
    /// Play time of the last character heard.
    last_char: Option<Instant>,
    /// Play time of the first character of the utterance being heard.
    utterance_start: Option<Instant>,
    heard: Vec<String>,
    /// Heard since the person last reacted.
    fresh: String,
    /// Marks whose audio has played, to echo.
    due_marks: Vec<String>,
    /// Audio bytes received since the last mark or clear.
    unmarked: usize,
}

impl Ear {
    fn new(clock: Clock, now: Instant) -> Self {
        Self {
            clock,
            queue: VecDeque::new(),
            cursor: now,
            head_played: 0,
            audio_queued: 0,
            voiced_queued: 0,
            drained_at: None,
            mid_phrase: false,
            decoder: SpeechDecoder::for_rate(clock.sample_rate()),
            last_char: None,
            utterance_start: None,
            heard: Vec::new(),
            fresh: String::new(),
            due_marks: Vec::new(),
            unmarked: 0,
        }
    }

    /// Plays everything due by `now`; marks reached go to `due_marks`.
    fn advance(&mut self, now: Instant) {
        loop {
            let (take, done, chars, base_sample, base_time) = match self.queue.front() {
                None => return,
                Some(Queued::Mark(_)) => {
                    if let Some(Queued::Mark(name)) = self.queue.pop_front() {
                        self.due_marks.push(name);
                    }
                    continue;
                }
                Some(Queued::Audio { pcm, .. }) => {
                    if now <= self.cursor {
                        return;
                    }
                    let remaining = pcm.len() - self.head_played;
                    // Whole samples only, so that a `clear` never leaves half a sample behind
                    // (an odd-length payload, a violation, is played to its end).
                    let playable = self.clock.bytes(now - self.cursor);
                    let take = if playable >= remaining {
                        remaining
                    } else {
                        playable & !1
                    };
                    if take == 0 && remaining > 0 {
                        return;
                    }
                    let base_sample = self.decoder.samples_seen();
                    let chunk = &pcm[self.head_played..self.head_played + take];
                    let chars = self.decoder.push_bytes(chunk);
                    (take, take == remaining, chars, base_sample, self.cursor)
                }
            };
            self.cursor += self.clock.duration(take);
            self.head_played += take;
            for c in chars {
                let offset = c.at_sample.saturating_sub(base_sample) as usize * 2;
                self.hear(c.ch, base_time + self.clock.duration(offset));
            }
            if !done {
                return;
            }
            if let Some(Queued::Audio { voiced, .. }) = self.queue.pop_front() {
                self.head_played = 0;
                self.audio_queued -= 1;
                self.voiced_queued -= voiced as usize;
                if self.audio_queued == 0 {
                    self.drained_at = Some(self.cursor);
                }
            }
        }
    }

    fn hear(&mut self, ch: char, at: Instant) {
        let new_utterance = self
            .last_char
            .is_none_or(|prev| at.saturating_duration_since(prev + SYMBOL) >= UTTERANCE_GAP);
        if new_utterance {
            self.heard.push(String::new());
            self.utterance_start = Some(at);
            if !self.fresh.is_empty() {
                self.fresh.push(' ');
            }
        }
        if let Some(u) = self.heard.last_mut() {
            u.push(ch);
        }
        self.fresh.push(ch);
        self.last_char = Some(at);
    }

    /// Queues a frame; returns the gap it ends when it arrived late mid-phrase.
    fn enqueue(&mut self, now: Instant, pcm: Vec<u8>, voiced: bool) -> Option<Duration> {
        self.advance(now);
        if pcm.is_empty() {
            return None;
        }
        let mut late = None;
        if self.audio_queued == 0 {
            if self.mid_phrase
                && let Some(gap) = self.drained_at.map(|d| now.saturating_duration_since(d))
                && gap > UNDERRUN
            {
                late = Some(gap);
            }
            self.cursor = now;
            self.head_played = 0;
        }
        self.unmarked += pcm.len();
        self.queue.push_back(Queued::Audio { pcm, voiced });
        self.audio_queued += 1;
        self.voiced_queued += voiced as usize;
        self.mid_phrase = true;
        late
    }

    fn mark(&mut self, now: Instant, name: String) {
        self.unmarked = 0;
        self.queue.push_back(Queued::Mark(name));
        self.mid_phrase = false;
        self.advance(now);
    }

    /// Drops unplayed audio and pending marks; returns (nothing was playing, marks dropped).
    fn clear(&mut self, now: Instant) -> (bool, u64) {
        self.advance(now);
        let useless = self.audio_queued == 0;
        let cancelled = self
            .queue
            .iter()
            .filter(|q| matches!(q, Queued::Mark(_)))
            .count() as u64;
        self.queue.clear();
        self.unmarked = 0;
        self.head_played = 0;
        self.audio_queued = 0;
        self.voiced_queued = 0;
        if !useless {
            self.drained_at = Some(now);
        }
        self.mid_phrase = false;
        (useless, cancelled)
    }

    /// The person took a turn: whatever the bot sends next starts a new phrase.
    fn end_phrase(&mut self) {
        self.mid_phrase = false;
    }

    /// When the next mark falls due, if one is waiting.
    fn next_mark_due(&self) -> Option<Instant> {
        let mut bytes = 0;
        for (i, q) in self.queue.iter().enumerate() {
            match q {
                Queued::Audio { pcm, .. } if i == 0 => bytes += pcm.len() - self.head_played,
                Queued::Audio { pcm, .. } => bytes += pcm.len(),
                Queued::Mark(_) => return Some(self.cursor + self.clock.duration(bytes)),
            }
        }
        None
    }

    fn unplayed(&self) -> Duration {
        let bytes: usize = self
            .queue
            .iter()
            .map(|q| match q {
                Queued::Audio { pcm, .. } => pcm.len(),
                Queued::Mark(_) => 0,
            })
            .sum();
        self.clock.duration(bytes.saturating_sub(self.head_played))
    }

    fn pending_marks(&self) -> u64 {
        self.queue
            .iter()
            .filter(|q| matches!(q, Queued::Mark(_)))
            .count() as u64
    }

    /// Agent speech is playing now or queued to play.
    fn agent_playing(&self, now: Instant) -> bool {
        self.voiced_queued > 0 || self.last_char.is_some_and(|c| c + SYMBOL > now)
    }

    /// How long the agent has been quiet (zero while speech is queued).
    fn silent_for(&self, now: Instant) -> Duration {
        if self.voiced_queued > 0 {
            return Duration::ZERO;
        }
        self.last_char
            .map_or(Duration::MAX, |c| now.saturating_duration_since(c + SYMBOL))
    }

    fn take_fresh(&mut self) -> String {
        std::mem::take(&mut self.fresh)
    }
}

// ---------------------------------------------------------------------------------------------
// The mouth: the person's audio, one frame per tick

/// The line being said.
#[derive(Debug)]
struct Speaking {
    said: usize,
    /// Bytes of `Mouth::pcm` that are speech (the rest is lead-in or a beep).
    voice: Range<usize>,
    started_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Mouth {
    pcm: Vec<u8>,
    pos: usize,
}

impl Mouth {
    fn busy(&self) -> bool {
        self.pos < self.pcm.len()
    }

    /// Copies the next frame into `out` (zero-padded); returns the byte range of `pcm` used.
    fn fill(&mut self, out: &mut [u8]) -> Range<usize> {
        let start = self.pos;
        let n = (self.pcm.len() - start).min(out.len());
        out[..n].copy_from_slice(&self.pcm[start..start + n]);
        out[n..].fill(0);
        self.pos += n;
        start..self.pos
    }

    fn load(&mut self, lead_in: usize, speech: &[i16], tail: &[i16]) -> Range<usize> {
        self.pcm.clear();
        self.pcm.resize(lead_in, 0);
        self.pcm.extend(speech.iter().flat_map(|s| s.to_le_bytes()));
        let voice = lead_in..self.pcm.len();
        self.pcm.extend(tail.iter().flat_map(|s| s.to_le_bytes()));
        self.pos = 0;
        voice
    }
}

// ---------------------------------------------------------------------------------------------
// The person: when to talk and what to say

enum Act {
    Nothing,
    Say(&'static str, LineKind),
    HangUp,
    /// Hang up because the bot never did.
    GiveUp,
}

#[derive(Debug)]
struct Person {
    persona: Persona,
    language: Language,
    rng: Rng,
    reply_delay: Duration,
    patience: Duration,
    max_turns: u32,
    born: Instant,
    /// Silence to wait before the next answer.
    delay: Duration,
    turns: u32,
    opened: bool,
    interrupted: bool,
    backchannel_after: Duration,
    last_backchannel: Option<Instant>,
    nothing_to_say_since: Option<Instant>,
    hang_up_at: Option<Instant>,
}

impl Person {
    fn new(config: &CalleeConfig, born: Instant) -> Self {
        let mut rng = Rng(config.seed ^ 0x5EED_CA11_EE00_0000);
        let delay = config.reply_delay + rng.millis(150);
        let backchannel_after = Duration::from_millis(1_200) + rng.millis(400);
        Self {
            persona: config.persona,
            language: config.language,
            rng,
            reply_delay: config.reply_delay,
            patience: config.patience,
            max_turns: config.max_turns,
            born,
            delay,
            turns: 0,
            opened: false,
            interrupted: false,
            backchannel_after,
            last_backchannel: None,
            nothing_to_say_since: None,
            hang_up_at: None,
        }
    }

    /// Silence before speech starts within its first frame, so lines do not all start on a
    /// frame boundary.
    fn lead_in(&mut self) -> Duration {
        self.rng.millis(40)
    }

    fn decide(&mut self, now: Instant, ear: &mut Ear, speaking: bool) -> Act {
        if self.hang_up_at.is_some_and(|t| now >= t) {
            return Act::HangUp;
        }
        match self.persona {
            Persona::Silent | Persona::NoAnswer | Persona::Busy => return Act::Nothing,
            Persona::Voicemail | Persona::HangsUp => return self.opening(now),
            _ => {}
        }
        if speaking {
            return Act::Nothing;
        }
        if ear.agent_playing(now) {
            return self.while_agent_talks(now, ear);
        }
        if !ear.fresh.is_empty() && ear.silent_for(now) >= self.delay {
            let heard = ear.take_fresh();
            self.delay = self.reply_delay + self.rng.millis(150);
            if let Some(line) = self.answer(&heard) {
                self.turns += 1;
                self.nothing_to_say_since = None;
                return Act::Say(line.text(self.language), LineKind::Turn);
            }
            self.nothing_to_say_since.get_or_insert(now);
        }
        if self
            .nothing_to_say_since
            .is_some_and(|t| now >= t + self.patience)
        {
            return Act::GiveUp;
        }
        Act::Nothing
    }

    /// Voicemail and `hangs_up` speak first, whatever the bot does.
    fn opening(&mut self, now: Instant) -> Act {
        if self.opened || now < self.born + OPENING_AFTER {
            return Act::Nothing;
        }
        self.opened = true;
        let Some(line) = self.persona.first_line(self.language) else {
            return Act::Nothing;
        };
        if self.persona == Persona::HangsUp {
            // Speech starts in the next frame, which covers audio from `now` on.
            self.hang_up_at = Some(now + HANG_UP_AFTER);
            return Act::Say(line, LineKind::Turn);
        }
        Act::Say(line, LineKind::Voicemail)
    }

    fn while_agent_talks(&mut self, now: Instant, ear: &mut Ear) -> Act {
        let Some(since) = ear.utterance_start else {
            return Act::Nothing;
        };
        let talking = now.saturating_duration_since(since);
        match self.persona {
            Persona::Interrupts if !self.interrupted && talking >= INTERRUPT_AFTER => {
                self.interrupted = true;
                ear.take_fresh();
                Act::Say(Line::Wait.text(self.language), LineKind::Interruption)
            }
            Persona::Backchannel
                if talking >= self.backchannel_after
                    && self
                        .last_backchannel
                        .is_none_or(|t| now >= t + BACKCHANNEL_GAP) =>
            {
                self.last_backchannel = Some(now);
                let words = backchannels(self.language);
                let word = words[self.rng.below(words.len() as u64) as usize];
                Act::Say(word, LineKind::Backchannel)
            }
            _ => Act::Nothing,
        }
    }

    /// The answer to what the agent just said, if the person has one.
    fn answer(&self, heard: &str) -> Option<Line> {
        if is_goodbye(heard) || self.turns >= self.max_turns {
            return None;
        }
        let n = self.turns as usize;
        match self.persona {
            Persona::Interested | Persona::Interrupts | Persona::Backchannel => Some(if n == 0 {
                Line::Interested
            } else if is_question(heard) {
                Line::Yes
            } else {
                Line::Okay
            }),
            Persona::NotInterested => [Line::NotInterested, Line::StillNotInterested]
                .get(n)
                .copied(),
            Persona::Callback => [Line::Callback, Line::CallbackConfirm].get(n).copied(),
            Persona::WrongNumber => (n == 0).then_some(Line::WrongNumber),
            Persona::DoNotCall => (n == 0).then_some(Line::DoNotCall),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The call

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the bot may send, borrowed from the frame (the payload is not copied).
#[derive(Deserialize)]
struct Inbound<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    stream_sid: Option<Cow<'a, str>>,
    #[serde(borrow)]
    media: Option<InboundMedia<'a>>,
    #[serde(borrow)]
    mark: Option<InboundMark<'a>>,
}

#[derive(Deserialize)]
struct InboundMedia<'a> {
    #[serde(borrow)]
    payload: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct InboundMark<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

struct Call {
    socket: Socket,
    start: StartInfo,
    stream_sid: String,
    clock: Clock,
    sample_rate: u32,
    frame: Duration,
    /// Set when `start` is sent: the stream's time zero.
    t0: Instant,
    seq: u64,
    chunk: u64,
    silent_payload: String,
    frame_buf: Vec<u8>,
    payload_buf: String,
    ear: Ear,
    mouth: Mouth,
    speaking: Option<Speaking>,
    person: Person,
    said: Vec<SaidLine>,
    stats: MediaStats,
    violations: Violations,
    first_agent_audio: Option<Duration>,
    voice_to_voice: Vec<Duration>,
    /// End of the person's last answer, until the agent's reply arrives.
    awaiting_reply: Option<Instant>,
    endpointing: Option<Duration>,
    /// Audio time at which the endpointing silence after the last answer is complete.
    endpoint_due: Option<Instant>,
    /// When the frame completing that silence was actually sent.
    endpoint_sent: Option<Instant>,
    after_endpoint: Vec<Duration>,
    ended_at: Option<Instant>,
    error: Option<String>,
    marks: MarkEcho,
    /// Played marks held back ([`MarkEcho::Late`]) and when each is echoed.
    late_marks: VecDeque<(Instant, String)>,
}

/// Places the person on the bot's `/media` WebSocket and runs the call to its end.
///
/// `Err` only when the stream never starts (bad URL, failed handshake); anything that goes
/// wrong once it runs is in the report.
#[tracing::instrument(skip_all, fields(call_sid = %start.call_sid, persona = %config.persona))]
pub async fn run_call(
    url: &str,
    start: StartInfo,
    config: CalleeConfig,
) -> Result<CallReport, CalleeError> {
    if config.persona.outcome() != CalleeOutcome::Answered {
        return Err(CalleeError::NeverAnswers(config.persona));
    }
    let endpoint = parse_endpoint(url)?;
    let mut request = endpoint
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| CalleeError::InvalidUrl(e.to_string()))?;
    if let Some(auth) = &endpoint.authorization {
        let mut value = HeaderValue::from_str(auth)
            .map_err(|_| CalleeError::InvalidUrl("user info is not a valid header".into()))?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let socket = match timeout(
        config.connect_timeout,
        tokio_tungstenite::connect_async_with_config(request, None, true),
    )
    .await
    {
        Err(_) => return Err(CalleeError::ConnectTimeout(config.connect_timeout)),
        Ok(Err(e)) => return Err(CalleeError::Connect(e.to_string())),
        Ok(Ok((socket, _))) => socket,
    };
    let mut call = Call::new(socket, start, &config, endpoint.sample_rate);
    let ended_by = call
        .run(&endpoint.custom_parameters, config.max_duration)
        .await;
    Ok(call.report(&config, ended_by, endpoint.custom_parameters))
}

impl Call {
    fn new(socket: Socket, start: StartInfo, config: &CalleeConfig, sample_rate: u32) -> Self {
        let clock = Clock::new(sample_rate);
        // 320-aligned, like Exotel's own frames.
        let frame_bytes = clock.bytes(config.frame).div_ceil(ALIGNMENT).max(1) * ALIGNMENT;
        let mut id = Rng(config.seed ^ fnv1a(start.call_sid.as_bytes()));
        let stream_sid = format!("MZ{:016x}{:016x}", id.next(), id.next());
        let now = Instant::now();
        Self {
            socket,
            start,
            stream_sid,
            clock,
            sample_rate,
            frame: clock.duration(frame_bytes),
            t0: now,
            seq: 0,
            chunk: 0,
            silent_payload: B64.encode(vec![0u8; frame_bytes]),
            frame_buf: vec![0; frame_bytes],
            payload_buf: String::with_capacity(frame_bytes * 4 / 3 + 4),
            ear: Ear::new(clock, now),
            mouth: Mouth::default(),
            speaking: None,
            person: Person::new(config, now),
            said: Vec::new(),
            stats: MediaStats::default(),
            violations: Violations::default(),
            first_agent_audio: None,
            voice_to_voice: Vec::new(),
            awaiting_reply: None,
            endpointing: config.endpointing,
            endpoint_due: None,
            endpoint_sent: None,
            after_endpoint: Vec::new(),
            ended_at: None,
            error: None,
            marks: config.marks,
            late_marks: VecDeque::new(),
        }
    }

    async fn run(&mut self, custom: &[(String, String)], max_duration: Duration) -> EndedBy {
        let connected = json!({"event": "connected"}).to_string();
        if let Err(e) = self.send(connected).await {
            self.error = Some(e);
            return EndedBy::Bot;
        }
        let start = self.start_message(custom);
        self.t0 = Instant::now();
        self.person.born = self.t0;
        if let Err(e) = self.send(start).await {
            self.error = Some(e);
            return EndedBy::Bot;
        }
        let mut ticker = interval_at(self.t0 + self.frame, self.frame);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let deadline = self.t0 + max_duration;
        loop {
            let mark_due = self.ear.next_mark_due();
            let late_due = self.late_marks.front().map(|(at, _)| *at);
            let step = tokio::select! {
                biased;
                _ = sleep_until(deadline) => Err(EndedBy::MaxDuration),
                message = self.socket.next() => self.on_message(message),
                _ = sleep_until(mark_due.unwrap_or(deadline)), if mark_due.is_some() => {
                    self.ear.advance(Instant::now());
                    Ok(())
                }
                _ = sleep_until(late_due.unwrap_or(deadline)), if late_due.is_some() => Ok(()),
                scheduled = ticker.tick() => self.on_tick(scheduled).await,
            };
            let step = match step {
                Ok(()) => self.echo_marks().await,
                Err(end) => Err(end),
            };
            if let Err(end) = step {
                self.finish(end).await;
                return end;
            }
        }
    }

    fn start_message(&self, custom: &[(String, String)]) -> String {
        let params: serde_json::Map<String, serde_json::Value> = custom
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        json!({
            "event": "start",
            "sequence_number": "1",
            "stream_sid": self.stream_sid,
            "start": {
                "stream_sid": self.stream_sid,
                "call_sid": self.start.call_sid,
                "account_sid": self.start.account_sid,
                "from": self.start.from,
                "to": self.start.to,
                "custom_parameters": params,
                "media_format": {
                    "encoding": "audio/x-raw",
                    "sample_rate": self.sample_rate.to_string(),
                    "bit_rate": "16"
                }
            }
        })
        .to_string()
    }

    fn next_seq(&mut self) -> u64 {
        // `start` is 1.
        self.seq = self.seq.max(1) + 1;
        self.seq
    }

    async fn send(&mut self, text: String) -> Result<(), String> {
        self.socket
            .send(Message::text(text))
            .await
            .map_err(|e| e.to_string())
    }

    /// One frame of the person's audio, then the person's next move.
    async fn on_tick(&mut self, scheduled: Instant) -> Result<(), EndedBy> {
        let now = Instant::now();
        self.ear.advance(now);
        // This frame carries the audio of the frame interval that just ended.
        let frame_start = scheduled.checked_sub(self.frame).unwrap_or(scheduled);
        let speaking = self.mouth.busy();
        if speaking {
            let used = self.mouth.fill(&mut self.frame_buf);
            self.track_line(frame_start, used);
            self.payload_buf.clear();
            B64.encode_string(&self.frame_buf, &mut self.payload_buf);
        }
        self.chunk += 1;
        let seq = self.next_seq();
        let payload = if speaking {
            &self.payload_buf
        } else {
            &self.silent_payload
        };
        let frame_ms = self.frame.as_millis() as u64;
        let mut text = String::with_capacity(payload.len() + 160);
        let _ = write!(
            text,
            r#"{{"event":"media","sequence_number":"{seq}","stream_sid":"{}","media":{{"chunk":"{}","timestamp":"{}","payload":"{payload}"}}}}"#,
            self.stream_sid,
            self.chunk,
            self.chunk * frame_ms,
        );
        self.send(text).await.map_err(|e| self.lost(e))?;
        self.stats.frames_sent += 1;
        // This frame's audio ends at `scheduled`: it completes the endpointing silence when
        // that silence ends within it.
        if self.endpoint_due.is_some_and(|due| due <= scheduled) {
            self.endpoint_due = None;
            self.endpoint_sent = Some(Instant::now());
        }

        match self.person.decide(now, &mut self.ear, self.mouth.busy()) {
            Act::Nothing => Ok(()),
            Act::HangUp => Err(EndedBy::Callee),
            Act::GiveUp => Err(EndedBy::Impatient),
            Act::Say(line, kind) => {
                self.say(now, line, kind);
                Ok(())
            }
        }
    }

    fn lost(&mut self, error: String) -> EndedBy {
        self.error.get_or_insert(error);
        EndedBy::Bot
    }

    fn say(&mut self, now: Instant, line: &'static str, kind: LineKind) {
        let lead_in = self.clock.bytes(self.person.lead_in()) & !1;
        let speech = speech::synthesize(line, self.sample_rate);
        let tail = if kind == LineKind::Voicemail {
            beep(self.sample_rate)
        } else {
            Vec::new()
        };
        let voice = self.mouth.load(lead_in, &speech, &tail);
        self.said.push(SaidLine {
            text: line.to_string(),
            kind,
            at: Duration::ZERO,
            duration: Duration::ZERO,
            over_agent_audio: self.ear.agent_playing(now),
        });
        self.speaking = Some(Speaking {
            said: self.said.len() - 1,
            voice,
            started_at: None,
        });
        if kind == LineKind::Turn {
            self.ear.end_phrase();
            self.awaiting_reply = None;
            self.endpoint_due = None;
            self.endpoint_sent = None;
        }
    }

    /// Notes when the line in `used` (bytes of the mouth's audio sent in the frame that covers
    /// audio from `frame_start`) started and ended.
    fn track_line(&mut self, frame_start: Instant, used: Range<usize>) {
        let Some(sp) = &mut self.speaking else {
            return;
        };
        let at = |byte: usize| frame_start + self.clock.duration(byte - used.start);
        if sp.started_at.is_none() && sp.voice.start < used.end {
            let t = at(sp.voice.start.max(used.start));
            sp.started_at = Some(t);
            self.said[sp.said].at = t.saturating_duration_since(self.t0);
        }
        if sp.voice.end <= used.end {
            let end = at(sp.voice.end.max(used.start));
            let line = &mut self.said[sp.said];
            line.duration = end.saturating_duration_since(sp.started_at.unwrap_or(end));
            match line.kind {
                LineKind::Turn => {
                    self.awaiting_reply = Some(end);
                    self.endpoint_due = self.endpointing.map(|e| end + e);
                }
                // What the agent said while being talked over is not something to answer.
                LineKind::Interruption => drop(self.ear.take_fresh()),
                LineKind::Backchannel | LineKind::Voicemail => {}
            }
            self.speaking = None;
        }
    }

    fn on_message(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), EndedBy> {
        match message {
            Some(Ok(Message::Text(text))) => {
                self.on_text(Instant::now(), text.as_str());
                Ok(())
            }
            Some(Ok(Message::Binary(_))) => {
                self.violations.binary_frames += 1;
                Ok(())
            }
            Some(Ok(Message::Close(_))) | None => Err(EndedBy::Bot),
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(self.lost(e.to_string())),
        }
    }

    /// Checks one message from the bot and acts on it.
    fn on_text(&mut self, now: Instant, text: &str) {
        let inbound: Inbound = match serde_json::from_str(text) {
            Ok(m) => m,
            Err(_) => {
                if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
                    self.violations.malformed += 1;
                } else {
                    self.violations.bad_json += 1;
                }
                return;
            }
        };
        match inbound.stream_sid.as_deref() {
            None => self.violations.missing_stream_sid += 1,
            Some(sid) if sid != self.stream_sid => self.violations.wrong_stream_sid += 1,
            Some(_) => {}
        }
        match inbound.event.as_deref() {
            Some("media") => {
                let Some(payload) = inbound.media.and_then(|m| m.payload) else {
                    self.violations.malformed += 1;
                    return;
                };
                self.on_media(now, &payload);
            }
            Some("mark") => {
                let Some(name) = inbound.mark.and_then(|m| m.name) else {
                    self.violations.malformed += 1;
                    return;
                };
                self.stats.marks_received += 1;
                self.ear.mark(now, name.into_owned());
            }
            Some("clear") => {
                self.stats.clears_received += 1;
                let (useless, cancelled) = self.ear.clear(now);
                self.stats.useless_clears += useless as u64;
                self.stats.marks_cancelled += cancelled;
            }
            other => {
                tracing::debug!(event = ?other, "unknown event from the bot");
                self.violations.unknown_event += 1;
            }
        }
    }

    fn on_media(&mut self, now: Instant, payload: &str) {
        let Ok(pcm) = B64.decode(payload) else {
            self.violations.bad_base64 += 1;
            return;
        };
        let len = pcm.len();
        self.violations.misaligned_payload += (len % ALIGNMENT != 0) as u64;
        self.violations.undersized_payload += (len < ALIGNMENT) as u64;
        self.violations.oversized_payload += (len > MAX_PAYLOAD) as u64;
        self.stats.frames_received += 1;
        self.stats.bytes_received += len as u64;
        self.stats.frames_below_guidance += (len < GUIDANCE_PAYLOAD) as u64;
        let voiced = voiced_bytes(&pcm);
        if voiced {
            self.first_agent_audio
                .get_or_insert(now.saturating_duration_since(self.t0));
            if let Some(end) = self.awaiting_reply.take() {
                self.voice_to_voice.push(now.saturating_duration_since(end));
                if let Some(sent) = self.endpoint_sent.take() {
                    self.after_endpoint
                        .push(now.saturating_duration_since(sent));
                }
                self.endpoint_due = None;
            }
        }
        if let Some(gap) = self.ear.enqueue(now, pcm, voiced) {
            self.stats.late_frames += 1;
            self.stats.underrun += gap;
        }
    }

    async fn echo_marks(&mut self) -> Result<(), EndedBy> {
        let now = Instant::now();
        match self.marks {
            MarkEcho::Played => {}
            MarkEcho::Late(after) => {
                for name in self.ear.due_marks.drain(..) {
                    self.late_marks.push_back((now + after, name));
                }
                while self.late_marks.front().is_some_and(|(at, _)| *at <= now) {
                    let (_, name) = self.late_marks.pop_front().expect("checked");
                    self.ear.due_marks.push(name);
                }
            }
            MarkEcho::Never => {
                self.stats.marks_withheld += self.ear.due_marks.len() as u64;
                self.ear.due_marks.clear();
            }
        }
        if self.ear.due_marks.is_empty() {
            return Ok(());
        }
        let mut due = std::mem::take(&mut self.ear.due_marks);
        for name in due.drain(..) {
            let seq = self.next_seq();
            let echo = json!({
                "event": "mark",
                "sequence_number": seq.to_string(),
                "stream_sid": self.stream_sid,
                "mark": {"name": name}
            });
            self.send(echo.to_string())
                .await
                .map_err(|e| self.lost(e))?;
            self.stats.marks_echoed += 1;
        }
        // Keep the allocation for next time.
        self.ear.due_marks = due;
        Ok(())
    }

    /// Ends the stream: `stop` when the person or the time limit ends it, then the close.
    async fn finish(&mut self, end: EndedBy) {
        let now = Instant::now();
        self.ended_at = Some(now);
        self.ear.advance(now);
        if end == EndedBy::Bot && self.ear.audio_queued == 0 {
            self.stats.hangup_after_audio = self
                .ear
                .drained_at
                .map(|d| now.saturating_duration_since(d));
        }
        self.cut_line();
        let reason = match end {
            EndedBy::Bot => None,
            EndedBy::Callee | EndedBy::Impatient => Some("callended"),
            EndedBy::MaxDuration => Some("stopped"),
        };
        if let Some(reason) = reason {
            let seq = self.next_seq();
            let stop = json!({
                "event": "stop",
                "sequence_number": seq.to_string(),
                "stream_sid": self.stream_sid,
                "stop": {
                    "call_sid": self.start.call_sid,
                    "account_sid": self.start.account_sid,
                    "reason": reason
                }
            });
            if let Err(e) = self.send(stop.to_string()).await {
                self.error.get_or_insert(e);
            }
        }
        // Completes the close handshake, or answers the bot's close; bounded either way.
        let _ = timeout(CLOSE_WAIT, async {
            let _ = self.socket.close(None).await;
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }

    /// A line cut short by the end of the call keeps only what was sent.
    fn cut_line(&mut self) {
        let Some(sp) = self.speaking.take() else {
            return;
        };
        let symbol_bytes = speech::symbol_samples(self.sample_rate) * 2;
        let sent = self.mouth.pos.saturating_sub(sp.voice.start);
        // A character is heard once its header is out.
        let header_bytes = speech::header_samples(self.sample_rate) * 2;
        let chars = sent / symbol_bytes + usize::from(sent % symbol_bytes >= header_bytes);
        let line = &mut self.said[sp.said];
        line.text = line.text.chars().take(chars).collect();
        if sp.started_at.is_some() {
            line.duration = self.clock.duration(sent.min(sp.voice.len()));
        }
        self.mouth.pos = self.mouth.pcm.len();
    }

    fn report(
        mut self,
        config: &CalleeConfig,
        ended_by: EndedBy,
        custom_parameters: Vec<(String, String)>,
    ) -> CallReport {
        self.stats.unplayed_at_end = self.ear.unplayed();
        self.stats.unmarked_at_end = self.clock.duration(self.ear.unmarked);
        self.stats.marks_pending_at_end = self.ear.pending_marks();
        CallReport {
            call_sid: self.start.call_sid,
            stream_sid: self.stream_sid,
            persona: config.persona,
            language: config.language,
            ended_by,
            duration: self
                .ended_at
                .unwrap_or_else(Instant::now)
                .saturating_duration_since(self.t0),
            heard: self.ear.heard,
            said: self.said,
            stats: self.stats,
            violations: self.violations,
            first_agent_audio: self.first_agent_audio,
            voice_to_voice: self.voice_to_voice,
            after_endpoint: self.after_endpoint,
            custom_parameters,
            error: self.error,
        }
    }
}

/// An answering machine's tone: 1 kHz, voiced, no characters.
fn beep(sample_rate: u32) -> Vec<i16> {
    let n = (sample_rate as u64 * BEEP.as_millis() as u64 / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / sample_rate as f32;
            (8_000.0 * (2.0 * std::f32::consts::PI * 1_000.0 * t).sin()) as i16
        })
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A per-number seed: the same base seed gives each number its own, repeatable, call.
pub fn seed_for(base: u64, number: &str) -> u64 {
    base ^ fnv1a(number.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn speech_bytes(text: &str) -> Vec<u8> {
        speech::to_bytes(&speech::synthesize(text, 8000))
    }

    #[test]
    fn url_user_info_becomes_basic_auth_and_query_gives_three_parameters() {
        let e = parse_endpoint("wss://key:t%40ken@bot.example.com:8443/media?a=1&b=x%20y&c=3&d=4")
            .unwrap();
        assert_eq!(
            e.url,
            "wss://bot.example.com:8443/media?a=1&b=x%20y&c=3&d=4"
        );
        assert_eq!(
            e.authorization.as_deref(),
            Some(format!("Basic {}", B64.encode("key:t@ken")).as_str())
        );
        let keys: Vec<_> = e
            .custom_parameters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(keys, [("a", "1"), ("b", "x y"), ("c", "3")]);
        assert_eq!(e.sample_rate, 8000);

        let plain = parse_endpoint("ws://127.0.0.1:9/media?sample-rate=16000&call_id=7").unwrap();
        assert_eq!(plain.authorization, None);
        assert_eq!(plain.sample_rate, 16000);
        assert_eq!(
            plain.custom_parameters,
            [("call_id".to_string(), "7".to_string())]
        );
        assert!(parse_endpoint("http://host/media").is_err());
        assert!(parse_endpoint("ws:///media").is_err());
    }

    #[test]
    fn personas_parse_from_csv_names() {
        for p in Persona::ALL {
            assert_eq!(p.as_str().parse::<Persona>(), Ok(p));
        }
        assert_eq!("Not Interested".parse(), Ok(Persona::NotInterested));
        assert_eq!("do-not-call".parse(), Ok(Persona::DoNotCall));
        assert!("grumpy".parse::<Persona>().is_err());
        assert_eq!("hi".parse(), Ok(Language::Hi));
        assert_eq!(Persona::Busy.outcome(), CalleeOutcome::Busy);
        assert_eq!(Persona::NoAnswer.outcome(), CalleeOutcome::NoAnswer);
        assert_eq!(Persona::Voicemail.answered_by(), "Machine");
    }

    #[test]
    fn a_mark_falls_due_when_the_audio_before_it_has_played() {
        let t = Instant::now();
        let mut ear = Ear::new(Clock::new(8000), t);
        ear.enqueue(t, vec![0; 3200], false); // 200 ms
        ear.mark(t, "m1".into());
        assert!(ear.due_marks.is_empty());
        assert_eq!(ear.next_mark_due(), Some(t + MS(200)));
        ear.advance(t + MS(199));
        assert!(ear.due_marks.is_empty());
        ear.advance(t + MS(200));
        assert_eq!(ear.due_marks, ["m1"]);
        // Nothing queued: a mark is due at once.
        ear.due_marks.clear();
        ear.mark(t + MS(300), "m2".into());
        assert_eq!(ear.due_marks, ["m2"]);
    }

    #[test]
    fn clear_drops_the_unplayed_characters_and_pending_marks() {
        let t = Instant::now();
        let mut ear = Ear::new(Clock::new(8000), t);
        ear.enqueue(t, speech_bytes("abcdefghij"), true);
        ear.mark(t, "end".into());
        // 3.5 symbols played.
        let (useless, cancelled) = ear.clear(t + MS(210));
        assert!(!useless);
        assert_eq!(cancelled, 1);
        assert_eq!(ear.heard, ["abcd"]);
        assert!(ear.due_marks.is_empty());
        assert!(!ear.agent_playing(t + MS(300)));
        let (useless, cancelled) = ear.clear(t + MS(400));
        assert!(useless);
        assert_eq!(cancelled, 0);
    }

    #[test]
    fn heard_speech_is_split_at_300_ms_of_silence() {
        let t = Instant::now();
        let mut ear = Ear::new(Clock::new(8000), t);
        let mut audio = speech_bytes("Hi.");
        audio.extend(vec![0; 16 * 200]);
        audio.extend(speech_bytes("Ok."));
        audio.extend(vec![0; 16 * 350]);
        audio.extend(speech_bytes("Bye."));
        ear.enqueue(t, audio, true);
        ear.advance(t + MS(5_000));
        assert_eq!(ear.heard, ["Hi.Ok.", "Bye."]);
        assert_eq!(ear.take_fresh(), "Hi.Ok. Bye.");
    }

    #[test]
    fn a_frame_after_the_queue_ran_dry_mid_phrase_is_late() {
        let t = Instant::now();
        let mut ear = Ear::new(Clock::new(8000), t);
        assert_eq!(ear.enqueue(t, vec![1; 1600], false), None);
        // On time: the previous frame is still playing.
        assert_eq!(ear.enqueue(t + MS(90), vec![1; 1600], false), None);
        // 200 ms of audio ended at t+200; 50 ms of silence.
        assert_eq!(ear.enqueue(t + MS(250), vec![1; 1600], false), Some(MS(50)));
        // After a mark, a new phrase may start whenever it likes.
        ear.mark(t + MS(250), "p1".into());
        assert_eq!(ear.enqueue(t + MS(900), vec![1; 1600], false), None);
    }
}
