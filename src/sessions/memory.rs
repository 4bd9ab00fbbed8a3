//! In-process sessions for a single instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use super::{SessionResult, SessionStore};

/// A std `Mutex` (not tokio's): it is never held across an `.await`, and every critical section
/// is a map operation.
#[derive(Default)]
pub struct MemorySessions {
    entries: Mutex<HashMap<String, (Value, Instant)>>,
}

impl MemorySessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Value, Instant)>> {
        // A panic while holding the lock cannot leave a map half-updated; keep serving.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemorySessions {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> SessionResult<()> {
        Ok(())
    }

    async fn put(&self, id: &str, value: &Value, ttl: Duration) -> SessionResult<()> {
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, (_, expires)| *expires > now);
        map.insert(id.to_string(), (value.clone(), now + ttl));
        Ok(())
    }

    async fn get(&self, id: &str) -> SessionResult<Option<Value>> {
        let map = self.lock();
        Ok(map
            .get(id)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(v, _)| v.clone()))
    }

    async fn remove(&self, id: &str) -> SessionResult<()> {
        self.lock().remove(id);
        Ok(())
    }

    async fn list(&self) -> SessionResult<Vec<(String, Value)>> {
        let now = Instant::now();
        let mut out: Vec<(String, Value)> = self
            .lock()
            .iter()
            .filter(|(_, (_, expires))| *expires > now)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
