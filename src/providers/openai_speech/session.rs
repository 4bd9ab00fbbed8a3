//! One call's OpenAI-compatible TTS: a turn's phrases become one HTTP request each, in order;
//! their audio is resampled to the call's rate as it streams.
//!
//! No task of its own: the requests are driven from [`SpeechSession::poll_event`], which the
//! call polls on every pass of its loop (and so after every command it gives), so a session
//! costs a few fields while idle. Every wait is bounded: a request by `request_timeout` and the
//! headers by `connect_timeout`, a body that stops for `stall_timeout` fails the turn.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio::time::{Instant, Sleep};

use super::{Resampler, SpeechConfig};
use crate::metrics::ProviderMetrics;
use crate::voice::tts::{self, TtsError, TtsEvent, TurnId};
use crate::voice::{ErrorKind, Provider};

/// The longest `input` the endpoint takes; a longer phrase is cut at a word.
const MAX_INPUT_CHARS: usize = 4_096;

pub struct SpeechSession {
    config: Arc<SpeechConfig>,
    voice: String,
    http: reqwest::Client,
    metrics: ProviderMetrics,
    resampler: Resampler,
    turn: Option<Turn>,
    /// Events ready to hand out, in order.
    ready: VecDeque<TtsEvent>,
    /// Resampled bytes (a buffer reused for every chunk).
    out: Vec<u8>,
}

impl std::fmt::Debug for SpeechSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechSession")
            .field("turn", &self.turn.as_ref().map(|t| t.id))
            .finish()
    }
}

struct Turn {
    id: TurnId,
    /// Phrases not yet requested, with their character counts.
    queue: VecDeque<(String, usize)>,
    /// Characters of the phrases whose audio is all delivered.
    spoken: usize,
    /// The turn's text is complete.
    ended: bool,
    current: Option<Phrase>,
    first_text_at: Option<Instant>,
    first_audio: Option<Duration>,
}

/// The phrase being spoken.
struct Phrase {
    chars: usize,
    stage: Stage,
}

enum Stage {
    Requesting(BoxFuture<'static, Result<reqwest::Response, Failure>>),
    Streaming {
        body: BoxStream<'static, reqwest::Result<Bytes>>,
        stall: Pin<Box<Sleep>>,
    },
}

struct Failure {
    kind: ErrorKind,
    message: String,
}

impl SpeechSession {
    pub fn new(
        config: Arc<SpeechConfig>,
        voice: Option<String>,
        http: reqwest::Client,
        metrics: ProviderMetrics,
        resampler: Resampler,
    ) -> Self {
        Self {
            voice: voice.unwrap_or_else(|| config.voice.clone()),
            config,
            http,
            metrics,
            resampler,
            turn: None,
            ready: VecDeque::new(),
            out: Vec::new(),
        }
    }

    fn request(&self, input: &str) -> BoxFuture<'static, Result<reqwest::Response, Failure>> {
        let body = json!({
            "model": self.config.model,
            "input": input,
            "voice": self.voice,
            "response_format": "pcm",
            "speed": 1.0,
        });
        let mut request = self
            .http
            .post(self.config.endpoint())
            .json(&body)
            .timeout(self.config.request_timeout);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose());
        }
        let connect = self.config.connect_timeout;
        async move {
            let response = match tokio::time::timeout(connect, request.send()).await {
                Err(_) => return Err(failure(ErrorKind::Timeout, "no answer in time".into())),
                Ok(Err(e)) => {
                    let kind = if e.is_timeout() {
                        ErrorKind::Timeout
                    } else {
                        ErrorKind::Connect
                    };
                    return Err(failure(kind, e.to_string()));
                }
                Ok(Ok(r)) => r,
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| text.chars().take(300).collect());
            Err(failure(
                ErrorKind::from_status(status.as_u16()),
                format!("HTTP {status}: {message}"),
            ))
        }
        .boxed()
    }

    /// The turn failed: counted, reported, and forgotten.
    fn fail(&mut self, f: Failure) {
        self.metrics.error(Provider::OpenAiSpeech, f.kind);
        tracing::warn!(message = %f.message, "OpenAI-compatible TTS failed a turn");
        let turn = self.turn.take().map(|t| t.id);
        self.resampler.reset();
        self.ready.push_back(TtsEvent::Error {
            turn,
            message: f.message,
        });
    }

    /// Moves the turn on as far as it can without waiting; `Pending` when it must wait.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !self.ready.is_empty() {
                return Poll::Ready(());
            }
            let Some(turn) = self.turn.as_mut() else {
                return Poll::Pending;
            };
            let Some(phrase) = turn.current.as_mut() else {
                if let Some((text, chars)) = turn.queue.pop_front() {
                    let stage = Stage::Requesting(self.request(&text));
                    if let Some(turn) = self.turn.as_mut() {
                        turn.current = Some(Phrase { chars, stage });
                    }
                    continue;
                }
                if turn.ended {
                    let turn = self.turn.take().expect("checked");
                    self.ready.push_back(TtsEvent::TurnDone {
                        turn: turn.id,
                        first_audio: turn.first_audio,
                    });
                    continue;
                }
                return Poll::Pending;
            };
            let stall = self.config.stall_timeout;
            match &mut phrase.stage {
                Stage::Requesting(response) => match response.poll_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(f)) => self.fail(f),
                    Poll::Ready(Ok(response)) => {
                        phrase.stage = Stage::Streaming {
                            body: response.bytes_stream().boxed(),
                            stall: Box::pin(tokio::time::sleep(stall)),
                        };
                    }
                },
                Stage::Streaming { body, stall: timer } => match body.poll_next_unpin(cx) {
                    Poll::Pending => {
                        if timer.as_mut().poll(cx).is_ready() {
                            self.fail(failure(ErrorKind::Stalled, "the audio stopped".into()));
                            continue;
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(Ok(chunk))) => {
                        timer.as_mut().reset(Instant::now() + stall);
                        self.out.clear();
                        self.resampler.push(&chunk, &mut self.out);
                        self.emit_audio();
                    }
                    Poll::Ready(Some(Err(e))) => self.fail(failure(
                        ErrorKind::Stream,
                        format!("the audio broke off: {e}"),
                    )),
                    Poll::Ready(None) => {
                        self.out.clear();
                        self.resampler.finish(&mut self.out);
                        self.emit_audio();
                        if let Some(turn) = self.turn.as_mut() {
                            let chars = turn.current.take().map_or(0, |p| p.chars);
                            turn.spoken += chars;
                            self.ready.push_back(TtsEvent::Spoken {
                                turn: turn.id,
                                chars: turn.spoken,
                            });
                        }
                    }
                },
            }
        }
    }

    fn emit_audio(&mut self) {
        let Some(turn) = self.turn.as_mut() else {
            return;
        };
        if self.out.is_empty() {
            return;
        }
        if turn.first_audio.is_none() {
            turn.first_audio = turn.first_text_at.map(|t| t.elapsed());
        }
        self.ready.push_back(TtsEvent::Audio {
            turn: turn.id,
            pcm: Bytes::copy_from_slice(&self.out),
            alignment: None,
        });
    }
}

