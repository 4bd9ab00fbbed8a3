//! A call's TTS over the `multi-stream-input` WebSocket: one socket, one context per agent turn,
//! implementing the [`voice::tts`](crate::voice::tts) port.
//!
//! A turn's context lifecycle, as ElevenLabs' AsyncAPI document gives it:
//! - `{"text":" ","context_id"}` opens the context, text chunks follow (each ending in a space);
//! - `flush` generates what is buffered and "the context will remain open"
//!   (`FlushContextClient`), so a flush alone never ends a turn;
//! - `close_context`: "the context will close. If it has already been set to flush it will
//!   continue flushing" (`CloseContextClient`);
//! - `{"isFinal": true, "contextId"}` is "the final message for the context"
//!   (`FinalOutputMulti`): it comes once the context has ended.
//!
//! So the end of a turn is `flush` and at once `close_context`; the flushed audio still arrives
//! and the context's `isFinal` ends the turn. Independent clients do the same (LiveKit's and
//! Pipecat's ElevenLabs plugins close right after the last flush). An `isFinal` is accepted
//! whenever it comes (some servers also send one after a flush: it is ignored while the turn
//! still takes text), keyed `contextId` or `context_id`, and an audio chunk marked
//! `is_final_audio_for_turn` ends the turn too; none is relied on: a server may never send one,
//! and the call bounds its wait. Barge-in closes the context and drops whatever still comes.
//!
//! Recovery is this vendor's own: a socket that drops (or a server that keeps quiet for
//! [`ElevenLabsConfig::end_audio_timeout`] after a turn's text is complete with no audio at
//! all) gets the rest of the turn, the text the alignment had not yet covered, spoken over the
//! HTTP stream (`http`), and the next turn opens a new socket.
//!
//! Every context is closed at the end of its turn or on barge-in, so a socket never nears the
//! 5-context limit; keep-alives only ever target the live, unclosed context (one sent to a
//! closed context would reopen it). Every socket send is bounded ([`SEND_TIMEOUT`]).

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};

use super::http::{AudioStream, ElevenLabs, SampleAligner};
use super::wire::{Alignment, ServerMessage};
use super::{ElevenLabsConfig, ElevenLabsError};
use crate::metrics::ProviderMetrics;
use crate::voice::tts::{self, TtsError, TtsEvent, TurnId};
use crate::voice::{ErrorKind, Provider, ReconnectKind};

/// A socket send that takes longer than this has failed (the server stopped reading).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a turn's socket failed (it is then finished over HTTP).
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
    /// The turn's text was complete and no audio came for it.
    #[error("no audio for a complete turn within {0:?}")]
    Silent(Duration),
}

impl SessionError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            SessionError::Server { .. } => ErrorKind::Stream,
            SessionError::Dropped(_) => ErrorKind::Dropped,
            SessionError::Connect(_) => ErrorKind::Connect,
            SessionError::Silent(_) => ErrorKind::Stalled,
        }
    }
}

enum Command {
    Start(TurnId),
    Text(TurnId, String),
    Flush(TurnId),
    End(TurnId),
    Cancel(TurnId),
    Close,
}

/// A call's ElevenLabs TTS: one socket, one context per agent turn. Open it when the call
/// starts so the handshake is off the critical path.
#[derive(Debug)]
pub struct TtsSession {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<TtsEvent>,
    /// The most recent turn, until cancelled.
    current: Option<TurnId>,
    /// Whether `current` may still take text (not yet ended).
    accepting: bool,
}

impl TtsSession {
    /// Opens the socket (bounded by `connect_timeout`) and starts the session task, which lives
    /// until `close` or until this handle is dropped. `http`: the fallback for a failed turn.
    #[tracing::instrument(skip_all, fields(voice = %config.voice_id, format = config.output_format.as_str()))]
    pub async fn connect(
        config: ElevenLabsConfig,
        http: reqwest::Client,
        metrics: ProviderMetrics,
    ) -> Result<TtsSession, ElevenLabsError> {
        let socket = open_socket(&config).await?;
        let (commands, command_rx) = mpsc::channel(256);
        let (event_tx, events) = mpsc::channel(256);
        let actor = Actor {
            http: ElevenLabs::new(http, config.clone()),
            config,
            metrics,
            socket: Some(socket),
            events: event_tx,
            live: None,
        };
        tokio::spawn(actor.run(command_rx));
        Ok(TtsSession {
            commands,
            events,
            current: None,
            accepting: false,
        })
    }

