//! The carrier's media socket, owned by the call task itself.
//!
//! Frames are parsed where they are read and encoded where they are sent, inside the call
//! task: a caller frame crosses no channel and an agent frame wakes no writer task. The bench's
//! profile put half of the service's CPU in wake-ups and socket calls, and a reader and a writer
//! task per call were two of the hops (and two 256-slot queues of each call's memory).
//!
//! [`CarrierRx`] stays a local of the call loop (its `recv` is one `select!` branch);
//! [`CarrierTx`] is a field of the call, since barge-in and hang-up send from handlers.

use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::Message as WsMessage;
use futures::{Sink, SinkExt, Stream, StreamExt};

use crate::telephony::carrier::{CarrierCommand, CarrierEvent, CarrierProtocol};

/// How long one send may wait on a carrier that does not read. Audio is paced at real time with
/// a short lead, so a healthy socket never fills; one that stays full is a call that is gone,
/// and the call loop must not stall behind it (its timers, STT and hang-up keep running).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The socket's read half: the `/media` WebSocket's, or a test's channel.
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<WsMessage, axum::Error>> + Send>>;
/// The socket's write half.
pub type FrameSink = Pin<Box<dyn Sink<WsMessage, Error = axum::Error> + Send>>;

/// The read half: carrier events, parsed as they arrive.
pub struct CarrierRx {
    stream: FrameStream,
    protocol: &'static dyn CarrierProtocol,
}

/// The write half: commands encoded for the stream and written at once.
pub struct CarrierTx {
    sink: FrameSink,
    protocol: &'static dyn CarrierProtocol,
    stream_sid: String,
    /// A send failed or timed out: the carrier is gone and later sends fail at once.
    broken: bool,
}

/// The carrier socket's link error: the socket failed, timed out or was closed.
#[derive(Debug, thiserror::Error)]
#[error("carrier socket is gone")]
pub struct LinkClosed;

/// Splits a started carrier socket into the call's two halves (boxed once, at set-up: a send or
/// a read allocates nothing).
pub fn link(
    sink: FrameSink,
    stream: FrameStream,
    protocol: &'static dyn CarrierProtocol,
    stream_sid: String,
) -> (CarrierRx, CarrierTx) {
    (
        CarrierRx { stream, protocol },
        CarrierTx {
            sink,
            protocol,
            stream_sid,
            broken: false,
        },
    )
}

impl CarrierRx {
    /// The next event; `None` once the socket is closed or failed. Cancel-safe: a frame is
    /// consumed only when it is returned (or ignored: pings, unknown events).
    pub async fn recv(&mut self) -> Option<CarrierEvent> {
        loop {
            match self.stream.next().await? {
                Ok(WsMessage::Text(t)) => {
                    if let Some(event) = self.protocol.parse(t.as_str()) {
                        return Some(event);
                    }
                }
                Ok(WsMessage::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

impl CarrierTx {
    /// Encodes and writes one command, waiting at most [`SEND_TIMEOUT`].
    pub async fn send(&mut self, command: &CarrierCommand) -> Result<(), LinkClosed> {
        if self.broken {
            return Err(LinkClosed);
        }
        let text = self.protocol.encode(command, &self.stream_sid);
        match tokio::time::timeout(SEND_TIMEOUT, self.sink.send(WsMessage::Text(text.into()))).await
        {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.broken = true;
                Err(LinkClosed)
            }
        }
    }

    /// The carrier, for the metrics' labels.
    pub fn provider(&self) -> crate::voice::Provider {
        self.protocol.provider()
    }

    /// Closes the socket, which hangs up on Exotel.
    pub async fn close(&mut self) {
        if !self.broken {
            let _ = tokio::time::timeout(SEND_TIMEOUT, self.sink.close()).await;
            self.broken = true;
        }
    }
}
