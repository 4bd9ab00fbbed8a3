//! The session store contract, on memory and on a real Redis.

use std::time::Duration;

use serde_json::json;
use voice_agent::sessions::{MemorySessions, RedisSessions, SessionStore};

use crate::helpers::{redis_url, skip_or_fail};

async fn redis_store() -> Option<RedisSessions> {
    let prefix = format!("va-test-{}", uuid::Uuid::new_v4().simple());
    match RedisSessions::connect(&redis_url(), &prefix).await {
        Ok(s) => Some(s),
        Err(e) => {
            skip_or_fail("redis", &e.to_string());
            None
        }
    }
}

/// The ids the store lists, in its order.
async fn listed_ids(store: &dyn SessionStore) -> Vec<String> {
    store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

async fn put_get_list_remove(store: &dyn SessionStore) {
    let ttl = Duration::from_secs(60);
    store
        .put("call-2", &json!({"state": "listening"}), ttl)
        .await
        .unwrap();
    store
        .put("call-1", &json!({"state": "speaking", "turn": 3}), ttl)
        .await
        .unwrap();
    assert_eq!(
        store.get("call-1").await.unwrap(),
        Some(json!({"state": "speaking", "turn": 3}))
    );
    assert_eq!(store.get("missing").await.unwrap(), None);
    let ids = listed_ids(store).await;
    assert_eq!(ids, ["call-1", "call-2"]);
    store
        .put("call-1", &json!({"state": "ended"}), ttl)
        .await
        .unwrap();
    assert_eq!(
        store.get("call-1").await.unwrap().unwrap()["state"],
        "ended"
    );
    store.remove("call-1").await.unwrap();
    assert_eq!(store.get("call-1").await.unwrap(), None);
    assert_eq!(store.list().await.unwrap().len(), 1);
}

async fn entries_expire(store: &dyn SessionStore) {
    store
        .put("short", &json!({}), Duration::from_millis(100))
        .await
        .unwrap();
    store
        .put("long", &json!({}), Duration::from_secs(60))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(store.get("short").await.unwrap(), None);
    let ids = listed_ids(store).await;
    assert_eq!(ids, ["long"]);
}

#[tokio::test]
async fn memory_put_get_list_remove() {
    put_get_list_remove(&MemorySessions::default()).await;
}

#[tokio::test]
async fn memory_entries_expire() {
    entries_expire(&MemorySessions::default()).await;
}

#[tokio::test]
async fn redis_put_get_list_remove() {
    if let Some(store) = redis_store().await {
        put_get_list_remove(&store).await;
    }
}

#[tokio::test]
async fn redis_entries_expire() {
    if let Some(store) = redis_store().await {
        entries_expire(&store).await;
    }
}

#[tokio::test]
async fn redis_instances_share_sessions() {
    let Some(a) = redis_store().await else { return };
    // A second connection with the same prefix stands for another instance of the service.
    let prefix = a.prefix().to_string();
    let b = RedisSessions::connect(&redis_url(), &prefix).await.unwrap();
    a.put("call-9", &json!({"instance": "a"}), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        b.get("call-9").await.unwrap(),
        Some(json!({"instance": "a"}))
    );
    b.remove("call-9").await.unwrap();
    assert_eq!(a.list().await.unwrap().len(), 0);
}
