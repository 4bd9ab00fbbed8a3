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
//! The files, in reading order: `persona` (who answers, in which language, with which lines),
//! `config` (the call's settings, what Exotel knows at `start`, why a stream never starts),
//! `report` (what the call came to), `endpoint` (the `/media` URL), `ear` (the bot's audio
//! played out and heard), `mouth` (the person's audio, one frame per tick), `person`
//! (turn-taking: when to talk and what to say), `call` (the stream's loop and its end) with
//! `inbound` (what the bot sends, checked), and the small helpers `audio` and `rng`.
//!
//! [`speech::synthesize`]: super::speech::synthesize
//! [`SpeechDecoder`]: super::speech::SpeechDecoder

mod audio;
mod call;
mod config;
mod ear;
mod endpoint;
mod inbound;
mod mouth;
mod person;
mod persona;
mod report;
mod rng;

pub use call::run_call;
pub use config::{CalleeConfig, CalleeError, MarkEcho, StartInfo};
pub use persona::{CalleeOutcome, Language, Persona, UnknownLanguage, UnknownPersona};
pub use report::{CallReport, EndedBy, LineKind, MediaStats, SaidLine, Violations};
pub use rng::seed_for;
