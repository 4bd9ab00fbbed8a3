//! The API contract suite: one binary, every test run against SQLite and PostgreSQL.

mod browser;
mod helpers;

mod analytics;
mod campaign_modes;
mod campaigns;
mod deploy;
mod dial_rate;
mod dialer;
mod dnc;
mod exports;
mod hardening;
mod hardening_ops;
mod health_and_auth;
mod import;
mod live_call;
mod live_reports;
mod metrics;
mod multi_instance;
mod observability;
mod openapi;
mod openapi_bodies;
mod outbound_webhooks;
mod route_scan;
mod sessions;
mod slots;
mod tallies;
mod traces;
mod ui;
mod ui_assets;
mod webhooks;
