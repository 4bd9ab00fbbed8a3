//! The delivery loop: claims due outbox rows (any instance may run it: a claim is a lease, and
//! PostgreSQL rows are selected `FOR UPDATE SKIP LOCKED`), POSTs each body signed, and records
//! the result: delivered on 2xx; otherwise retried after 1, 3, 12, 60, 180 and then 360 times
//! `WEBHOOK_RETRY_BASE_MS` until `WEBHOOK_MAX_ATTEMPTS`, then `failed`.
//!
//! Written as [`Deliverer::run_once`] (one pass at a given instant, what tests drive) and a thin
//! [`Deliverer::run`] loop that stops on shutdown. Never logs the URL (it may carry a token).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::WebhookSettings;
use crate::startup::AppState;
use crate::store::{AttemptResult, Store, StoreResult, WebhookDelivery};
use crate::urls::UrlPolicy;

/// Deliveries sent at once by one pass.
const BATCH: i64 = 20;
/// Retry delays as multiples of the base; the last one repeats.
const BACKOFF: [u32; 6] = [1, 3, 12, 60, 180, 360];

pub const SIGNATURE_HEADER: &str = "X-VoiceAgent-Signature";
pub const TIMESTAMP_HEADER: &str = "X-VoiceAgent-Timestamp";

