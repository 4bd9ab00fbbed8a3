//! The call's database writes, in order, off the audio loop: the call task hands each write to
//! this task and never waits for the database. A crash loses at most the write in flight.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::DbMetrics;
use crate::store::{CallUsage, Store, TranscriptTurn};

#[derive(Debug, Clone)]
pub enum Write {
    Turn(TranscriptTurn),
    Outcome {
        intent: String,
        qualification: Map<String, Value>,
        summary: Option<String>,
        at: DateTime<Utc>,
    },
    Callback {
        lead_id: i64,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// The live view of the call for `/debug/sessions` (Redis when configured).
    Snapshot(Value),
    /// What the call consumed (LLM tokens, TTS characters), added to the call's counters.
    Usage(CallUsage),
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Write>,
}

impl Writer {
    /// Starts the writer for one call; the handle ends once every `Writer` clone is dropped and
    /// the queue is written.
    pub fn spawn(
        store: Arc<dyn Store>,
        sessions: Arc<dyn crate::sessions::SessionStore>,
        call_id: i64,
        db: DbMetrics,
    ) -> (Writer, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Write>();
        let handle = tokio::spawn(async move {
            while let Some(write) = rx.recv().await {
                if let Write::Snapshot(v) = &write {
                    let ttl = std::time::Duration::from_secs(3600);
                    if let Err(e) = sessions.put(&call_id.to_string(), v, ttl).await {
                        tracing::warn!(call_id, error = %e, "session snapshot not published");
                    }
                    continue;
                }
                for attempt in 1..=3 {
                    let result = match &write {
                        Write::Turn(t) => db.time("add_turn", store.add_turn(t, Utc::now())).await,
                        Write::Outcome {
                            intent,
                            qualification,
                            summary,
                            at,
                        } => {
                            let write = store.record_call_outcome(
                                call_id,
                                intent,
                                qualification,
                                summary.as_deref(),
                                *at,
                            );
                            db.time("record_call_outcome", write).await
                        }
                        Write::Callback { lead_id, at, now } => {
                            let write = store.set_lead_callback(*lead_id, *at, *now);
                            db.time("set_lead_callback", write).await
                        }
                        Write::Usage(u) => store.add_call_usage(call_id, u).await,
                        Write::Snapshot(_) => Ok(()),
                    };
                    match result {
                        Ok(()) => break,
                        Err(e) if attempt < 3 => {
                            tracing::warn!(call_id, error = %e, attempt, "call write failed; retrying");
                            tokio::time::sleep(std::time::Duration::from_millis(100 * attempt))
                                .await;
                        }
                        Err(e) => tracing::error!(call_id, error = %e, ?write, "call write lost"),
                    }
                }
            }
        });
        (Writer { tx }, handle)
    }

    /// A writer whose writes come out of the returned receiver instead of reaching a store:
    /// for tests of the call pipeline over in-memory doubles.
    pub fn detached() -> (Writer, mpsc::UnboundedReceiver<Write>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Writer { tx }, rx)
    }

    pub fn send(&self, write: Write) {
        if self.tx.send(write).is_err() {
            tracing::error!("call writer is gone; write dropped");
        }
    }
}
