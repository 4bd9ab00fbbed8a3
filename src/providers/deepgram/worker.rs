//! The task that owns a session's socket. It writes queued frames, sends `KeepAlive` when no
//! audio flowed for a while, and survives drops: on an error or a close it did not ask for, it
//! reconnects with backoff, re-sends the audio Deepgram had not finalised ([`ReplayBuffer`]) and
//! shifts the new connection's times by where that replay starts, so events stay on one call
//! timeline and no word is lost or repeated. Every network await has a timeout; nothing is
//! locked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

use super::events::{Metadata, SttEvent, parse_event};
use super::replay::ReplayBuffer;
use super::tuning::SessionTuning;
use super::{Dialer, ListenOptions, Ws};

/// What the session's handle asks of the worker, in order.
pub(super) enum Command {
    Audio(Bytes),
    Finalize,
    Close(oneshot::Sender<Option<Metadata>>),
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub reconnects: AtomicU32,
    pub dropped_frames: AtomicU64,
}

/// Why one connection stopped serving.
enum Outcome {
    /// We closed it (or the call let go of the session): the session is over.
    Finished,
    /// The server refused our audio; reconnecting would replay the same audio.
    Fatal { code: Option<u16>, reason: String },
    /// Dropped, timed out or closed unasked: reconnect.
    Lost(String),
}

/// A `close` in progress.
struct Closing {
    reply: oneshot::Sender<Option<Metadata>>,
    deadline: Instant,
    metadata: Option<Metadata>,
}

pub(super) struct Worker {
    dialer: Dialer,
    tuning: SessionTuning,
    commands: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<SttEvent>,
    counters: Arc<Counters>,
    replay: ReplayBuffer,
    /// Largest replay message (250 ms, the top of Deepgram's recommended frame size).
    max_chunk: usize,
    /// Call time of the current connection's audio time 0.
    origin: f64,
    /// Last audio or KeepAlive written.
    last_sent: Instant,
    /// Audio has been written since this instant without any message back.
    unanswered_since: Option<Instant>,
    /// A `Finalize` asked for while disconnected, sent after the replay.
    finalize_owed: bool,
    seen: Seen,
}

/// What has been reported already, to recognise events a replay repeats.
#[derive(Debug)]
struct Seen {
    /// Call time of the last `SpeechStarted` passed on.
    onset: f64,
    utterance_end: f64,
    /// The last final ended inside speech (a piece of a long utterance, or a `Finalize`).
    final_ended_mid_speech: bool,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            onset: f64::NEG_INFINITY,
            utterance_end: f64::NEG_INFINITY,
            final_ended_mid_speech: false,
        }
    }
}

impl Worker {
    pub fn new(
        dialer: Dialer,
        options: &ListenOptions,
        tuning: SessionTuning,
        commands: mpsc::Receiver<Command>,
        events: mpsc::UnboundedSender<SttEvent>,
        counters: Arc<Counters>,
    ) -> Self {
        let frame = 2 * options.channels.max(1) as u64;
        Self {
            replay: ReplayBuffer::new(
                options.bytes_per_second(),
                frame,
                tuning.replay_limit,
                options.encoding == "linear16",
            ),
            max_chunk: (options.bytes_per_second() / 4) as usize,
            dialer,
            commands,
            events,
            counters,
            origin: 0.0,
            last_sent: Instant::now(),
            unanswered_since: None,
            finalize_owed: false,
            seen: Seen::default(),
            tuning,
        }
    }

    pub async fn run(mut self, mut ws: Ws) {
        loop {
            match self.serve(&mut ws).await {
                Outcome::Finished => return,
                Outcome::Fatal { code, reason } => {
                    tracing::error!(?code, %reason, "Deepgram refused the stream");
                    self.emit(SttEvent::Closed { code, reason });
                    return;
                }
                Outcome::Lost(why) => {
                    tracing::warn!(%why, "Deepgram connection lost; reconnecting");
                    // Boxed: a reconnect is rare, its future need not live in every call's memory.
                    match Box::pin(self.reconnect(why)).await {
                        Ok(new) => ws = new,
                        Err(closed) => {
                            self.emit(closed);
                            return;
                        }
                    }
                }
            }
        }
    }