fn failure(kind: ErrorKind, message: String) -> Failure {
    Failure { kind, message }
}

/// At most `MAX_INPUT_CHARS` characters, cut at the last space before them.
fn bounded(text: &str) -> &str {
    match text.char_indices().nth(MAX_INPUT_CHARS) {
        None => text,
        Some((cut, _)) => {
            let head = &text[..cut];
            head.rfind(char::is_whitespace).map_or(head, |i| &head[..i])
        }
    }
}

impl tts::TtsSession for SpeechSession {
    fn provider(&self) -> Provider {
        Provider::OpenAiSpeech
    }

    fn start_turn(&mut self, turn: TurnId) -> Result<(), TtsError> {
        self.cancel_turn()?;
        self.turn = Some(Turn {
            id: turn,
            queue: VecDeque::new(),
            spoken: 0,
            ended: false,
            current: None,
            first_text_at: None,
            first_audio: None,
        });
        Ok(())
    }

    fn send_text(&mut self, text: &str) -> Result<(), TtsError> {
        let turn = self
            .turn
            .as_mut()
            .filter(|t| !t.ended)
            .ok_or(TtsError::NoTurn)?;
        if text.trim().is_empty() {
            return Ok(());
        }
        turn.first_text_at.get_or_insert_with(Instant::now);
        // The characters count as sent, so the call's marks line up even if one is cut.
        let chars = text.chars().count();
        turn.queue
            .push_back((bounded(text.trim()).to_string(), chars));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TtsError> {
        // Every phrase is spoken as soon as it comes.
        self.turn
            .as_ref()
            .filter(|t| !t.ended)
            .map(|_| ())
            .ok_or(TtsError::NoTurn)
    }

    fn end_turn(&mut self) -> Result<(), TtsError> {
        let turn = self
            .turn
            .as_mut()
            .filter(|t| !t.ended)
            .ok_or(TtsError::NoTurn)?;
        turn.ended = true;
        Ok(())
    }

    fn cancel_turn(&mut self) -> Result<(), TtsError> {
        // Dropping the request in flight aborts it.
        if let Some(turn) = self.turn.take() {
            self.ready.retain(|e| match e {
                TtsEvent::Audio { turn: of, .. }
                | TtsEvent::Spoken { turn: of, .. }
                | TtsEvent::TurnDone { turn: of, .. } => *of != turn.id,
                _ => true,
            });
            self.resampler.reset();
        }
        Ok(())
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<TtsEvent>> {
        match self.drive(cx) {
            Poll::Ready(()) => Poll::Ready(self.ready.pop_front()),
            Poll::Pending => Poll::Pending,
        }
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        // Nothing to close: dropping the session drops any request in flight.
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_phrase_is_cut_at_a_word() {
        let long = "word ".repeat(1_000);
        let cut = bounded(&long);
        assert!(cut.chars().count() <= MAX_INPUT_CHARS);
        assert!(cut.ends_with("word"));
        assert_eq!(bounded("short"), "short");
    }
}
