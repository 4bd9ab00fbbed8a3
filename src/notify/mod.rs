//! Outbound webhooks: the operator's `webhook_url` hears `call.completed` once per finished
//! call, signed, and retried until it answers 2xx.
//!
//! Durable by construction: the event is a database row (`outbox`) written when the call is
//! settled, and a delivery loop (`deliver`) sends due rows, so a restart or a receiver outage
//! loses nothing. This module must not touch the live call or the dialer's decisions; they only
//! tell it that a call was settled.

pub mod api;
pub mod deliver;
pub mod outbox;

pub use deliver::Deliverer;
pub use outbox::{MEDIA_GRACE, call_finished};
