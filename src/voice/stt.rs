//! The speech-to-text port: what a live call needs of an STT vendor, in the call's own terms.
//!
//! A session belongs to one call: caller audio goes in as it arrives ([`SttSession::send_audio`]
//! never waits), words come out as [`SttEvent`]s. Interim words may still change; final words
//! are fixed and say whether the vendor's endpointing saw the utterance end. A vendor that has a
//! second, later end-of-turn signal (Deepgram's `UtteranceEnd`) sends [`SttEvent::EndOfTurn`].
//! [`SttSession::finalize`] asks for whatever the vendor holds now; its answer is a final with
//! `finalized` set. A vendor may send none of the end-of-turn signals: the call bounds its wait.
//! Keeping the stream alive through dropped sockets is the vendor's business; it says so with
//! [`SttEvent::Reconnected`].

use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use thiserror::Error;

use super::kinds::{ErrorKind, Provider};

#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// The words of the utterance so far beyond the finals (they may still change).
    Interim { text: String },
    /// Fixed words. `end_of_turn`: the vendor's endpointing says the utterance is over;
    /// `finalized`: the answer to [`SttSession::finalize`].
    Final {
        text: String,
        end_of_turn: bool,
        finalized: bool,
    },
    /// The vendor saw the utterance end without a final that said so.
    EndOfTurn,
    /// Speech began after silence: the fast barge-in signal.
    SpeechStarted,
    /// The vendor's connection dropped and was re-opened; `replayed` audio was sent again.
    Reconnected { attempts: u32, replayed: Duration },
    /// The vendor could not use something we sent; the session goes on.
    Error { description: String },
    /// The session is over (it ends on its own only when the vendor is gone for good).
    Closed { reason: String },
}

/// What the call listens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttOptions {
    /// The campaign's BCP-47 tag (`en-IN`, `hi-IN`); the vendor picks its model for it.
    pub language: String,
    /// Of the carrier's 16-bit PCM.
    pub sample_rate: u32,
    /// Silence (ms) after which the caller's turn is over.
    pub endpointing_ms: u32,
}

#[derive(Debug, Error)]
pub enum SttError {
    #[error("speech-to-text is not configured: {0} is missing")]
    NotConfigured(&'static str),
    /// The vendor refused or could not be reached; `kind` says how, for the metrics.
    #[error("{provider:?} speech-to-text failed: {message}")]
    Failed {
        provider: Provider,
        kind: ErrorKind,
        message: String,
    },
    /// Audio is arriving faster than the session can send it on.
    #[error("the STT session is not keeping up")]
    QueueFull,
    #[error("the STT session has ended")]
    SessionEnded,
}

/// One call's STT.
pub trait SttSession: Send {
    /// The vendor, for the metrics' labels.
    fn provider(&self) -> Provider;
    /// Queues caller audio; never waits.
    fn send_audio(&mut self, pcm: Bytes) -> Result<(), SttError>;
    /// Asks for whatever the vendor holds now, as a final.
    fn finalize(&mut self) -> Result<(), SttError>;
    /// The next event; `None` once the session is over.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<SttEvent>>;
    /// Ends the session, within a bound of the vendor's choosing (a second or two).
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// An STT vendor, chosen by configuration (`STT_PROVIDER`).
#[async_trait]
pub trait SttVendor: Send + Sync + std::fmt::Debug {
    fn provider(&self) -> Provider;
    /// Opens a call's session (while the phone rings).
    async fn open(&self, options: &SttOptions) -> Result<Box<dyn SttSession>, SttError>;
}

/// The next event of a session, as a future that borrows it (no allocation per poll).
pub fn next_event(session: &mut dyn SttSession) -> impl Future<Output = Option<SttEvent>> + '_ {
    std::future::poll_fn(move |cx| session.poll_event(cx))
}
