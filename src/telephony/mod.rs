//! The carrier side: Exotel's status webhooks (and, with the live-call issue, the `/media`
//! WebSocket).

pub mod carrier;
pub mod webhook;
