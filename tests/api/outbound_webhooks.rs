//! Outbound webhooks: `call.completed` to a campaign's `webhook_url`, signed, retried with
//! backoff until a real local receiver acks, or marked failed; one delivery per event even with
//! two instances sending.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use voice_agent::config::Secret;
use voice_agent::notify::Deliverer;

use crate::dialer::{Rig, leads, rig, running_campaign, silent};
use crate::helpers::{Backend, error_code, eventually, fresh_postgres_url, spawn_app_at};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
}

/// A webhook receiver on port 0: answers the scripted statuses in order, then `then`.
pub struct Receiver {
    pub url: String,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn spawn(script: Vec<u16>, then: u16) -> Receiver {
        #[derive(Clone)]
        struct Shared {
            seen: Arc<Mutex<Vec<Received>>>,
            script: Arc<Mutex<VecDeque<u16>>>,
            then: u16,
        }
        async fn hook(State(s): State<Shared>, headers: HeaderMap, body: String) -> StatusCode {
            s.seen.lock().unwrap().push(Received { headers, body });
            let code = s.script.lock().unwrap().pop_front().unwrap_or(s.then);
            StatusCode::from_u16(code).unwrap()
        }
        let shared = Shared {
            seen: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
            then,
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?token=abc", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url,
            seen: shared.seen,
        }
    }

