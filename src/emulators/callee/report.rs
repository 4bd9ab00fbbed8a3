//! What a call came to: how it ended, what the person heard and said, the media counters, the
//! bot's protocol breaches and the latencies measured on the way ([`CallReport`]).

use std::time::Duration;

use super::persona::{Language, Persona};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// The bot closed the WebSocket (how a bot hangs up on Exotel), or the connection dropped.
    Bot,
    /// The person hung up (`stop` with reason `callended`).
    Callee,
    /// The person had nothing left to say and hung up after waiting
    /// [`CalleeConfig::patience`](super::CalleeConfig::patience) for the bot to do it (`stop` with reason `callended`): a bot
    /// that should have hung up did not.
    Impatient,
    /// [`CalleeConfig::max_duration`](super::CalleeConfig::max_duration) elapsed (`stop` with reason `stopped`).
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
    /// Played marks never echoed ([`MarkEcho::Never`](super::MarkEcho::Never)).
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
    /// Per answer (with [`CalleeConfig::endpointing`](super::CalleeConfig::endpointing) set): from sending the frame whose audio
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
