//! One live-listen WebSocket: reads the client's frames, drives the [`Transcriber`] and writes
//! Deepgram-shaped JSON. Writing happens on its own task so an emulated result latency never
//! stalls reading (the real service also keeps accepting audio while it works).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use super::transcriber::{Output, Segment, Transcriber};
use super::{DropAfter, Ended, ListenParams, Shared};

/// Reason sent with code 1011 on idle timeout; like the real one, a sentence naming NET-0001.
pub const IDLE_REASON: &str = "Deepgram did not receive audio data or a text message within the \
                               timeout window. See https://dpgr.am/net0001 (NET-0001)";
/// Reason sent with code 1008 when the audio cannot be decoded.
pub const DATA_REASON: &str = "DATA-0000";
/// How long a closing connection waits for the peer's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

enum Outgoing {
    /// JSON text, sent after `delay` (the emulated processing latency of finals).
    Text {
        json: String,
        delay: Duration,
    },
    Close {
        code: u16,
        reason: String,
    },
}

struct Conn {
    params: ListenParams,
    shared: Arc<Shared>,
    transcriber: Transcriber,
    request_id: String,
    out: mpsc::UnboundedSender<Outgoing>,
    /// Bytes of an incomplete multi-channel sample frame, carried to the next message.
    carry: Vec<u8>,
    /// FNV-1a over the audio; stands in for Metadata's `sha256` (only its shape matters).
    checksum: u64,
}

/// Serves one upgraded connection until it closes, is dropped on purpose, or the peer leaves.
pub(super) async fn run(socket: WebSocket, params: ListenParams, shared: Arc<Shared>, no: usize) {
    let (sink, mut stream) = socket.split();
    let (out, out_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(sink, out_rx));
    let config = shared.config.clone();
    let fault = config
        .drop_connections
        .as_ref()
        .filter(|f| no < f.first)
        .map(|f| f.after);
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let drop_timer = sleep_until(match fault {
        Some(DropAfter::WallClock(d)) => Instant::now() + d,
        _ => far,
    });
    let drop_at_samples = match fault {
        Some(DropAfter::AudioTime(d)) => {
            Some(d.as_millis() as u64 * params.sample_rate as u64 / 1000)
        }
        _ => None,
    };
    let idle = sleep_until(Instant::now() + config.idle_timeout);
    tokio::pin!(drop_timer, idle);
    let mut conn = Conn {
        transcriber: Transcriber::new(params.transcriber.clone()),
        params,
        shared: shared.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        out,
        carry: Vec::new(),
        checksum: 0xcbf2_9ce4_8422_2325,
    };

    let ended = loop {
        tokio::select! {
            msg = stream.next() => {
                idle.as_mut().reset(Instant::now() + config.idle_timeout);
                match msg {
                    None | Some(Err(_)) => break Ended::Disconnected,
                    Some(Ok(Message::Close(_))) => break Ended::ClientClosed,
                    Some(Ok(Message::Binary(audio))) if audio.is_empty() => break conn.close_stream(),
                    Some(Ok(Message::Binary(audio))) => {
                        if let Some(ended) = conn.audio(&audio) {
                            break ended;
                        }
                        if drop_at_samples.is_some_and(|at| conn.transcriber.samples() >= at) {
                            break Ended::Dropped;
                        }
                    }
                    Some(Ok(Message::Text(text))) => {
                        if let Some(ended) = conn.control(text.as_str()) {
                            break ended;
                        }
                    }
                    Some(Ok(_)) => {}
                }
            }
            () = &mut idle => break conn.close(1011, IDLE_REASON),
            () = &mut drop_timer => break Ended::Dropped,
        }
    };

    match ended {
        Ended::Dropped => {
            // No close frame: the TCP connection just goes away, as when a network path dies.
            writer.abort();
            drop(stream);
        }
        _ => {
            drop(conn);
            let _ = timeout(CLOSE_GRACE, writer).await;
            let drain = async {
                while let Some(Ok(m)) = stream.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            };
            let _ = timeout(CLOSE_GRACE, drain).await;
        }
    }
    tracing::debug!(
        connection = no,
        ?ended,
        "deepgram emulator connection ended"
    );
    shared.record_end(ended);
}

async fn write_loop(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(item) = rx.recv().await {
        match item {
            Outgoing::Text { json, delay } => {
                if !delay.is_zero() {
                    sleep(delay).await;
                }
                if sink.send(Message::Text(json.into())).await.is_err() {
                    return;
                }
            }
            Outgoing::Close { code, reason } => {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                return;
            }
        }
    }
}

