//! The service's protective limits: the HTTP listener's connection cap and timeouts, how long
//! a request waits on the database, which URLs the service may be pointed at, and the largest
//! text each input field may carry.
//!
//! The listener and database limits are variables (an operator tunes them to the machine); the
//! field sizes are constants here (they are part of the API's contract, listed in the README
//! and enforced by [`crate::text`]).

use std::time::Duration;

use super::{ConfigError, invalid, parse_or};

/// The HTTP listener (`crate::server`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Open client connections at most (WebSockets included). The listener also never goes
    /// above a quarter of the process's file-descriptor limit, so outbound sockets (database,
    /// providers) always find descriptors.
    pub max_connections: usize,
    /// A connection must have sent a request's complete headers this long after it opened or
    /// after its previous response, or it is closed: slow or idle clients cannot hold a
    /// connection (and its descriptor) for ever. Also the keep-alive idle timeout.
    pub header_timeout: Duration,
    /// The longest a request may take to produce its response (503 `unavailable` past it),
    /// which also bounds a request whose body stops arriving. Not applied to the carrier's
    /// `/media` WebSocket (a call) nor to CSV uploads ([`Self::upload_timeout`]).
    pub request_timeout: Duration,
    /// The same bound for `POST /campaigns/{id}/upload-csv` (large files on slow links).
    pub upload_timeout: Duration,
    /// On SIGTERM, in-flight requests get this long to finish; connections still open then
    /// (a client holding a half-sent request) are dropped, so shutdown always completes.
    pub drain: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(600),
            drain: Duration::from_secs(10),
        }
    }
}

/// `var` parsed, `default` when unset, and within `range`.
fn in_range<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let value = parse_or(get, var, default)?;
    if !range.contains(&value) {
        return Err(invalid(
            var,
            format!("must be between {} and {}", range.start(), range.end()),
        ));
    }
    Ok(value)
}

pub(super) fn parse_http(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<HttpSettings, ConfigError> {
    let d = HttpSettings::default();
    let ms =
        |var, default, range| in_range::<u64>(get, var, default, range).map(Duration::from_millis);
    Ok(HttpSettings {
        max_connections: in_range(
            get,
            "HTTP_MAX_CONNECTIONS",
            d.max_connections,
            16..=1_000_000,
        )?,
        header_timeout: ms("HTTP_HEADER_TIMEOUT_MS", 10_000, 50..=600_000)?,
        request_timeout: ms("HTTP_REQUEST_TIMEOUT_MS", 30_000, 50..=3_600_000)?,
        upload_timeout: Duration::from_secs(in_range(
            get,
            "CSV_UPLOAD_TIMEOUT_SECS",
            600,
            1..=86_400,
        )?),
        drain: ms("SHUTDOWN_DRAIN_MS", 10_000, 0..=600_000)?,
    })
}

/// `DB_ACQUIRE_TIMEOUT_MS`: the longest a request waits for a database connection (and, on
/// SQLite, for the write lock) before it answers 503 `unavailable`. Short, so an outage fails
/// requests fast instead of holding them.
pub(super) fn parse_db_wait(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Duration, ConfigError> {
    in_range(get, "DB_ACQUIRE_TIMEOUT_MS", 3_000, 50..=120_000).map(Duration::from_millis)
}

/// `ALLOW_PRIVATE_URLS`: lets webhook URLs (and other URLs the service fetches) point at
/// loopback, private and link-local addresses. Off by default (a campaign's `webhook_url` could
/// otherwise reach the cloud metadata service or internal hosts); the demo and local tests with
/// a receiver on the same machine turn it on.
pub(super) fn parse_allow_private(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<bool, ConfigError> {
    parse_or(get, "ALLOW_PRIVATE_URLS", false)
}

/// Largest text per input field, in characters (Unicode scalar values). Text over its limit
/// is refused with 422 naming the field; so is any text with a NUL character.
pub mod fields {
    /// Campaign `name`.
    pub const CAMPAIGN_NAME: usize = 200;
    /// Campaign `instructions` (the system prompt sent to the model on every turn).
    pub const INSTRUCTIONS: usize = 20_000;
    /// Campaign `greeting` (spoken by TTS).
    pub const GREETING: usize = 1_000;
    /// A qualification field's `description`.
    pub const FIELD_DESCRIPTION: usize = 500;
    /// `language`, `timezone`, `voice_id` and weekday names.
    pub const SHORT: usize = 100;
    /// A URL (`webhook_url`, the carrier's `RecordingUrl`).
    pub const URL: usize = 2_048;
    /// A do-not-call `reason`.
    pub const DNC_REASON: usize = 500;
    /// A lead's name from a CSV.
    pub const LEAD_NAME: usize = 200;
    /// A lead attribute's value from a CSV (any other column).
    pub const LEAD_ATTRIBUTE: usize = 1_000;
    /// A CSV header name (an attribute's key).
    pub const CSV_HEADER: usize = 64;
    /// The carrier's identifiers (`CallSid`, `CustomField`, stream ids).
    pub const CARRIER_ID: usize = 128;
    /// The carrier's short free-text fields (`Status`, `EventType`, `AnsweredBy`, times).
    pub const CARRIER_TEXT: usize = 64;
    /// The longest `ConversationDuration` accepted, in seconds (a day).
    pub const MAX_CONVERSATION_SECS: i64 = 86_400;
    /// Body of the carrier's status callback, in bytes (Exotel's are well under 4 KiB).
    pub const STATUS_CALLBACK_BYTES: usize = 64 * 1024;
}
