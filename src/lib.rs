//! voice-agent: outbound AI phone-call campaigns.
//!
//! Start at `docs/ARCHITECTURE.md`. Modules by domain:
//! - [`campaigns`]: campaign configuration, status machine, lead import (REST);
//! - [`dialer`]: who is called when (do-not-call list; scheduler to come);
//! - [`store`]: persistence, SQLite or PostgreSQL behind one trait;
//! - [`providers`]: real clients of Exotel, Deepgram, OpenAI, ElevenLabs;
//! - [`emulators`]: local doubles of those services (tests, demo, bench; never used by the product);
//! - [`agent`]: the conversation logic;
//! - [`voice`]: the ports the live call speaks to (STT, TTS), which the vendors implement;
//! - [`sessions`]: live-call state shared across instances (memory or Redis);
//! - [`notify`]: outbound webhooks to the operator (outbox and delivery loop);
//! - [`reports`]: analytics, the dashboard, CSV export and transcripts (read-only);
//! - [`ui`]: the operator dashboard at `/ui` (static files compiled in);
//! - [`openapi`]: the OpenAPI document (`/openapi.json`) and its page (`/docs`);
//! - [`startup`], [`api`], [`auth`], [`error`], [`config`], [`telemetry`], [`metrics`]: the service
//!   around them.

pub mod agent;
pub mod api;
pub mod auth;
pub mod bench;
pub mod campaigns;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod dialer;
pub mod emulators;
pub mod error;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod pcm;
pub mod phone;
pub mod providers;
pub mod reports;
pub mod server;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod telephony;
pub mod text;
pub mod tls;
pub mod ui;
pub mod urls;
pub mod voice;
