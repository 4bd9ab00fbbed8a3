//! The API contract suite: one binary, every test run against SQLite and PostgreSQL.

mod helpers;

mod campaigns;
mod dialer;
mod dnc;
mod health_and_auth;
mod import;
mod live_call;
mod metrics;
mod multi_instance;
mod sessions;
mod webhooks;
