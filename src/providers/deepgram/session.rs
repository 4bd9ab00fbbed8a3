//! The live STT session of one call: a handle the call task owns ([`SttSession`]), a stream of
//! events ([`SttEvents`]) and one worker task that owns the socket (see [`super::worker`]).
//!
//! Why a worker: the call's audio path must never wait on the network, so `send_audio` only
//! queues (bounded; a full queue drops the frame and says so) and returns at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

use super::events::{Metadata, SttEvent};
use super::tuning::SessionTuning;
use super::worker::{Command, Counters, Worker};
use super::{Dialer, ListenOptions, SttError, Ws};

/// The call task's handle: all methods return at once except [`SttSession::close`].
/// Dropping it ends the session.
#[derive(Debug)]
pub struct SttSession {
    commands: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    close_timeout: Duration,
}

/// Events of a session, in order; ends after [`SttEvent::Closed`].
#[derive(Debug)]
pub struct SttEvents(mpsc::UnboundedReceiver<SttEvent>);

impl SttEvents {
    pub async fn recv(&mut self) -> Option<SttEvent> {
        self.0.recv().await
    }

    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<SttEvent>> {
        self.0.poll_recv(cx)
    }
}

impl SttSession {
    /// Queues one audio frame. Never waits; empty frames are skipped (one would end the stream).
    pub fn send_audio(&self, frame: Bytes) -> Result<(), SttError> {
        if frame.is_empty() {
            return Ok(());
        }
        self.try_send(Command::Audio(frame))
    }

    /// Asks Deepgram to finalise what it has heard now (answers carry `from_finalize`).
    pub fn finalize(&self) -> Result<(), SttError> {
        self.try_send(Command::Finalize)
    }

    /// Sends `CloseStream` after the queued audio, waits for the last results and `Metadata`
    /// (bounded by `close_timeout`), and ends the session.
    pub async fn close(&self) -> Result<Option<Metadata>, SttError> {
        let (reply, answer) = oneshot::channel();
        let wait = self.close_timeout + Duration::from_secs(1);
        timeout(wait, self.commands.send(Command::Close(reply)))
            .await
            .map_err(|_| SttError::CloseTimeout(wait))?
            .map_err(|_| SttError::SessionEnded)?;
        match timeout(wait, answer).await {
            Ok(Ok(metadata)) => Ok(metadata),
            Ok(Err(_)) => Err(SttError::SessionEnded),
            Err(_) => Err(SttError::CloseTimeout(wait)),
        }
    }

    /// Connections re-opened after a drop.
    pub fn reconnects(&self) -> u32 {
        self.counters.reconnects.load(Ordering::Relaxed)
    }

    /// Frames refused because the queue was full.
    pub fn dropped_frames(&self) -> u64 {
        self.counters.dropped_frames.load(Ordering::Relaxed)
    }

    fn try_send(&self, command: Command) -> Result<(), SttError> {
        self.commands.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.counters.dropped_frames.fetch_add(1, Ordering::Relaxed);
                SttError::QueueFull
            }
            mpsc::error::TrySendError::Closed(_) => SttError::SessionEnded,
        })
    }
}

pub(super) fn start(
    ws: Ws,
    dialer: Dialer,
    options: &ListenOptions,
    tuning: SessionTuning,
) -> (SttSession, SttEvents) {
    let (commands, commands_rx) = mpsc::channel(tuning.audio_queue_frames.max(1));
    // Unbounded on purpose: the server's message rate is small and bounded, and a slow reader
    // must not stop the worker from draining audio.
    let (events_tx, events) = mpsc::unbounded_channel();
    let counters = Arc::new(Counters::default());
    let worker = Worker::new(
        dialer,
        options,
        tuning.clone(),
        commands_rx,
        events_tx,
        counters.clone(),
    );
    tokio::spawn(worker.run(ws));
    let session = SttSession {
        commands,
        counters,
        close_timeout: tuning.close_timeout,
    };
    (session, SttEvents(events))
}
