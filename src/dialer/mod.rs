//! The campaign engine: who is called when. This session holds the do-not-call list; the
//! scheduler, carrier client, webhooks and reconciler come with the dialer issue.

pub mod api;
