//! A call's TTS over the `multi-stream-input` WebSocket: one socket, one context per agent turn.
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
//! and the context's `isFinal` ends the turn ([`TtsEvent::TurnDone`]). Independent clients do
//! the same (LiveKit's and Pipecat's ElevenLabs plugins close right after the last flush). An
//! `isFinal` is accepted whenever it comes (some servers also send one after a flush), keyed
//! `contextId` or `context_id`, and an audio chunk marked `is_final_audio_for_turn` ends the turn
//! too; none of them is relied on: a server may never send one, so the pipeline bounds its wait
//! (`media::call`). Barge-in closes the context and drops whatever audio still comes for it.
//!
//! Every context is closed at the end of its turn or on barge-in, so a socket never nears the
//! 5-context limit; keep-alives only ever target the live, unclosed context (one sent to a closed
//! context would reopen it). Every socket send is bounded ([`SEND_TIMEOUT`]).

use std::time::Duration;

use bytes::Bytes;
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

use super::http::SampleAligner;
use super::wire::{Alignment, ContextId, ServerMessage};
use super::{ElevenLabsConfig, TtsError};

/// A socket send that takes longer than this has failed (the server stopped reading).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub enum TtsEvent {
    /// Audio of the live turn, in the session's output format. For PCM: whole 16-bit samples
    /// (μ-law is one byte per sample).
    Audio {
        context: ContextId,
        pcm: Bytes,
        alignment: Option<Alignment>,
    },
    /// The server ended the turn's context (`isFinal`, or its last audio was marked): no more
    /// audio comes for it. `first_audio`: from the turn's first text to its first audio byte.
    TurnDone {
        context: ContextId,
        first_audio: Option<Duration>,
    },
    /// The turn (if any) will produce no more audio: fall back.
    Error {
        context: Option<ContextId>,
        error: SessionError,
    },
    /// The session is over (after `close`, or when its handle was dropped).
    Closed,
}

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
}

enum Command {
    Start(ContextId),
    Text(ContextId, String),
    Flush(ContextId),
    End(ContextId),
    Cancel(ContextId),
    Close,
}

/// A call's TTS: one socket, one context per agent turn. Open it when the call starts so the
/// handshake is off the critical path; read [`TtsEvent`]s from the receiver `connect` returns.
#[derive(Debug)]
pub struct TtsSession {
    commands: mpsc::Sender<Command>,
    turns: u64,
    /// The most recent turn, until cancelled.
    current: Option<ContextId>,
    /// Whether `current` may still take text (not yet ended).
    accepting: bool,
}

impl TtsSession {
    /// Opens the socket (bounded by `connect_timeout`) and starts the session task, which lives
    /// until `close` or until this handle is dropped.
    #[tracing::instrument(skip_all, fields(voice = %config.voice_id, format = config.output_format.as_str()))]
    pub async fn connect(
        config: ElevenLabsConfig,
    ) -> Result<(TtsSession, mpsc::Receiver<TtsEvent>), TtsError> {
        let socket = open_socket(&config).await?;
        let (commands, command_rx) = mpsc::channel(256);
        let (event_tx, events) = mpsc::channel(256);
        let actor = Actor {
            config,
            socket: Some(socket),
            events: event_tx,
            live: None,
        };
        tokio::spawn(actor.run(command_rx));
        let session = TtsSession {
            commands,
            turns: 0,
            current: None,
            accepting: false,
        };
        Ok((session, events))
    }

    /// Starts a turn (a new context). An unfinished previous turn is cancelled.
    pub fn start_turn(&mut self) -> Result<ContextId, TtsError> {
        self.turns += 1;
        let id = ContextId(format!("turn-{}", self.turns));
        self.command(Command::Start(id.clone()))?;
        self.current = Some(id.clone());
        self.accepting = true;
        Ok(id)
    }

    /// Sends a phrase of the current turn. A chunk not ending in whitespace gets a space, so
    /// send whole words or phrases, never fragments of a word.
    pub fn send_text(&mut self, chunk: &str) -> Result<(), TtsError> {
        let id = self.accepting_turn()?;
        if chunk.trim().is_empty() {
            return Ok(());
        }
        let mut text = chunk.to_string();
        if !text.ends_with(char::is_whitespace) {
            text.push(' ');
        }
        self.command(Command::Text(id, text))
    }

    /// Speaks what the current turn has buffered now, and keeps the turn open for more text
    /// (a filler before the model's answer).
    pub fn flush(&mut self) -> Result<(), TtsError> {
        let id = self.accepting_turn()?;
        self.command(Command::Flush(id))
    }