    async fn serve(&mut self, ws: &mut Ws) -> Outcome {
        let period = (self.tuning.keepalive_every / 4)
            .clamp(Duration::from_millis(20), Duration::from_millis(500));
        let mut tick = interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut closing: Option<Closing> = None;
        loop {
            tokio::select! {
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str(), closing.as_mut()),
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame
                            .map(|f| (u16::from(f.code), f.reason.to_string()))
                            .unwrap_or((1005, String::new()));
                        let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                        if let Some(closing) = closing.take() {
                            self.finish(closing, Some(code), reason);
                            return Outcome::Finished;
                        }
                        return match code {
                            1008 => Outcome::Fatal { code: Some(code), reason },
                            _ => Outcome::Lost(format!("closed by Deepgram: {code} {reason}")),
                        };
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return self.broken(closing.take(), e.to_string()),
                    None => return self.broken(closing.take(), "connection ended".into()),
                },
                command = self.commands.recv(), if closing.is_none() => match command {
                    Some(Command::Audio(frame)) => {
                        self.replay.push(&frame);
                        if let Err(why) = self.write(ws, Message::Binary(frame)).await {
                            return Outcome::Lost(why);
                        }
                        self.unanswered_since.get_or_insert_with(Instant::now);
                    }
                    Some(Command::Finalize) => {
                        if let Err(why) = self.write(ws, control("Finalize")).await {
                            self.finalize_owed = true;
                            return Outcome::Lost(why);
                        }
                    }
                    Some(Command::Close(reply)) => {
                        let deadline = Instant::now() + self.tuning.close_timeout;
                        let pending = Closing { reply, deadline, metadata: None };
                        if let Err(why) = self.write(ws, control("CloseStream")).await {
                            self.finish(pending, None, why);
                            return Outcome::Finished;
                        }
                        closing = Some(pending);
                    }
                    None => {
                        // The call let go of the session without closing it.
                        let _ = self.write(ws, control("CloseStream")).await;
                        let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                        return Outcome::Finished;
                    }
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if let Some(pending) = closing.take_if(|c| now >= c.deadline) {
                        self.finish(pending, None, "close timed out".into());
                        return Outcome::Finished;
                    }
                    if closing.is_some() {
                        continue;
                    }
                    if now - self.last_sent >= self.tuning.keepalive_every
                        && let Err(why) = self.write(ws, control("KeepAlive")).await
                    {
                        return Outcome::Lost(why);
                    }
                    if self.unanswered_since.is_some_and(|t| now - t >= self.tuning.stall_timeout) {
                        return Outcome::Lost("no message from Deepgram while sending audio".into());
                    }
                }
            }
        }
    }

    fn on_text(&mut self, text: &str, closing: Option<&mut Closing>) {
        self.unanswered_since = None;
        let event = match parse_event(text) {
            Ok(Some(event)) => event.shifted(self.origin),
            Ok(None) => {
                tracing::debug!("ignoring a Deepgram message of an unknown type");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "unparseable Deepgram message");
                return;
            }
        };
        if self.is_replayed(&event) {
            tracing::debug!(?event, "dropping an event repeated by the replay");
            return;
        }
        match &event {
            SttEvent::Transcript(t) if t.is_final => {
                let margin = self.tuning.replay_margin.as_secs_f64();
                self.replay.trim_until(t.end() - margin);
                self.seen.final_ended_mid_speech = !t.speech_final && !t.text.is_empty();
            }
            SttEvent::SpeechStarted { timestamp } => self.seen.onset = *timestamp,
            SttEvent::UtteranceEnd { last_word_end } => self.seen.utterance_end = *last_word_end,
            SttEvent::Metadata(m) => {
                if let Some(closing) = closing {
                    closing.metadata = Some(m.clone());
                }
            }
            SttEvent::Error { description } => {
                tracing::warn!(%description, "Deepgram reported an error");
            }
            _ => {}
        }
        self.emit(event);
    }

    /// A replay makes the new connection hear some audio again. Results are safe (only
    /// unfinalised audio is replayed) but voice-activity events can repeat: an onset or an
    /// utterance end at or before one already reported, or an "onset" at the replay start when
    /// the replay began in the middle of speech. Passing those on would look like a new barge-in.
    fn is_replayed(&self, event: &SttEvent) -> bool {
        const EPSILON: f64 = 0.001;
        match *event {
            SttEvent::SpeechStarted { timestamp } => {
                let replay_start = self.origin + 2.0 * self.tuning.replay_margin.as_secs_f64();
                timestamp <= self.seen.onset + EPSILON
                    || (self.seen.final_ended_mid_speech && timestamp <= replay_start + EPSILON)
            }
            SttEvent::UtteranceEnd { last_word_end } => {
                last_word_end <= self.seen.utterance_end + EPSILON
            }
            _ => false,
        }
    }

    /// The socket failed: the end of a close in progress, otherwise a drop to recover from.
    fn broken(&mut self, closing: Option<Closing>, why: String) -> Outcome {
        match closing {
            Some(closing) => {
                self.finish(closing, None, why);
                Outcome::Finished
            }
            None => Outcome::Lost(why),
        }
    }

    fn finish(&mut self, closing: Closing, code: Option<u16>, reason: String) {
        let _ = closing.reply.send(closing.metadata);
        self.emit(SttEvent::Closed { code, reason });
    }

    /// Opens a new connection and replays unfinalised audio; audio and commands that arrive
    /// meanwhile are buffered, not refused.
    async fn reconnect(&mut self, why: String) -> Result<Ws, SttEvent> {
        let mut last_error = why;
        let attempts = self.tuning.max_reconnect_attempts.max(1);
        for attempt in 1..=attempts {
            let dialer = self.dialer.clone();
            let delay = self.tuning.backoff(attempt);
            let dial = async move {
                sleep(delay).await;
                dialer.dial().await
            };
            tokio::pin!(dial);
            let result = loop {
                tokio::select! {
                    result = &mut dial => break result,
                    command = self.commands.recv() => match command {
                        Some(Command::Audio(frame)) => self.replay.push(&frame),
                        Some(Command::Finalize) => self.finalize_owed = true,
                        Some(Command::Close(reply)) => {
                            let _ = reply.send(None);
                            return Err(closed("closed while reconnecting"));
                        }
                        None => return Err(closed("session dropped while reconnecting")),
                    },
                }
            };
            match result {
                Ok(mut ws) => match self.replay_into(&mut ws).await {
                    Ok(replayed) => {
                        self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(attempt, ?replayed, "Deepgram reconnected");
                        self.emit(SttEvent::Reconnected {
                            attempts: attempt,
                            replayed,
                        });
                        return Ok(ws);
                    }
                    Err(why) => last_error = why,
                },
                Err(e) if e.is_permanent() => return Err(closed(&e.to_string())),
                Err(e) => last_error = e.to_string(),
            }
            tracing::warn!(attempt, error = %last_error, "Deepgram reconnect failed");
        }
        Err(closed(&format!(
            "gave up reconnecting after {attempts} attempts: {last_error}"
        )))
    }

    async fn replay_into(&mut self, ws: &mut Ws) -> Result<Duration, String> {
        self.origin = self.replay.start_secs();
        let replayed = self.replay.duration();
        for chunk in self.replay.chunks(self.max_chunk) {
            self.write(ws, Message::Binary(chunk)).await?;
        }
        if std::mem::take(&mut self.finalize_owed) {
            self.write(ws, control("Finalize")).await?;
        }
        self.unanswered_since = (!replayed.is_zero()).then(Instant::now);
        Ok(replayed)
    }

    async fn write(&mut self, ws: &mut Ws, message: Message) -> Result<(), String> {
        self.last_sent = Instant::now();
        match timeout(self.tuning.write_timeout, ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(format!(
                "write timed out after {:?}",
                self.tuning.write_timeout
            )),
        }
    }

    fn emit(&self, event: SttEvent) {
        // The call may have stopped listening; that is not the session's problem.
        let _ = self.events.send(event);
    }
}

fn control(kind: &str) -> Message {
    Message::text(format!(r#"{{"type":"{kind}"}}"#))
}

fn closed(reason: &str) -> SttEvent {
    SttEvent::Closed {
        code: None,
        reason: reason.to_string(),
    }
}
