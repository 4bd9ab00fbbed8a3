//! Live-call session state, visible to every instance: in memory by default, in Redis when
//! `REDIS_URL` is set (several instances behind one carrier number need a shared view, so a
//! webhook or a debug request landing on any instance can see a call another instance holds).
//!
//! Entries are small JSON snapshots written by the call task; each has a time-to-live so a
//! crashed instance's calls disappear on their own. The call task remains the owner of the live
//! state: this store is a published view, never a lock.

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

pub use self::memory::MemorySessions;
pub use self::redis::RedisSessions;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("stored session is not JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
}

pub type SessionResult<T> = Result<T, SessionError>;

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// `memory` or `redis`.
    fn kind(&self) -> &'static str;
    async fn ping(&self) -> SessionResult<()>;
    /// Writes (or replaces) a session snapshot that expires after `ttl` unless written again.
    async fn put(&self, id: &str, value: &Value, ttl: Duration) -> SessionResult<()>;
    async fn get(&self, id: &str) -> SessionResult<Option<Value>>;
    async fn remove(&self, id: &str) -> SessionResult<()>;
    /// Every live (unexpired) session, as `(id, snapshot)`.
    async fn list(&self) -> SessionResult<Vec<(String, Value)>>;
}

/// Memory unless a Redis URL is given.
pub async fn connect(redis_url: Option<&str>) -> SessionResult<std::sync::Arc<dyn SessionStore>> {
    Ok(match redis_url {
        Some(url) => std::sync::Arc::new(RedisSessions::connect(url, "va").await?),
        None => std::sync::Arc::new(MemorySessions::default()),
    })
}