    /// Ends the current turn's text: what is buffered is spoken (flush) and the context closed at
    /// once; its audio keeps coming, then `TurnDone` (if the server says so).
    pub fn end_turn(&mut self) -> Result<(), TtsError> {
        let id = self.accepting_turn()?;
        self.accepting = false;
        self.command(Command::End(id))
    }

    /// Barge-in: stops the current turn; audio still arriving for it is dropped.
    pub fn cancel_turn(&mut self) -> Result<(), TtsError> {
        self.accepting = false;
        match self.current.take() {
            Some(id) => self.command(Command::Cancel(id)),
            None => Ok(()),
        }
    }

    /// Closes the socket; `Closed` follows on the event channel.
    pub async fn close(self) -> Result<(), TtsError> {
        self.commands
            .send(Command::Close)
            .await
            .map_err(|_| TtsError::SessionClosed)
    }

    fn accepting_turn(&self) -> Result<ContextId, TtsError> {
        match (&self.current, self.accepting) {
            (Some(id), true) => Ok(id.clone()),
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

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open_socket(config: &ElevenLabsConfig) -> Result<Socket, TtsError> {
    let url = config.ws_url()?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| TtsError::WebSocket(Box::new(e)))?;
    let mut key = HeaderValue::from_str(config.api_key.expose())
        .map_err(|_| TtsError::InvalidApiKey("the key is not a valid header value".into()))?;
    key.set_sensitive(true);
    request.headers_mut().insert("xi-api-key", key);
    match tokio::time::timeout(
        config.connect_timeout,
        tokio_tungstenite::connect_async_with_config(
            request,
            Some(crate::providers::ws_config()),
            true,
        ),
    )
    .await
    {
        Err(_) => Err(TtsError::Timeout("opening the TTS WebSocket")),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let body = response.body().clone().unwrap_or_default();
            Err(TtsError::from_answer(response.status().as_u16(), &body))
        }
        Ok(Err(e)) => Err(TtsError::WebSocket(Box::new(e))),
    }
}

/// The turn whose audio is wanted. Audio for any other context is dropped.
struct LiveTurn {
    id: ContextId,
    /// `flush` and `close_context` sent: no more text and no keep-alives for it.
    closed: bool,
    first_text_at: Option<Instant>,
    first_audio: Option<Duration>,
    aligner: SampleAligner,
    last_sent: Instant,
}

/// Owns the socket; everything the session does happens here, in order.
struct Actor {
    config: ElevenLabsConfig,
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
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Close) | None => break,
                    Some(command) => self.on_command(command).await,
                },
                message = next_message(&mut self.socket) => self.on_socket(message).await,
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

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Start(id) => self.start(id).await,
            Command::Text(id, text) => {
                if let Some(turn) = self.open_turn(&id) {
                    turn.first_text_at.get_or_insert_with(Instant::now);
                    let msg = json!({"text": text, "context_id": id.as_str()});
                    self.send_for_turn(msg).await;
                }
            }
            Command::Flush(id) => {
                if self.open_turn(&id).is_some() {
                    self.send_for_turn(json!({"context_id": id.as_str(), "flush": true}))
                        .await;
                }
            }
            Command::End(id) => {
                let Some(turn) = self.open_turn(&id) else {
                    return;
                };
                turn.closed = true;
                if turn.first_text_at.is_none() {
                    // Nothing was said: the turn is done without waiting for the server.
                    self.close_context(&id).await;
                    self.finish_turn().await;
                    return;
                }
                self.send_for_turn(json!({"context_id": id.as_str(), "flush": true}))
                    .await;
                if self.live.is_some() {
                    self.close_context(&id).await;
                }
            }
            Command::Cancel(id) => {
                if self.live.as_ref().is_some_and(|t| t.id == id) {
                    let turn = self.live.take().expect("checked");
                    if !turn.closed {
                        self.close_context(&id).await;
                    }
                }
            }
            Command::Close => {}
        }
    }

    /// The live turn `id` if it still takes text.
    fn open_turn(&mut self, id: &ContextId) -> Option<&mut LiveTurn> {
        self.live.as_mut().filter(|t| t.id == *id && !t.closed)
    }

    async fn start(&mut self, id: ContextId) {
        if let Some(previous) = self.live.take()
            && !previous.closed
        {
            self.close_context(&previous.id).await;
        }
        self.read_pending().await;
        let init = json!({
            "text": " ",
            "context_id": id.as_str(),
            "voice_settings": self.config.voice_settings,
        });
        // A socket that dropped between turns is replaced once, here.
        let mut sent = self.socket.is_some() && self.send(init.clone()).await;
        if !sent {
            // Boxed: a reopen is rare, and inline its connect and handshake states would sit in
            // every session task's future for the whole call (heaptrack: ~19 KB per task).
            match Box::pin(open_socket(&self.config)).await {
                Ok(socket) => {
                    tracing::info!(context = %id, "TTS socket reopened");
                    self.socket = Some(socket);
                    sent = self.send(init).await;
                }
                Err(e) => {
                    self.socket = None;
                    self.emit(TtsEvent::Error {
                        context: Some(id),
                        error: SessionError::Connect(e.to_string()),
                    })
                    .await;
                    return;
                }
            }
        }
        if !sent {
            let error = SessionError::Connect("the new socket failed at once".into());
            self.emit(TtsEvent::Error {
                context: Some(id),
                error,
            })
            .await;
            return;
        }
        self.live = Some(LiveTurn {
            id,
            closed: false,
            first_text_at: None,
            first_audio: None,
            aligner: SampleAligner::new(self.config.output_format),
            last_sent: Instant::now(),
        });
    }

    /// Handles what has already arrived on the socket, without waiting. A socket that sat idle
    /// may have been closed by the server (its inactivity timeout) with that still unread; a new
    /// turn sent into it would fail and fall back to HTTP, where a new socket serves it whole.
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

    /// Sends a message of the live turn; a failure ends the turn with an error event.
    async fn send_for_turn(&mut self, msg: Value) {
        if self.send(msg).await {
            if let Some(turn) = self.live.as_mut() {
                turn.last_sent = Instant::now();
            }
        } else {
            self.fail_turn(SessionError::Dropped("sending to the socket failed".into()))
                .await;
        }
    }

    async fn close_context(&mut self, id: &ContextId) {
        self.send(json!({"context_id": id.as_str(), "close_context": true}))
            .await;
    }

    /// Keeps the live context (and so the socket) alive while the agent is slow to speak.
    async fn keep_alive(&mut self) {
        let Some(turn) = self.live.as_ref().filter(|t| !t.closed) else {
            return;
        };
        if turn.last_sent.elapsed() >= self.config.keepalive_interval {
            let msg = json!({"text": "", "context_id": turn.id.as_str()});
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
            if self.live.is_some() {
                tracing::warn!(%error, "ElevenLabs failed a turn");
                self.fail_turn(error).await;
            } else {
                // Between turns nothing is lost (typically an idle timeout): the server closes
                // the socket, so it is dropped now and the next turn opens a new one.
                tracing::info!(%error, "ElevenLabs closed an idle session socket");
                self.socket = None;
            }
            return;
        }
        let Some(turn) = self.live.as_mut() else {
            return;
        };
        // `contextId` is optional in the spec: a message without one is the live turn's.
        if msg
            .context_id
            .as_deref()
            .is_some_and(|c| c != turn.id.as_str())
        {
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
            if turn.first_audio.is_none() {
                turn.first_audio = turn.first_text_at.map(|t| t.elapsed());
                tracing::debug!(context = %turn.id, first_audio = ?turn.first_audio, "first TTS audio");
            }
            let pcm = turn.aligner.push(bytes);
            let alignment = msg.alignment.or(msg.normalized_alignment);
            if !pcm.is_empty() {
                let event = TtsEvent::Audio {
                    context: turn.id.clone(),
                    pcm,
                    alignment,
                };
                self.emit(event).await;
            }
        }
        if msg.is_final == Some(true) || msg.final_audio == Some(true) {
            if self.live.as_ref().is_some_and(|t| t.closed) {
                self.finish_turn().await;
            } else {
                // Some servers also say so after a mid-turn flush; the context stays open.
                tracing::debug!("isFinal for a context still taking text: ignored");
            }
        }
    }

    /// The server has ended the live turn's context: report it.
    async fn finish_turn(&mut self) {
        if let Some(turn) = self.live.take() {
            tracing::info!(context = %turn.id, first_audio = ?turn.first_audio, "TTS turn done");
            self.emit(TtsEvent::TurnDone {
                context: turn.id,
                first_audio: turn.first_audio,
            })
            .await;
        }
    }

    async fn fail_turn(&mut self, error: SessionError) {
        let context = self.live.take().map(|t| t.id);
        self.emit(TtsEvent::Error { context, error }).await;
    }

    async fn socket_lost(&mut self, reason: String) {
        self.socket = None;
        if self.live.is_some() {
            self.fail_turn(SessionError::Dropped(reason)).await;
        } else {
            tracing::info!(%reason, "TTS socket closed between turns; the next turn reopens it");
        }
    }

    async fn emit(&self, event: TtsEvent) {
        // A dropped receiver means nobody listens any more; the session ends with its handle.
        let _ = self.events.send(event).await;
    }
}

/// The next socket message, or never when there is no socket.
async fn next_message(socket: &mut Option<Socket>) -> Option<Result<Message, tungstenite::Error>> {
    match socket.as_mut() {
        Some(socket) => socket.next().await,
        None => std::future::pending().await,
    }
}