/// The wait before the next attempt after `failures` failed ones (`failures >= 1`).
pub fn retry_delay(base: Duration, failures: u32) -> Duration {
    let index = (failures.max(1) as usize - 1).min(BACKOFF.len() - 1);
    base * BACKOFF[index]
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`: the timestamp is signed with the
/// body so a captured request cannot be replayed later with a fresh timestamp.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> Option<String> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("sha256={hex}"))
}

/// The body as sent: the stored payload with `transcript_url` added. Deterministic (sorted keys),
/// so every attempt sends the same bytes.
pub fn render_body(d: &WebhookDelivery, base_url: &str) -> String {
    match serde_json::from_str::<Value>(&d.payload) {
        Ok(Value::Object(mut map)) => {
            if let Some(call_id) = d.call_id {
                map.insert(
                    "transcript_url".into(),
                    Value::String(format!("{base_url}/calls/{call_id}/transcript")),
                );
            }
            Value::Object(map).to_string()
        }
        // Not an object (never written so): send it as stored.
        _ => d.payload.clone(),
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOutcome {
    pub claimed: usize,
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

pub struct Deliverer {
    store: Arc<dyn Store>,
    /// Resolves through the URL policy: an internal address is refused at every attempt.
    http: reqwest::Client,
    policy: UrlPolicy,
    settings: WebhookSettings,
    base_url: String,
    clock: Clock,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Deliverer {
    pub fn new(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            http: state.outside_http.clone(),
            policy: UrlPolicy::new(state.settings.allow_private_urls),
            settings: state.settings.webhooks.clone(),
            base_url: state.settings.our_base_url.clone(),
            clock: state.clock.clone(),
            metrics: state.metrics.clone(),
        }
    }

    /// Sends every delivery due at `now` (up to one batch) and records the results.
    pub async fn run_once(&self, now: DateTime<Utc>) -> StoreResult<PassOutcome> {
        // Longer than any attempt can take, so a live claim is never taken over.
        let lease = now
            + chrono::Duration::from_std(self.settings.timeout * 2).unwrap_or_default()
            + chrono::Duration::seconds(30);
        let claimed = self.store.claim_webhooks(now, lease, BATCH).await?;
        let mut out = PassOutcome {
            claimed: claimed.len(),
            ..PassOutcome::default()
        };
        let results = futures::future::join_all(claimed.iter().map(|d| self.attempt(d))).await;
        for (d, result) in claimed.iter().zip(results) {
            let result = self.judge(d, result);
            use crate::metrics::WebhookResult as R;
            let kind = match &result {
                AttemptResult::Delivered { .. } => {
                    out.delivered += 1;
                    R::Delivered
                }
                AttemptResult::Failed { retry_at: None, .. } => {
                    out.failed += 1;
                    R::Failed
                }
                AttemptResult::Failed { .. } => {
                    out.retrying += 1;
                    R::Retrying
                }
            };
            self.metrics.webhooks.attempt(kind);
            self.store
                .finish_webhook_attempt(d.id, d.attempts, &result, self.clock.now())
                .await?;
        }
        Ok(out)
    }

    /// Retry or give up, from the attempt's result and the attempts made.
    fn judge(&self, d: &WebhookDelivery, result: Result<u16, String>) -> AttemptResult {
        let (status_code, error) = match result {
            Ok(code) if (200..300).contains(&code) => {
                tracing::info!(
                    delivery_id = d.id,
                    call_id = d.call_id,
                    attempt = d.attempts,
                    "webhook delivered"
                );
                return AttemptResult::Delivered {
                    status_code: code as i32,
                };
            }
            Ok(code) => (Some(code as i32), format!("receiver answered {code}")),
            Err(e) => (None, e),
        };
        let retry_at = (d.attempts < self.settings.max_attempts as i32).then(|| {
            let wait = retry_delay(self.settings.retry_base, d.attempts as u32);
            self.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default()
        });
        tracing::warn!(delivery_id = d.id, call_id = d.call_id, attempt = d.attempts, %error,
            gave_up = retry_at.is_none(), "webhook delivery failed");
        AttemptResult::Failed {
            status_code,
            error,
            retry_at,
        }
    }

    /// One POST; the status code, or why there was none.
    async fn attempt(&self, d: &WebhookDelivery) -> Result<u16, String> {
        if d.attempts > self.settings.max_attempts as i32 {
            // Re-claimed after its last attempt's lease ran out (the sender died).
            return Err("no attempt left".into());
        }
        // A literal address never reaches the resolver: checked here. A name is checked by the
        // client's resolver, on the addresses it connects to.
        if let Err(e) = self.policy.check_target(&d.url) {
            return Err(format!("webhook_url {e}"));
        }
        let body = render_body(d, &self.base_url);
        let timestamp = self.clock.now().timestamp();
        let mut request = self
            .http
            .post(&d.url)
            .timeout(self.settings.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, "voice-agent-webhooks/1")
            .header("X-VoiceAgent-Event", &d.event)
            .header("X-VoiceAgent-Delivery", d.id.to_string())
            .header(TIMESTAMP_HEADER, timestamp.to_string());
        if let Some(secret) = &self.settings.signing_secret {
            let signed = signature(secret.expose().as_bytes(), timestamp, &body)
                .ok_or("cannot sign the body")?;
            request = request.header(SIGNATURE_HEADER, signed);
        }
        match request.body(body).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            // Without the URL: it may carry the receiver's token.
            Err(e) => Err(crate::urls::error_chain(&e.without_url())),
        }
    }

    /// Passes every `WEBHOOK_POLL_MS` until `shutdown`; a full batch is followed by another pass
    /// at once, so a backlog drains quickly.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            while !shutdown.is_cancelled() {
                match self.run_once(self.clock.now()).await {
                    Ok(pass) if pass.claimed as i64 == BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "webhook delivery pass failed");
                        break;
                    }
                }
            }
        }
        tracing::info!("webhook delivery stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_repeats() {
        let base = Duration::from_secs(10);
        let waits: Vec<u64> = (1..=8).map(|n| retry_delay(base, n).as_secs()).collect();
        assert_eq!(waits, [10, 30, 120, 600, 1800, 3600, 3600, 3600]);
    }

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Expected value from Python: hmac.new(b"Jefe", b"1700000000.{}", sha256).hexdigest()
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, "{}").unwrap(),
            "sha256=d3793e2b4103edfbd98cc19591832f5fad701d413db9fcae0ae7dab8184ed207"
        );
        assert_ne!(
            signature(b"Jefe", 1_700_000_001, "{}"),
            signature(b"Jefe", 1_700_000_000, "{}")
        );
    }
}
