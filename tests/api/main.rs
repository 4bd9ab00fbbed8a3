//! The API contract suite: one binary, every test run against SQLite and PostgreSQL.

mod browser;
mod helpers;

mod campaigns;
mod dialer;
mod dnc;
mod health_and_auth;
mod import;
mod live_call;
mod multi_instance;
mod sessions;
mod ui;
mod ui_assets;
mod webhooks;