impl Conn {
    /// Handles one binary audio message; `Some` when the connection must end.
    fn audio(&mut self, bytes: &[u8]) -> Option<Ended> {
        self.shared.record(|s| s.audio_bytes += bytes.len() as u64);
        if self.params.encoding.as_deref() != Some("linear16") {
            return Some(self.close(1008, DATA_REASON));
        }
        for b in bytes {
            self.checksum = (self.checksum ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
        let frame = 2 * self.params.channels as usize;
        self.carry.extend_from_slice(bytes);
        let whole = self.carry.len() / frame * frame;
        // Only the first channel is transcribed; the emulated callers are mono.
        let samples: Vec<i16> = self.carry[..whole]
            .chunks_exact(frame)
            .map(|f| i16::from_le_bytes([f[0], f[1]]))
            .collect();
        self.carry.drain(..whole);
        let outputs = self.transcriber.push(&samples);
        self.emit(outputs);
        None
    }

    /// Handles one text message; `Some` when the connection must end.
    fn control(&mut self, text: &str) -> Option<Ended> {
        let kind = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned));
        match kind.as_deref() {
            Some("KeepAlive") => self.shared.record(|s| s.keepalives += 1),
            Some("Finalize") => {
                self.shared.record(|s| s.finalizes += 1);
                let out = self.transcriber.finalize();
                self.emit(vec![out]);
            }
            Some("CloseStream") => return Some(self.close_stream()),
            _ => {
                self.shared.record(|s| s.invalid_messages += 1);
                let error = json!({
                    "type": "Error",
                    "description": "Failed to parse client message.",
                    "message": format!("unsupported message: {}", text.chars().take(64).collect::<String>()),
                    "variant": "INVALID_MESSAGE",
                });
                self.send(error.to_string(), Duration::ZERO);
            }
        }
        None
    }

    /// `CloseStream` (or an empty binary frame): flush, `Metadata`, normal close.
    fn close_stream(&mut self) -> Ended {
        self.shared.record(|s| s.close_streams += 1);
        let flushed = self.transcriber.flush();
        self.emit(flushed.into_iter().collect());
        let metadata = json!({
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": format!("{:016x}", self.checksum).repeat(4),
            "created": chrono::Utc::now().to_rfc3339(),
            "duration": self.transcriber.audio_seconds(),
            "channels": self.params.channels,
            "models": [MODEL_UUID],
            "model_info": { MODEL_UUID: self.model_info() },
        });
        self.send(metadata.to_string(), Duration::ZERO);
        self.close(1000, "")
    }

    fn close(&mut self, code: u16, reason: &str) -> Ended {
        let _ = self.out.send(Outgoing::Close {
            code,
            reason: reason.to_string(),
        });
        Ended::ServerClosed {
            code,
            reason: reason.to_string(),
        }
    }

    fn emit(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Results(segment) => {
                    let delay = if segment.is_final {
                        self.shared.config.result_latency
                    } else {
                        Duration::ZERO
                    };
                    let json = self.results_json(&segment);
                    self.shared.record(|s| {
                        s.results += 1;
                        s.finals += usize::from(segment.is_final);
                    });
                    self.send(json, delay);
                }
                Output::SpeechStarted { timestamp } => self.send(
                    json!({"type": "SpeechStarted", "channel": [0, 1], "timestamp": timestamp})
                        .to_string(),
                    Duration::ZERO,
                ),
                Output::UtteranceEnd { .. } if !self.shared.config.turn_end.utterance_end => {}
                Output::UtteranceEnd { last_word_end } => self.send(
                    json!({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last_word_end})
                        .to_string(),
                    Duration::ZERO,
                ),
            }
        }
    }

    fn send(&self, json: String, delay: Duration) {
        let _ = self.out.send(Outgoing::Text { json, delay });
    }

    fn results_json(&self, s: &Segment) -> String {
        let confidence = if s.is_final { 0.98 } else { 0.9 };
        let words: Vec<Value> = s
            .words
            .iter()
            .map(|w| {
                json!({"word": w.word, "start": w.start, "end": w.end,
                       "confidence": confidence, "punctuated_word": w.punctuated})
            })
            .collect();
        let confidence = if words.is_empty() { 0.0 } else { confidence };
        json!({
            "type": "Results",
            "channel_index": [0, 1],
            "duration": s.duration,
            "start": s.start,
            "is_final": s.is_final,
            "speech_final": s.speech_final && self.shared.config.turn_end.speech_final,
            "from_finalize": s.from_finalize,
            "channel": {"alternatives": [{
                "transcript": s.transcript,
                "confidence": confidence,
                "languages": [self.params.language],
                "words": words,
            }]},
            "metadata": {
                "request_id": self.request_id,
                "model_info": self.model_info(),
                "model_uuid": MODEL_UUID,
            },
        })
        .to_string()
    }

    fn model_info(&self) -> Value {
        json!({"name": format!("{}-emulated", self.params.model), "version": "emulator", "arch": self.params.model})
    }
}

const MODEL_UUID: &str = "00000000-0000-4000-8000-00000000d9a1";