    fn accepting_turn(&self) -> Result<TurnId, TtsError> {
        match (self.current, self.accepting) {
            (Some(id), true) => Ok(id),
            _ => Err(TtsError::NoTurn),
        }
    }

    /// Never waits: the call task must not block on a session task that is itself stuck.
    fn command(&self, command: Command) -> Result<(), TtsError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TtsError::SessionBusy,
            mpsc::error::TrySendError::Closed(_) => TtsError::SessionClosed,
        })
    }
}

impl tts::TtsSession for TtsSession {
    fn provider(&self) -> Provider {
        Provider::ElevenLabs
    }

    fn start_turn(&mut self, turn: TurnId) -> Result<(), TtsError> {
        self.command(Command::Start(turn))?;
        self.current = Some(turn);
        self.accepting = true;
        Ok(())
    }

    fn send_text(&mut self, text: &str) -> Result<(), TtsError> {
        let id = self.accepting_turn()?;
        if text.trim().is_empty() {
            return Ok(());
        }
        let mut text = text.to_string();
        if !text.ends_with(char::is_whitespace) {
            text.push(' ');
        }
        self.command(Command::Text(id, text))
    }

    fn flush(&mut self) -> Result<(), TtsError> {
        let id = self.accepting_turn()?;
        self.command(Command::Flush(id))
    }

    fn end_turn(&mut self) -> Result<(), TtsError> {
        let id = self.accepting_turn()?;
        self.accepting = false;
        self.command(Command::End(id))
    }

