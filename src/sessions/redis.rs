//! Sessions in Redis, shared by every instance.
//!
//! Layout: `{prefix}:session:{id}` holds the JSON snapshot with an expiry; the set
//! `{prefix}:sessions` indexes ids so listing needs no `KEYS`/`SCAN` over the whole database.
//! Ids whose snapshot has expired are pruned from the index when listed.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde_json::Value;

use super::{SessionError, SessionResult, SessionStore};

const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisSessions {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisSessions {
    /// Connects (failing within a few seconds if Redis is unreachable). `prefix` namespaces the
    /// keys, so tests and several deployments can share one Redis.
    pub async fn connect(url: &str, prefix: &str) -> SessionResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let conn = tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| SessionError::Timeout(TIMEOUT * 2))??;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, id: &str) -> String {
        format!("{}:session:{id}", self.prefix)
    }

    fn index(&self) -> String {
        format!("{}:sessions", self.prefix)
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> SessionResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    async fn put(&self, id: &str, value: &Value, ttl: Duration) -> SessionResult<()> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(self.key(id))
            .arg(value.to_string())
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .ignore()
            .cmd("SADD")
            .arg(self.index())
            .arg(id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> SessionResult<Option<Value>> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.key(id))
            .query_async(&mut conn)
            .await?;
        Ok(raw.map(|s| serde_json::from_str(&s)).transpose()?)
    }

    async fn remove(&self, id: &str) -> SessionResult<()> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(self.key(id))
            .ignore()
            .cmd("SREM")
            .arg(self.index())
            .arg(id)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn list(&self) -> SessionResult<Vec<(String, Value)>> {
        let mut conn = self.conn.clone();
        let mut ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.index())
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok(vec![]);
        }
        ids.sort();
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        let values: Vec<Option<String>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(ids.len());
        let mut expired = Vec::new();
        for (id, value) in ids.into_iter().zip(values) {
            match value {
                Some(v) => out.push((id, serde_json::from_str(&v)?)),
                None => expired.push(id),
            }
        }
        if !expired.is_empty() {
            redis::cmd("SREM")
                .arg(self.index())
                .arg(&expired)
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(out)
    }
}
