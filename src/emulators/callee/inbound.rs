//! What the bot sends on the stream, checked against Exotel's protocol (breaches are counted in
//! [`Violations`](super::report::Violations), not fatal): `media` goes into the ear, `mark`s are
//! queued behind their audio and echoed when it has played, `clear` empties the queue.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::audio::voiced_bytes;
use super::call::{ALIGNMENT, Call};
use super::config::MarkEcho;
use super::report::EndedBy;

/// Exotel's largest accepted media payload.
const MAX_PAYLOAD: usize = 100_000;
/// Exotel's smallest recommended media payload.
const GUIDANCE_PAYLOAD: usize = 3_200;

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

impl Call {
    pub(super) fn on_message(
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

    pub(super) async fn echo_marks(&mut self) -> Result<(), EndedBy> {
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
}