    fn cancel_turn(&mut self) -> Result<(), TtsError> {
        self.accepting = false;
        match self.current.take() {
            Some(id) => self.command(Command::Cancel(id)),
            None => Ok(()),
        }
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<TtsEvent>> {
        self.events.poll_recv(cx)
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        let commands = self.commands.clone();
        let mut events = self.events;
        Box::pin(async move {
            let _ = tokio::time::timeout(SEND_TIMEOUT, commands.send(Command::Close)).await;
            // The task says `Closed` once the socket is closed (within about a second).
            let _ = tokio::time::timeout(SEND_TIMEOUT, async {
                while let Some(ev) = events.recv().await {
                    if ev == TtsEvent::Closed {
                        break;
                    }
                }
            })
            .await;
        })
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open_socket(config: &ElevenLabsConfig) -> Result<Socket, ElevenLabsError> {
    let url = config.ws_url()?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ElevenLabsError::WebSocket(Box::new(e)))?;
    let mut key = HeaderValue::from_str(config.api_key.expose()).map_err(|_| {
        ElevenLabsError::InvalidApiKey("the key is not a valid header value".into())
    })?;
    key.set_sensitive(true);
    request.headers_mut().insert("xi-api-key", key);
    match tokio::time::timeout(
        config.connect_timeout,
        crate::providers::ws_connect(request),
    )
    .await
    {
        Err(_) => Err(ElevenLabsError::Timeout("opening the TTS WebSocket")),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response.body().clone().unwrap_or_default();
            Err(ElevenLabsError::from_answer(
                response.status().as_u16(),
                &body,
            ))
        }
        Ok(Err(e)) => Err(ElevenLabsError::WebSocket(Box::new(e))),
    }
}

/// The turn whose audio is wanted. Audio for any other context is dropped.
struct LiveTurn {
    id: TurnId,
    context: String,
    /// `flush` and `close_context` sent (or the text is complete): no more text, no keep-alives.
    ended_at: Option<Instant>,
    /// Everything sent for the turn, and how much of it the alignment has covered.
    text: String,
    aligned_chars: usize,
    audio_seen: bool,
    /// The socket failed: the rest goes over HTTP once the text is complete.
    broken: bool,
    fallback: Option<AudioStream>,
    first_text_at: Option<Instant>,
    first_audio: Option<Duration>,
    aligner: SampleAligner,
    last_sent: Instant,
}

impl LiveTurn {
    fn takes_text(&self) -> bool {
        self.ended_at.is_none()
    }
}

/// Owns the socket; everything the session does happens here, in order.
struct Actor {
    config: ElevenLabsConfig,
    http: ElevenLabs,
    metrics: ProviderMetrics,
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
            let silent_due = self.silent_due();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Close) | None => break,
                    Some(command) => self.on_command(command).await,
                },
                message = next_message(&mut self.socket) => self.on_socket(message).await,
                chunk = next_fallback(&mut self.live) => self.on_fallback(chunk).await,
                _ = sleep_opt(silent_due) => {
                    let wait = self.config.end_audio_timeout;
                    self.socket = None;
                    self.turn_broke(SessionError::Silent(wait)).await;
                }
                _ = keepalive.tick() => self.keep_alive().await,
            }
        }
        if self.socket.is_some() {
            // "Any context that was previously set to flush will wait to flush before closing":
            // nothing here is waited for, the call is over.
            self.send(json!({"close_socket": true})).await;
        }
        if let Some(mut socket) = self.socket.take() {
            // Let the server close; do not wait long.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(Ok(_)) = socket.next().await {}
            })
            .await;
        }
        let _ = self.events.send(TtsEvent::Closed).await;
    }

    /// A complete turn that has had no audio at all this long is taken as a stuck socket.
    fn silent_due(&self) -> Option<Instant> {
        let turn = self.live.as_ref()?;
        if turn.audio_seen || turn.broken || turn.fallback.is_some() || self.socket.is_none() {
            return None;
        }
        turn.ended_at.map(|t| t + self.config.end_audio_timeout)
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Start(id) => self.start(id).await,
            Command::Text(id, text) => {
                let Some(turn) = self.open_turn(id) else {
                    return;
                };
                turn.first_text_at.get_or_insert_with(Instant::now);
                turn.text.push_str(&text);
                if turn.broken {
                    return; // spoken over HTTP once the turn's text is complete
                }
                let msg = json!({"text": text, "context_id": turn.context});
                self.send_for_turn(msg).await;
            }
            Command::Flush(id) => {
                if let Some(turn) = self.open_turn(id).filter(|t| !t.broken) {
                    let msg = json!({"context_id": turn.context, "flush": true});
                    self.send_for_turn(msg).await;
                }
            }
            Command::End(id) => {
                let Some(turn) = self.open_turn(id) else {
                    return;
                };
                turn.ended_at = Some(Instant::now());
                let (context, broken, said) = (
                    turn.context.clone(),
                    turn.broken,
                    turn.first_text_at.is_some(),
                );
                if broken {
                    self.start_fallback().await;
                } else if !said {
                    // Nothing was said: the turn is done without waiting for the server.
                    self.close_context(&context).await;
                    self.finish_turn().await;
                } else {
                    self.send_for_turn(json!({"context_id": context, "flush": true}))
                        .await;
                    if self.live.as_ref().is_some_and(|t| !t.broken) {
                        self.close_context(&context).await;
                    }
                }
            }
            Command::Cancel(id) => {
                if self.live.as_ref().is_some_and(|t| t.id == id) {
                    let turn = self.live.take().expect("checked");
                    if turn.takes_text() && !turn.broken {
                        self.close_context(&turn.context).await;
                    }
                }
            }
            Command::Close => {}
        }
    }

    /// The live turn `id` if it still takes text.
    fn open_turn(&mut self, id: TurnId) -> Option<&mut LiveTurn> {
        self.live.as_mut().filter(|t| t.id == id && t.takes_text())
    }

    async fn start(&mut self, id: TurnId) {
        if let Some(previous) = self.live.take()
            && previous.takes_text()
            && !previous.broken
        {
            self.close_context(&previous.context).await;
        }
        self.read_pending().await;
        let context = id.to_string();
        let mut turn = LiveTurn {
            id,
            context: context.clone(),
            ended_at: None,
            text: String::new(),
            aligned_chars: 0,
            audio_seen: false,
            broken: false,
            fallback: None,
            first_text_at: None,
            first_audio: None,
            aligner: SampleAligner::new(self.config.output_format),
            last_sent: Instant::now(),
        };
        let init = json!({
            "text": " ",
            "context_id": context,
            "voice_settings": self.config.voice_settings,
        });
        // A socket that dropped between turns is replaced once, here.
        let mut sent = self.socket.is_some() && self.send(init.clone()).await;
        if !sent {
            // Boxed: a reopen is rare, and inline its connect and handshake states would sit in
            // every session task's future for the whole call (heaptrack: ~19 KB per task).
            match Box::pin(open_socket(&self.config)).await {
                Ok(socket) => {
                    tracing::info!(%id, "TTS socket reopened");
                    self.socket = Some(socket);
                    sent = self.send(init).await;
                }
                Err(e) => {
                    self.metrics.error(Provider::ElevenLabs, e.kind());
                    tracing::warn!(error = %e, "TTS socket could not be reopened: the turn goes over HTTP");
                }
            }
        }
        // Without a socket the turn is spoken over HTTP once its text is complete.
        turn.broken = !sent;
        self.live = Some(turn);
    }

    /// Handles what has already arrived on the socket, without waiting. A socket that sat idle
    /// may have been closed by the server (its inactivity timeout) with that still unread; a new
    /// turn sent into it would fail and go over HTTP, where a new socket serves it whole.
    async fn read_pending(&mut self) {
        use futures::FutureExt;
        while let Some(socket) = self.socket.as_mut() {
            let Some(message) = socket.next().now_or_never() else {
                break;
            };
            self.on_socket(message).await;
        }
    }

    /// Sends one message within [`SEND_TIMEOUT`]; a failure drops the socket. True when sent.
    async fn send(&mut self, msg: Value) -> bool {
        let Some(socket) = self.socket.as_mut() else {
            return false;
        };
        let sent = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::text(msg.to_string())))
            .await
            .is_ok_and(|r| r.is_ok());
        if !sent {
            self.socket = None;
        }
        sent
    }

    /// Sends a message of the live turn; a failure breaks the turn (it goes on over HTTP).
    async fn send_for_turn(&mut self, msg: Value) {
        if self.send(msg).await {
            if let Some(turn) = self.live.as_mut() {
                turn.last_sent = Instant::now();
            }
        } else {
            self.turn_broke(SessionError::Dropped("sending to the socket failed".into()))
                .await;
        }
    }

    async fn close_context(&mut self, context: &str) {
        self.send(json!({"context_id": context, "close_context": true}))
            .await;
    }

    /// Keeps the live context (and so the socket) alive while the agent is slow to speak.
    async fn keep_alive(&mut self) {
        let Some(turn) = self.live.as_ref().filter(|t| t.takes_text() && !t.broken) else {
            return;
        };
        if turn.last_sent.elapsed() >= self.config.keepalive_interval {
            let msg = json!({"text": "", "context_id": turn.context});
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
        if msg.is_error() {
            let error = SessionError::Server {
                code: msg.error.unwrap_or_else(|| "unknown".into()),
                message: msg.message.unwrap_or_default(),
            };
            // The server closes the socket after an error: the next turn opens a new one.
            self.socket = None;
            if self.live.as_ref().is_some_and(|t| !t.broken) {
                tracing::warn!(%error, "ElevenLabs failed a turn");
                self.turn_broke(error).await;
            } else {
                // Between turns nothing is lost (typically an idle timeout).
                tracing::info!(%error, "ElevenLabs closed an idle session socket");
            }
            return;
        }
        let Some(turn) = self.live.as_mut().filter(|t| !t.broken) else {
            return;
        };
        // `contextId` is optional in the spec: a message without one is the live turn's.
        if msg.context_id.as_deref().is_some_and(|c| c != turn.context) {
            // Late audio (or the end) of a closed context, e.g. after a barge-in: never played.
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
            turn.audio_seen = true;
            if turn.first_audio.is_none() {
                turn.first_audio = turn.first_text_at.map(|t| t.elapsed());
                tracing::debug!(turn = %turn.id, first_audio = ?turn.first_audio, "first TTS audio");
            }
            let pcm = turn.aligner.push(bytes);
            let alignment = msg.alignment.or(msg.normalized_alignment).map(neutral);
            if let Some(a) = &alignment {
                turn.aligned_chars += a.chars;
            }
            if !pcm.is_empty() {
                let event = TtsEvent::Audio {
                    turn: turn.id,
                    pcm,
                    alignment,
                };
                self.emit(event).await;
            }
        }
        if msg.is_final == Some(true) || msg.final_audio == Some(true) {
            if self.live.as_ref().is_some_and(|t| !t.takes_text()) {
                self.finish_turn().await;
            } else {
                // Some servers also say so after a mid-turn flush; the context stays open.
                tracing::debug!("isFinal for a context still taking text: ignored");
            }
        }
    }

    /// The live turn's socket failed: count it, and speak the rest over HTTP (now if its text
    /// is complete, else once it is).
    async fn turn_broke(&mut self, error: SessionError) {
        self.metrics.error(Provider::ElevenLabs, error.kind());
        let Some(turn) = self.live.as_mut() else {
            return;
        };
        if turn.broken {
            return;
        }
        tracing::warn!(%error, turn = %turn.id, "TTS socket failed mid-turn: the rest goes over HTTP");
        turn.broken = true;
        if !turn.takes_text() {
            self.start_fallback().await;
        }
    }

    /// Speaks what the socket had not voiced yet, through the HTTP stream.
    async fn start_fallback(&mut self) {
        let Some(turn) = self.live.as_mut() else {
            return;
        };
        let rest: String = turn.text.chars().skip(turn.aligned_chars).collect();
        if rest.trim().is_empty() {
            return self.finish_turn().await;
        }
        self.metrics
            .reconnect(Provider::ElevenLabs, ReconnectKind::HttpFallback);
        let voice = self.config.voice_id.clone();
        match self.http.synthesize_stream(rest.trim(), &voice).await {
            Ok(stream) => {
                if let Some(turn) = self.live.as_mut() {
                    turn.fallback = Some(stream);
                }
            }
            Err(e) => {
                self.metrics.error(Provider::ElevenLabs, e.kind());
                tracing::error!(error = %e, "HTTP TTS fallback failed too");
                self.fail_turn(e.to_string()).await;
            }
        }
    }

    async fn on_fallback(&mut self, chunk: Option<Result<Bytes, ElevenLabsError>>) {
        match chunk {
            Some(Ok(pcm)) => {
                if let Some(turn) = self.live.as_ref() {
                    let event = TtsEvent::Audio {
                        turn: turn.id,
                        pcm,
                        alignment: None,
                    };
                    self.emit(event).await;
                }
            }
            Some(Err(e)) => {
                self.metrics.error(Provider::ElevenLabs, e.kind());
                tracing::warn!(error = %e, "HTTP TTS fallback stream failed");
                self.fail_turn(e.to_string()).await;
            }
            None => {
                if let Some(turn) = self.live.as_ref() {
                    let event = TtsEvent::Spoken {
                        turn: turn.id,
                        chars: turn.text.chars().count(),
                    };
                    self.emit(event).await;
                }
                self.finish_turn().await;
            }
        }
    }

    /// The live turn is over: no more audio comes for it.
    async fn finish_turn(&mut self) {
        if let Some(turn) = self.live.take() {
            tracing::info!(turn = %turn.id, first_audio = ?turn.first_audio, "TTS turn done");
            self.emit(TtsEvent::TurnDone {
                turn: turn.id,
                first_audio: turn.first_audio,
            })
            .await;
        }
    }

    async fn fail_turn(&mut self, message: String) {
        let turn = self.live.take().map(|t| t.id);
        self.emit(TtsEvent::Error { turn, message }).await;
    }

    async fn socket_lost(&mut self, reason: String) {
        self.socket = None;
        if self.live.as_ref().is_some_and(|t| !t.broken) {
            self.turn_broke(SessionError::Dropped(reason)).await;
        } else {
            tracing::info!(%reason, "TTS socket closed between turns; the next turn reopens it");
        }
    }

    async fn emit(&mut self, event: TtsEvent) {
        // A dropped receiver means nobody listens any more; the session ends with its handle.
        let _ = self.events.send(event).await;
    }
}

/// The port's alignment: how many characters, and when each has been spoken (reusing the
/// start times' buffer).
fn neutral(a: Alignment) -> tts::Alignment {
    let mut ends_ms = a.char_start_times_ms;
    for (end, duration) in ends_ms.iter_mut().zip(&a.char_durations_ms) {
        *end += duration;
    }
    tts::Alignment {
        chars: a.chars.count,
        ends_ms,
    }
}

/// The next socket message, or never when there is no socket.
async fn next_message(socket: &mut Option<Socket>) -> Option<Result<Message, tungstenite::Error>> {
    match socket.as_mut() {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}

/// The live turn's next HTTP fallback chunk, or never.
async fn next_fallback(live: &mut Option<LiveTurn>) -> Option<Result<Bytes, ElevenLabsError>> {
    match live.as_mut().and_then(|t| t.fallback.as_mut()) {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
