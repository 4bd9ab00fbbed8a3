//! voice-agent: outbound AI phone-call campaigns.
//!
//! Start at `docs/ARCHITECTURE.md`. Modules by domain:
//! - [`campaigns`]: campaign configuration, status machine, lead import (REST);
//! - [`dialer`]: who is called when (do-not-call list; scheduler to come);
//! - [`store`]: persistence, SQLite or PostgreSQL behind one trait;
//! - [`sessions`]: live-call state shared across instances (memory or Redis);
//! - [`startup`], [`api`], [`error`], [`config`], [`telemetry`]: the service around them.

pub mod api;
pub mod campaigns;
pub mod cli;
pub mod config;
pub mod dialer;
pub mod error;
pub mod phone;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod telemetry;