    pub fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

fn header<'a>(r: &'a Received, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks `X-VoiceAgent-Signature` the way a receiver would.
fn signature_verifies(r: &Received, secret: &str) -> bool {
    let (Some(ts), Some(sig)) = (
        header(r, "x-voiceagent-timestamp"),
        header(r, "x-voiceagent-signature"),
    ) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{}", r.body).as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sig == format!("sha256={expected}")
}

/// A running campaign with one dialled lead: (campaign, call id, carrier sid, status URL).
async fn dialled(rig: &Rig, body: Value) -> (i64, i64, String, String) {
    crate::dialer::dialled(rig, body, "phone,name\n9876543210,Asha\n").await
}

async fn deliveries(rig: &Rig, campaign: i64) -> Vec<Value> {
    let v: Value = rig
        .app
        .get_json(&format!("/campaigns/{campaign}/webhook-deliveries"))
        .await;
    v["deliveries"].as_array().unwrap().clone()
}

const SIGNING_SECRET: &str = "whsec-test-0123456789abcdef";

crate::on_each_backend!(
    failing_receiver_gets_the_same_signed_body_until_it_acks,
    receiver_that_never_acks_ends_failed_after_max_attempts,
    a_call_over_before_its_summary_waits_for_it_or_for_the_grace,
);

async fn failing_receiver_gets_the_same_signed_body_until_it_acks(backend: Backend) {
    let receiver = Receiver::spawn(vec![500, 500], 200).await;
    let Some(rig) = rig(backend, silent(), |s| {
        s.webhooks.signing_secret = Some(Secret::new(SIGNING_SECRET));
        s.webhooks.retry_base = Duration::from_millis(20);
        s.webhooks.poll = Duration::from_millis(20);
    })
    .await
    else {
        return;
    };
    // The real loop, stopped with the app.
    let state = &rig.app.state;
    let deliverer = Arc::new(Deliverer::new(state));
    state.tasks.spawn(deliverer.run(state.shutdown.clone()));
    let body = json!({"name": "Hooked", "webhook_url": receiver.url,
        "qualification_fields": [{"name": "budget"}]});
    let (campaign, call_id, sid, status_url) = dialled(&rig, body).await;
    let lead_id = leads(&rig.app, campaign).await[0]["id"].as_i64().unwrap();
    let mut q = serde_json::Map::new();
    q.insert("budget".into(), json!("2 lakh"));
    state
        .store
        .record_call_outcome(
            call_id,
            "interested",
            &q,
            Some("Wants a site visit"),
            state.clock.now(),
        )
        .await
        .unwrap();
    assert!(
        deliveries(&rig, campaign).await.is_empty(),
        "nothing is sent while the call is active"
    );

    let res = rig
        .app
        .post_json(
            &status_url,
            json!({"CallSid": sid, "Status": "completed", "EventType": "terminal",
                "ConversationDuration": "42", "RecordingUrl": "https://rec.example/1.mp3"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let delivery = eventually(20, "delivered", || async {
        let d = deliveries(&rig, campaign).await;
        (d.len() == 1 && d[0]["status"] == "delivered").then(|| d[0].clone())
    })
    .await;

    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["last_status_code"], 200);
    assert!(delivery["last_error"].is_null());
    assert!(delivery["delivered_at"].is_string());
    assert_eq!(delivery["event"], "call.completed");
    assert_eq!(delivery["call_id"], call_id);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3, "two failures, then the ack");
    for r in &seen {
        assert!(signature_verifies(r, SIGNING_SECRET), "signature of {r:?}");
        assert_eq!(r.body, seen[0].body, "every attempt sends the same body");
        assert_eq!(header(r, "x-voiceagent-event"), Some("call.completed"));
        assert_eq!(
            header(r, "x-voiceagent-delivery"),
            Some(delivery["id"].to_string().as_str())
        );
        assert_eq!(header(r, "content-type"), Some("application/json"));
    }
    assert!(!signature_verifies(&seen[0], "another-secret-entirely"));

    let payload: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(payload["event"], "call.completed");
    assert_eq!(payload["campaign_id"], campaign);
    assert_eq!(payload["call_id"], call_id);
    assert_eq!(payload["lead_id"], lead_id);
    assert_eq!(payload["phone"], "+91******3210", "the number is masked");
    assert_eq!(payload["direction"], "outbound");
    assert_eq!(payload["attempt"], 1);
    assert_eq!(payload["status"], "completed");
    assert_eq!(payload["intent"], "interested");
    assert_eq!(payload["outcome"], "interested");
    assert_eq!(payload["lead_status"], "completed");
    assert_eq!(payload["qualification"], json!({"budget": "2 lakh"}));
    assert_eq!(payload["summary"], "Wants a site visit");
    assert_eq!(payload["duration_secs"], 42);
    assert_eq!(payload["recording_url"], "https://rec.example/1.mp3");
    assert_eq!(
        payload["transcript_url"],
        format!("{}/calls/{call_id}/transcript", state.settings.our_base_url)
    );
    assert!(payload["dialed_at"].is_string() && payload["ended_at"].is_string());
    assert!(payload["occurred_at"].is_string());

    // Settling the call again (a late webhook, the reconciler) queues nothing more.
    let again =
        voice_agent::notify::call_finished(state.store.as_ref(), call_id, state.clock.now())
            .await
            .unwrap();
    assert!(!again);
    assert_eq!(deliveries(&rig, campaign).await.len(), 1);
    assert_eq!(
        error_code(rig.app.get("/campaigns/999/webhook-deliveries").await).await,
        "not_found"
    );
}

async fn receiver_that_never_acks_ends_failed_after_max_attempts(backend: Backend) {
    let receiver = Receiver::spawn(vec![], 503).await;
    let Some(rig) = rig(backend, silent(), |s| {
        s.webhooks.max_attempts = 3;
    })
    .await
    else {
        return;
    };
    let state = &rig.app.state;
    let clock = &state.clock;
    // Driven pass by pass on the service's clock (base 10 s: retries after 10 s, then 30 s).
    let deliverer = Deliverer::new(state);
    let body = json!({"name": "Deaf receiver", "webhook_url": receiver.url});
    let (campaign, call_id, sid, status_url) = dialled(&rig, body).await;
    rig.app
        .post_json(&status_url, json!({"CallSid": sid, "Status": "no-answer"}))
        .await;
    let pass = deliverer.run_once(clock.now()).await.unwrap();
    assert_eq!((pass.claimed, pass.retrying), (1, 1));
    let d = &deliveries(&rig, campaign).await[0];
    assert_eq!(d["status"], "pending");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 503);
    assert_eq!(d["last_error"], "receiver answered 503");
    let next: chrono::DateTime<chrono::Utc> =
        d["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = (next - clock.now()).num_milliseconds();
    assert!((9_000..=10_000).contains(&wait), "first retry in {wait} ms");

    assert_eq!(
        deliverer.run_once(clock.now()).await.unwrap().claimed,
        0,
        "not due yet"
    );
    clock.advance(chrono::Duration::seconds(10));
    let pass = deliverer.run_once(clock.now()).await.unwrap();
    assert_eq!((pass.claimed, pass.retrying), (1, 1));
    let d = &deliveries(&rig, campaign).await[0];
    let next: chrono::DateTime<chrono::Utc> =
        d["next_attempt_at"].as_str().unwrap().parse().unwrap();
    let wait = (next - clock.now()).num_milliseconds();
    assert!(
        (29_000..=30_000).contains(&wait),
        "second retry in {wait} ms"
    );

    clock.advance(chrono::Duration::seconds(30));
    let pass = deliverer.run_once(clock.now()).await.unwrap();
    assert_eq!((pass.claimed, pass.failed), (1, 1));
    let d = &deliveries(&rig, campaign).await[0];
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempts"], 3);
    assert!(d["next_attempt_at"].is_null());
    assert!(d["delivered_at"].is_null());
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(deliverer.run_once(clock.now()).await.unwrap().claimed, 0);

    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert!(
            header(r, "x-voiceagent-signature").is_none(),
            "no WEBHOOK_SIGNING_SECRET: unsigned"
        );
        assert!(header(r, "x-voiceagent-timestamp").is_some());
    }
    let payload: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(payload["status"], "no-answer");
    assert_eq!(payload["call_id"], call_id);
    assert!(payload["intent"].is_null());
    assert_eq!(payload["lead_status"], "retry");
}

async fn a_call_over_before_its_summary_waits_for_it_or_for_the_grace(backend: Backend) {
    let receiver = Receiver::spawn(vec![], 200).await;
    let Some(rig) = rig(backend, silent(), |_| {}).await else {
        return;
    };
    let state = &rig.app.state;
    let (store, clock) = (state.store.as_ref(), &state.clock);
    let deliverer = Deliverer::new(state);
    let body = json!({"name": "Streams", "webhook_url": receiver.url});
    let campaign = running_campaign(&rig.app, body, "phone\n9876543210\n9812345678\n").await;
    rig.tick().await;
    let mut calls = Vec::new();
    for lead in leads(&rig.app, campaign).await {
        let call = store
            .calls_of_lead(lead["id"].as_i64().unwrap())
            .await
            .unwrap()[0]
            .clone();
        // Both calls have a media stream, still writing its summary when the carrier reports.
        store
            .stream_started(call.id, "MZ1", clock.now())
            .await
            .unwrap();
        calls.push((call.id, call.carrier_sid.unwrap()));
    }
    let status_url = rig.app.status_webhook_url();
    for (_, sid) in &calls {
        rig.app
            .post_json(
                &status_url,
                json!({"CallSid": sid, "Status": "completed", "ConversationDuration": "20"}),
            )
            .await;
    }
    let provisional = deliveries(&rig, campaign).await;
    assert_eq!(provisional.len(), 2);
    for d in &provisional {
        let due: chrono::DateTime<chrono::Utc> =
            d["next_attempt_at"].as_str().unwrap().parse().unwrap();
        let wait = (due - clock.now()).num_seconds();
        assert!((110..=120).contains(&wait), "provisional, due in {wait} s");
    }
    assert_eq!(deliverer.run_once(clock.now()).await.unwrap().claimed, 0);

    // The first call's stream ends with its summary (what the media task does): reported now.
    let (first, _) = calls[0];
    store
        .record_call_outcome(
            first,
            "interested",
            &Default::default(),
            Some("Wants a visit"),
            clock.now(),
        )
        .await
        .unwrap();
    store.end_media(first, clock.now()).await.unwrap();
    voice_agent::dialer::settle::settle_call(store, first, clock.now())
        .await
        .unwrap();
    let pass = deliverer.run_once(clock.now()).await.unwrap();
    assert_eq!((pass.claimed, pass.delivered), (1, 1));
    let seen = receiver.seen();
    let payload: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(payload["call_id"], first);
    assert_eq!(payload["intent"], "interested");
    assert_eq!(payload["summary"], "Wants a visit");
    assert_eq!(payload["outcome"], "interested");

    // The second never reports (its process died): sent after the grace with what is known.
    clock.advance(chrono::Duration::minutes(2));
    let pass = deliverer.run_once(clock.now()).await.unwrap();
    assert_eq!((pass.claimed, pass.delivered), (1, 1));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    let payload: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(payload["call_id"], calls[1].0);
    assert_eq!(payload["status"], "completed");
    assert!(payload["intent"].is_null() && payload["summary"].is_null());
    assert_eq!(payload["duration_secs"], 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_each_of_60_deliveries_once() {
    let Some(url) = fresh_postgres_url().await else {
        return;
    };
    let receiver = Receiver::spawn(vec![], 204).await;
    let local = |s: &mut voice_agent::config::Settings| s.allow_private_urls = true;
    let a = spawn_app_at(&url, None, local).await;
    let b = spawn_app_at(&url, None, local).await;
    let csv: String = (0..60).fold("phone\n".into(), |acc, i| acc + &format!("98{i:08}\n"));
    let campaign = a.started_campaign("Shared outbox", csv).await;
    let store = &a.state.store;
    let now = a.state.clock.now();
    let claimed = a.claim(campaign, now, 100, 60).await;
    assert_eq!(claimed.len(), 60);
    for c in &claimed {
        let d = voice_agent::store::NewDelivery {
            campaign_id: campaign,
            call_id: c.call_id,
            event: "call.completed".into(),
            url: receiver.url.clone(),
            payload: json!({"call_id": c.call_id}).to_string(),
        };
        assert!(store.enqueue_webhook(&d, now, now).await.unwrap());
    }

    let (da, db) = (Deliverer::new(&a.state), Deliverer::new(&b.state));
    loop {
        let (pa, pb) = tokio::join!(
            da.run_once(a.state.clock.now()),
            db.run_once(b.state.clock.now())
        );
        if pa.unwrap().claimed + pb.unwrap().claimed == 0 {
            break;
        }
    }
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for r in receiver.seen() {
        *per_delivery
            .entry(header(&r, "x-voiceagent-delivery").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_delivery.len(), 60, "every delivery sent");
    assert!(per_delivery.values().all(|n| *n == 1), "none sent twice");
    let listed = store
        .list_webhook_deliveries(campaign, 1000, 0)
        .await
        .unwrap();
    assert!(
        listed
            .iter()
            .all(|d| d.status == "delivered" && d.attempts == 1)
    );
}
