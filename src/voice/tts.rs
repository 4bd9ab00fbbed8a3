//! The text-to-speech port: what a live call needs of a TTS vendor, in the call's own terms.
//!
//! A session belongs to one call. Each agent turn is spoken as one turn named by the call's own
//! [`TurnId`]: text arrives phrase by phrase (every chunk ends in whitespace, so phrases are never
//! glued), [`TtsSession::flush`] speaks what is buffered without ending the turn (a filler),
//! [`TtsSession::end_turn`] says the turn's text is complete, and [`TtsSession::cancel_turn`]
//! cuts it (barge-in: no audio of it may be delivered afterwards). The vendor delivers:
//! - the turn's audio in the call's [`AudioFormat`], whole samples, as [`TtsEvent::Audio`], with
//!   the characters each chunk speaks when it knows them ([`Alignment`]);
//! - how far its audio has covered the text ([`TtsEvent::Spoken`]) when it has no alignment, so
//!   the call can place a mark after each phrase;
//! - the end of the turn ([`TtsEvent::TurnDone`]). A vendor may never say it: the call bounds its
//!   wait and goes on.
//!
//! How a vendor recovers from its own failures (ElevenLabs finishes over HTTP a turn whose
//! socket dropped) is its own business; [`TtsEvent::Error`] means the turn will produce no more
//! audio. Every method returns at once: a vendor's stuck socket never blocks the call task.

use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use thiserror::Error;

use super::kinds::{ErrorKind, Provider};

/// The call's name for one agent turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TurnId(pub u64);

impl std::fmt::Display for TurnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "turn-{}", self.0)
    }
}

/// The audio the call sends the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// 16-bit little-endian mono PCM (Exotel: 8 or 16 kHz).
    Pcm16 { sample_rate: u32 },
}

impl AudioFormat {
    pub fn sample_rate(self) -> u32 {
        match self {
            AudioFormat::Pcm16 { sample_rate } => sample_rate,
        }
    }
}

/// Which characters of the turn's text an audio chunk speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alignment {
    /// How many characters of the turn's text the chunk covers (the next ones after the last
    /// chunk's).
    pub chars: usize,
    /// When each of them has been spoken, in ms from the chunk's first sample.
    pub ends_ms: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TtsEvent {
    /// Audio of `turn`, in the session's format.
    Audio {
        turn: TurnId,
        pcm: Bytes,
        alignment: Option<Alignment>,
    },
    /// All audio of the turn's first `chars` characters has been delivered.
    Spoken { turn: TurnId, chars: usize },
    /// The vendor says the turn is over: no more audio comes for it. `first_audio`: from its
    /// first text to its first audio, as the vendor measured it.
    TurnDone {
        turn: TurnId,
        first_audio: Option<Duration>,
    },
    /// The turn (if any) will produce no more audio. Already counted by the vendor.
    Error {
        turn: Option<TurnId>,
        message: String,
    },
    /// The session is over.
    Closed,
}

/// How the call wants its agent to sound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsOptions {
    /// The campaign's voice, else the vendor's configured one.
    pub voice: Option<String>,
    /// The campaign's BCP-47 tag (`en-IN`, `hi-IN`).
    pub language: String,
    pub format: AudioFormat,
}

#[derive(Debug, Error)]
pub enum TtsError {
    #[error("text-to-speech is not configured: {0} is missing")]
    NotConfigured(&'static str),
    /// The vendor refused or could not be reached; `kind` says how, for the metrics.
    #[error("{provider:?} text-to-speech failed: {message}")]
    Failed {
        provider: Provider,
        kind: ErrorKind,
        message: String,
    },
    #[error("the TTS session is closed")]
    SessionClosed,
    /// The session is not keeping up with commands (its socket is stuck).
    #[error("the TTS session is not keeping up")]
    SessionBusy,
    #[error("no turn is started")]
    NoTurn,
}

/// One call's TTS.
pub trait TtsSession: Send {
    /// The vendor, for the metrics' labels.
    fn provider(&self) -> Provider;
    /// Starts a turn; an unfinished previous one is cancelled.
    fn start_turn(&mut self, turn: TurnId) -> Result<(), TtsError>;
    /// A phrase of the current turn (a space is added if it does not end in whitespace).
    fn send_text(&mut self, text: &str) -> Result<(), TtsError>;
    /// Speaks what the turn has buffered now and keeps it open for more text.
    fn flush(&mut self) -> Result<(), TtsError>;
    /// The turn's text is complete: its audio keeps coming, then (perhaps) `TurnDone`.
    fn end_turn(&mut self) -> Result<(), TtsError>;
    /// Cuts the current turn: nothing more of it is delivered.
    fn cancel_turn(&mut self) -> Result<(), TtsError>;
    /// The next event; `None` once the session is over.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<TtsEvent>>;
    /// Ends the session, within a bound of the vendor's choosing (a second or two).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A TTS vendor, chosen by configuration (`TTS_PROVIDER`) or per campaign.
#[async_trait]
pub trait TtsVendor: Send + Sync + std::fmt::Debug {
    fn provider(&self) -> Provider;
    /// Opens a call's session (while the phone rings: the handshake is off the critical path).
    async fn open(&self, options: &TtsOptions) -> Result<Box<dyn TtsSession>, TtsError>;
}

/// The next event of a session, as a future that borrows it (no allocation per poll).
pub fn next_event(session: &mut dyn TtsSession) -> impl Future<Output = Option<TtsEvent>> + '_ {
    std::future::poll_fn(move |cx| session.poll_event(cx))
}
