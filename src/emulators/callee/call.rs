//! The call: [`run_call`] opens the bot's `/media` WebSocket and runs the stream's loop (the
//! person's frame tick, the bot's messages, marks falling due, the time limit) until someone
//! hangs up; then it sends `stop`, closes, and writes the [`CallReport`].

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::audio::Clock;
use super::config::{CalleeConfig, CalleeError, MarkEcho, StartInfo};
use super::ear::Ear;
use super::endpoint::parse_endpoint;
use super::mouth::{Mouth, Speaking};
use super::person::Person;
use super::persona::CalleeOutcome;
use super::report::{CallReport, EndedBy, MediaStats, SaidLine, Violations};
use super::rng::{Rng, fnv1a};

/// Bot audio must come in multiples of this (20 ms at 8 kHz).
pub(super) const ALIGNMENT: usize = 320;
/// Bounded wait for the close handshake after we hang up.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub(super) struct Call {
    pub(super) socket: Socket,
    pub(super) start: StartInfo,
    pub(super) stream_sid: String,
    pub(super) clock: Clock,
    pub(super) sample_rate: u32,
    pub(super) frame: Duration,
    /// Set when `start` is sent: the stream's time zero.
    pub(super) t0: Instant,
    pub(super) seq: u64,
    pub(super) chunk: u64,
    pub(super) silent_payload: String,
    pub(super) frame_buf: Vec<u8>,
    pub(super) payload_buf: String,
    pub(super) ear: Ear,
    pub(super) mouth: Mouth,
    pub(super) speaking: Option<Speaking>,
    pub(super) person: Person,
    pub(super) said: Vec<SaidLine>,
    pub(super) stats: MediaStats,
    pub(super) violations: Violations,
    pub(super) first_agent_audio: Option<Duration>,
    pub(super) voice_to_voice: Vec<Duration>,
    /// End of the person's last answer, until the agent's reply arrives.
    pub(super) awaiting_reply: Option<Instant>,
    pub(super) endpointing: Option<Duration>,
    /// Audio time at which the endpointing silence after the last answer is complete.
    pub(super) endpoint_due: Option<Instant>,
    /// When the frame completing that silence was actually sent.
    pub(super) endpoint_sent: Option<Instant>,
    pub(super) after_endpoint: Vec<Duration>,
    pub(super) ended_at: Option<Instant>,
    pub(super) error: Option<String>,
    pub(super) marks: MarkEcho,
    /// Played marks held back ([`MarkEcho::Late`]) and when each is echoed.
    pub(super) late_marks: VecDeque<(Instant, String)>,
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

    pub(super) fn next_seq(&mut self) -> u64 {
        // `start` is 1.
        self.seq = self.seq.max(1) + 1;
        self.seq
    }

    pub(super) async fn send(&mut self, text: String) -> Result<(), String> {
        self.socket
            .send(Message::text(text))
            .await
            .map_err(|e| e.to_string())
    }

    pub(super) fn lost(&mut self, error: String) -> EndedBy {
        self.error.get_or_insert(error);
        EndedBy::Bot
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
