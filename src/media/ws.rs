//! `GET /media`: the carrier's media WebSocket (Exotel Voicebot applet or Connect Voice AI).
//!
//! Authenticated at the upgrade (our secret as `?secret=`, or as the Basic-auth password in the
//! URL). Waits for `start`, finds the call (`start.call_sid` = the `Call.Sid` we stored, else
//! our `call_id` parameter), or treats the stream as an inbound call. Opens STT and TTS at once,
//! runs the call pipeline, then writes the post-call summary and settles the lead.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use chrono::Utc;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tracing::Instrument;

use super::call::{self, CallSetup, CallTuning};
use super::writer::Writer;
use crate::auth::constant_time_eq;
use crate::campaigns::default_spec;
use crate::error::{ApiError, ApiPath, ErrorBody, error_response};
use crate::metrics::GaugeGuard;
use crate::phone::E164;
use crate::startup::AppState;
use crate::store::{CallStatus, CarrierUpdate};
use crate::telephony::carrier::{CarrierEvent, CarrierProtocol, Exotel, StreamStart};
use crate::voice::llm::{ChatRequest, Message, ResponseFormat};
use crate::voice::stt::SttOptions;
use crate::voice::tts::{AudioFormat, TtsOptions};

/// Silence (ms) after which Deepgram declares the caller's turn over (`endpointing`): long
/// enough not to cut a caller pausing mid-sentence on a phone line.
pub const ENDPOINTING_MS: u32 = 300;

/// The OpenAPI description of [`routes`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(upgrade))]
pub struct MediaDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/media", get(upgrade))
}

/// The OpenAPI description of [`debug_routes`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_sessions, show_session))]
pub struct DebugDoc;

/// `GET /debug/sessions` and `/debug/sessions/{id}`: live calls as published by their tasks
/// (from any instance when sessions are in Redis). Behind the API key like the REST API.
pub fn debug_routes() -> Router<AppState> {
    Router::new()
        .route("/debug/sessions", get(list_sessions))
        .route("/debug/sessions/{id}", get(show_session))
}

/// A live call as its task last published it: `call_id`, `campaign_id`, `state` (`live`,
/// `ending`), `stream_sid`, `started_at`, then after each turn `turns`, `duration_ms`,
/// `last_turn` (its latencies) and `updated_at`. Expires an hour after the last write.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(value_type = Object, example = json!({"call_id": 42, "campaign_id": 1, "state": "live",
    "stream_sid": "MZ1", "started_at": "2026-11-25T06:29:41Z", "turns": 4, "duration_ms": 18250,
    "last_turn": {"seq": 4, "interrupted": false,
    "stt_ms": 180, "llm_first_token_ms": 320, "tts_first_byte_ms": 150,
    "voice_to_voice_ms": 780, "added_ms": 40}, "updated_at": "2026-11-25T06:30:00Z"}))]
pub struct SessionSnapshot(serde_json::Value);

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionSnapshot>,
}

/// Live calls
///
/// Every live call's snapshot, from every instance when sessions are in Redis.
#[utoipa::path(
    get, path = "/debug/sessions", tag = "operations", operation_id = "list_sessions",
    responses(
        (status = 200, description = "The live calls", body = SessionList),
        (status = 503, description = "`unavailable`: the session store (Redis) did not answer", body = ErrorBody),
    )
)]
async fn list_sessions(State(state): State<AppState>) -> Result<axum::Json<SessionList>, ApiError> {
    let sessions = state
        .sessions
        .list()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let sessions = sessions
        .into_iter()
        .map(|(_, v)| SessionSnapshot(v))
        .collect();
    Ok(axum::Json(SessionList { sessions }))
}

/// One live call
#[utoipa::path(
    get, path = "/debug/sessions/{id}", tag = "operations", operation_id = "get_session",
    params(("id" = String, Path, description = "Call id")),
    responses(
        (status = 200, description = "The call's snapshot", body = SessionSnapshot),
        (status = 404, description = "`not_found`: no live call with this id (never started, or over)", body = ErrorBody),
        (status = 503, description = "`unavailable`: the session store (Redis) did not answer", body = ErrorBody),
    )
)]
async fn show_session(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::Json<SessionSnapshot>, ApiError> {
    match state.sessions.get(&id).await {
        Ok(Some(v)) => Ok(axum::Json(SessionSnapshot(v))),
        Ok(None) => Err(ApiError::not_found("live session", id)),
        Err(e) => Err(ApiError::Unavailable(e.to_string())),
    }
}

fn authorized(state: &AppState, query: &HashMap<String, String>, headers: &HeaderMap) -> bool {
    let secret = state.settings.webhook_secret.expose().as_bytes();
    if query
        .get("secret")
        .is_some_and(|s| constant_time_eq(s.as_bytes(), secret))
    {
        return true;
    }
    let crate::auth::Credentials::Given(basic) = crate::auth::auth_credentials(headers, "Basic")
    else {
        return false;
    };
    Some(basic)
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_string()))
        .is_some_and(|password| constant_time_eq(password.as_bytes(), secret))
}

/// Carrier media stream (WebSocket)
///
/// Exotel's Voicebot applet (or Connect Voice AI) opens this WebSocket for each answered call
/// and speaks its stream protocol as JSON text frames: it sends `connected`, `start`
/// (`call_sid`, `stream_sid`, `custom_parameters`), `media` (base64 8 kHz 16-bit mono PCM),
/// `mark`, `dtmf` and `stop`; we send `media` (the agent's voice), `mark` after each phrase and
/// `clear` on barge-in. The call is found by `start.call_sid` (else the `call_id` parameter);
/// an unknown stream is taken as an inbound call. Authenticated at the upgrade, before any
/// frame.
#[utoipa::path(
    get, path = "/media", tag = "carrier", operation_id = "media_stream",
    params(
        ("call_id" = Option<i64>, Query, description = "Our call id, when the stream URL carries it (direct streaming)"),
    ),
    security(("carrier_secret" = []), ("carrier_basic" = [])),
    responses(
        (status = 101, description = "Switching Protocols: the media stream runs until the call ends"),
        (status = 400, description = "`bad_upgrade`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong secret", body = ErrorBody),
    )
)]
async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !authorized(&state, &query, &headers) {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong media secret",
        );
    }
    // After the secret, so a stranger learns nothing; in our error body, like every endpoint.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == StatusCode::BAD_REQUEST {
                "bad_upgrade"
            } else {
                "upgrade_failed"
            };
            return error_response(
                status,
                code,
                &format!("expected a WebSocket upgrade: {}", rejection.body_text()),
            );
        }
    };
    let tasks = state.tasks.clone();
    // Small buffers: a carrier frame is ~2 KiB of JSON (see `providers::ws_config`).
    ws.read_buffer_size(crate::providers::WS_READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(crate::providers::WS_MAX_MESSAGE)
        .on_upgrade(move |socket| tasks.track_future(handle(socket, state, query)))
        .into_response()
}

async fn handle(socket: WebSocket, state: AppState, query: HashMap<String, String>) {
    let _session = GaugeGuard::new(&state.metrics.calls.media_sessions);
    let protocol: &'static dyn CarrierProtocol = &Exotel;
    let (mut sink, mut stream) = socket.split();
    let start = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                WsMessage::Text(t) => match protocol.parse(t.as_str()) {
                    Some(CarrierEvent::Start(s)) => return Some(s),
                    Some(CarrierEvent::Stop { .. }) => return None,
                    _ => {}
                },
                WsMessage::Close(_) => return None,
                _ => {}
            }
        }
        None
    })
    .await;
    let Ok(Some(start)) = start else {
        tracing::warn!("media stream ended before `start`");
        return;
    };
    // The ids are stored (and a NUL is refused by PostgreSQL): bounded one-line text only.
    if let Err(e) = start_is_bounded(&start) {
        tracing::warn!(error = %e, "media stream refused");
        let _ = sink.close().await;
        return;
    }
    let setup = match Box::pin(correlate(&state, &start, &query)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot attach the media stream to a call");
            let _ = sink.close().await;
            return;
        }
    };
    let call_id = setup.call_id;
    // Until the lead is settled, whichever way this function returns.
    let _active = GaugeGuard::new(&state.metrics.calls.active);
    let meters = state.metrics.call_meters();
    // Every log line of the call carries its ids.
    let span = tracing::info_span!("call", call_id, campaign_id = setup.campaign.id);

    // Both provider sessions at once, before anything is said.
    let language = setup.campaign.spec.language.clone();
    let listen = SttOptions {
        language: language.clone(),
        sample_rate: start.sample_rate,
        endpointing_ms: ENDPOINTING_MS,
    };
    let speak = TtsOptions {
        voice: setup.campaign.spec.voice_id.clone(),
        language,
        // Agent audio in the stream's own rate, so nothing is transcoded.
        format: AudioFormat::Pcm16 {
            sample_rate: start.sample_rate,
        },
    };
    let tts_vendor = match &state.providers.tts {
        Ok(vendor) => vendor.clone(),
        Err(missing) => {
            let why = format!("text-to-speech is not configured ({missing} is missing)");
            tracing::error!(call_id, "{why}");
            let _ = sink.close().await;
            Box::pin(end_unstarted(&state, call_id, why)).await;
            return;
        }
    };
    // Set-up and tear-down futures are boxed: inline, their states would stay in this call's
    // future (hence in its memory) for the whole call, though they run once.
    let (stt, tts) = Box::pin(async {
        tokio::join!(state.providers.stt.open(&listen), tts_vendor.open(&speak))
    })
    .instrument(span.clone())
    .await;
    let (stt, tts) = match (stt, tts) {
        (Ok(s), Ok(t)) => (s, t),
        (s, t) => {
            // Each vendor counted its own failure.
            let why = format!("stt: {:?}, tts: {:?}", s.err(), t.err());
            tracing::error!(call_id, %why, "providers unavailable: hanging up");
            let _ = sink.close().await;
            Box::pin(end_unstarted(&state, call_id, why)).await;
            return;
        }
    };
    let _ = state
        .store
        .stream_started(call_id, &start.stream_sid, state.clock.now())
        .await;
    let snapshot = json!({"call_id": call_id, "campaign_id": setup.campaign.id, "state": "live",
        "stream_sid": setup.stream_sid, "started_at": setup.started_at});
    let _ = state
        .sessions
        .put(&call_id.to_string(), &snapshot, Duration::from_secs(3600))
        .await;

    // The call task owns the carrier socket: no reader or writer task between them.
    let carrier = super::link::link(
        Box::pin(sink),
        Box::pin(stream),
        protocol,
        start.stream_sid.clone(),
    );

    let (writer, writes) = Writer::spawn(
        state.store.clone(),
        state.sessions.clone(),
        call_id,
        state.metrics.db.clone(),
    );
    let tuning = CallTuning {
        sample_rate: start.sample_rate,
        max_duration: Duration::from_secs(state.settings.dialer.time_limit_secs as u64),
        ..CallTuning::default()
    };
    let campaign = setup.campaign.clone();
    let ending = call::run(
        setup,
        tuning,
        state.providers.llm.clone(),
        stt,
        tts,
        carrier,
        writer,
        state.shutdown.clone(),
        meters,
    )
    .instrument(span.clone())
    .await;
    tracing::info!(call_id, ?ending, "call ended");
    let _ = writes.await;
    // The summary request belongs to the call's trace too.
    Box::pin(after_call(&state, call_id, &campaign))
        .instrument(span)
        .await;
    let _ = state.sessions.remove(&call_id.to_string()).await;
}

/// A stream that ended before its conversation could start (no TTS configured, a provider
/// down). The error is kept on the call and the stream marked over. An outbound call then waits
/// for the carrier's final status, which settles its lead as usual; an inbound call gets no
/// status webhook, so it ends here as `failed` and its lead is settled now (else the call would
/// stay `in-progress` and the lead `pending` for ever).
async fn end_unstarted(state: &AppState, call_id: i64, why: String) {
    let store = state.store.as_ref();
    let now = state.clock.now();
    let inbound = matches!(store.get_call(call_id).await, Ok(c) if c.direction == "inbound");
    let update = CarrierUpdate {
        status: inbound.then_some(CallStatus::Failed),
        ended_at: inbound.then_some(now),
        error: Some(why),
        ..Default::default()
    };
    match store.update_call_carrier(call_id, &update, now).await {
        Ok(updated) if inbound => state
            .metrics
            .calls
            .ended(CallStatus::InProgress, updated.status),
        Ok(_) => {}
        Err(e) => tracing::error!(call_id, error = %e, "cannot record why the call ended"),
    }
    if let Err(e) = store.end_media(call_id, now).await {
        tracing::error!(call_id, error = %e, "cannot mark the media stream ended");
    }
    if inbound && let Err(e) = crate::dialer::settle::settle_call(store, call_id, now).await {
        tracing::error!(call_id, error = %e, "cannot settle the inbound call's lead");
    }
}

/// The `start` fields the service stores or looks up, as `text::check_line` allows them.
fn start_is_bounded(start: &StreamStart) -> Result<(), crate::text::TextError> {
    use crate::config::limits::fields::CARRIER_ID;
    crate::text::check_line("stream_sid", &start.stream_sid, CARRIER_ID)?;
    for (field, value) in [
        ("call_sid", &start.call_sid),
        ("from", &start.from),
        ("to", &start.to),
    ] {
        if let Some(v) = value {
            crate::text::check_line(field, v, CARRIER_ID)?;
        }
    }
    Ok(())
}

/// Finds the call a stream belongs to, or records an inbound one.
async fn correlate(
    state: &AppState,
    start: &StreamStart,
    query: &HashMap<String, String>,
) -> Result<CallSetup, String> {
    let store = &state.store;
    let mut call = match &start.call_sid {
        Some(sid) => store
            .find_call_by_sid(sid)
            .await
            .map_err(|e| e.to_string())?,
        None => None,
    };
    if call.is_none() {
        let id = start
            .custom_parameters
            .get("call_id")
            .or_else(|| query.get("call_id"))
            .and_then(|v| v.parse::<i64>().ok());
        if let Some(id) = id
            && let Ok(c) = store.get_call(id).await
        {
            if let (None, Some(sid)) = (&c.carrier_sid, &start.call_sid) {
                let _ = store.set_call_sid(c.id, sid).await;
            }
            call = Some(c);
        }
    }
    let call = match call {
        Some(c) => c,
        None => inbound_call(state, start).await?,
    };
    let campaign_id = call.campaign_id.ok_or("call has no campaign")?;
    let campaign = store
        .get_campaign(campaign_id)
        .await
        .map_err(|e| e.to_string())?;
    let lead = match call.lead_id {
        Some(id) => store.get_lead(id).await.ok(),
        None => None,
    };
    Ok(CallSetup {
        call_id: call.id,
        campaign,
        lead,
        stream_sid: start.stream_sid.clone(),
        started_at: Utc::now(),
    })
}

/// A stream that matches no call we placed: a person calling us. Known numbers keep their lead
/// (and campaign); unknown ones become a new lead of the "Inbound calls" campaign.
async fn inbound_call(state: &AppState, start: &StreamStart) -> Result<crate::store::Call, String> {
    let store = &state.store;
    let now = state.clock.now();
    let from = start
        .from
        .as_deref()
        .ok_or("inbound stream without a caller number")?;
    let phone = E164::parse(from).map_err(|e| format!("inbound caller: {e}"))?;
    let lead = match store
        .find_lead_by_phone(phone.as_str())
        .await
        .map_err(|e| e.to_string())?
    {
        Some(l) => l,
        None => {
            let campaign = inbound_campaign(state, now).await?;
            // One `INSERT … ON CONFLICT`: two first calls from one number arriving together
            // get the same lead, with no lock.
            store
                .add_inbound_lead(campaign.id, phone.as_str(), now)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    tracing::info!(phone = %phone.masked(), lead_id = lead.id, "inbound call");
    store
        .create_inbound_call(
            phone.as_str(),
            lead.campaign_id,
            lead.id,
            start.call_sid.as_deref(),
            now,
        )
        .await
        .map_err(|e| e.to_string())
}

/// The "Inbound calls" campaign, created by the first inbound call from an unknown number.
/// Serialised in this process so that two such calls arriving together do not each create it;
/// only those calls take the lock, never a call from a known number.
async fn inbound_campaign(
    state: &AppState,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<crate::store::Campaign, String> {
    static INBOUND: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one_at_a_time = INBOUND.lock().await;
    let store = &state.store;
    let campaigns = store.list_campaigns().await.map_err(|e| e.to_string())?;
    if let Some(c) = campaigns
        .into_iter()
        .find(|c| c.spec.name == "Inbound calls")
    {
        return Ok(c);
    }
    let mut spec = default_spec(&state.settings);
    spec.name = "Inbound calls".into();
    store
        .create_campaign(&spec, now)
        .await
        .map_err(|e| e.to_string())
}

/// The post-call summary (one JSON-schema request), then the lead's next state.
async fn after_call(state: &AppState, call_id: i64, campaign: &crate::store::Campaign) {
    let store = &state.store;
    let now = state.clock.now();
    let Ok(call) = store.get_call(call_id).await else {
        return;
    };
    let turns = store.turns_of_call(call_id).await.unwrap_or_default();
    // The tool's outcome, else the summary's: what the lead is settled with.
    let mut outcome = call.intent.clone();
    if turns.iter().any(|t| t.speaker == "caller") {
        let transcript: String = turns
            .iter()
            .map(|t| format!("{}: {}\n", t.speaker, t.text))
            .collect();
        let fields: serde_json::Map<String, serde_json::Value> = campaign
            .spec
            .qualification_fields
            .iter()
            .map(|f| (f.name.clone(), json!({"type": f.kind})))
            .collect();
        let request = ChatRequest {
            messages: vec![
                Message::system(
                    "Summarise this sales phone call as JSON: the caller's intent, a one-sentence summary, and the qualification fields you can fill.",
                ),
                Message::user(transcript),
            ],
            response_format: Some(ResponseFormat::JsonSchema {
                name: "call_summary".into(),
                strict: false,
                schema: json!({"type": "object", "properties": {
                    "intent": {"type": "string", "enum": ["interested", "not_interested", "callback", "wrong_number", "do_not_call", "unknown"]},
                    "summary": {"type": "string"},
                    "qualification": {"type": "object", "properties": fields}
                }, "required": ["intent", "summary"]}),
            }),
            ..ChatRequest::default()
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        match state.providers.llm.complete_json(&request, deadline).await {
            Ok(done) => {
                if let Some(u) = done.usage {
                    let usage = crate::store::CallUsage {
                        llm_prompt_tokens: u.prompt_tokens,
                        llm_completion_tokens: u.completion_tokens,
                        tts_characters: 0,
                    };
                    if let Err(e) = store.add_call_usage(call_id, &usage).await {
                        tracing::warn!(call_id, error = %e, "summary usage not recorded");
                    }
                }
                let v = done.value;
                let extracted = v
                    .get("intent")
                    .and_then(|i| i.as_str())
                    .filter(|i| *i != "unknown");
                let intent = call.intent.clone().or(extracted.map(str::to_string));
                let mut qualification = call.qualification.clone();
                if let Some(q) = v.get("qualification").and_then(|q| q.as_object()) {
                    for (k, val) in q {
                        qualification.entry(k.clone()).or_insert(val.clone());
                    }
                }
                outcome = intent.clone();
                if let Some(intent) = intent {
                    let summary = v.get("summary").and_then(|s| s.as_str());
                    let _ = store
                        .record_call_outcome(call_id, &intent, &qualification, summary, now)
                        .await;
                }
            }
            Err(e) => tracing::warn!(call_id, error = %e, "post-call summary failed"),
        }
    }
    let ended = CarrierUpdate {
        // Inbound streams get no status webhook: the stream's end is the call's end.
        status: (call.direction == "inbound").then_some(CallStatus::Completed),
        ended_at: Some(now),
        ..Default::default()
    };
    if let Ok(updated) = store.update_call_carrier(call_id, &ended, now).await {
        state.metrics.calls.ended(call.status, updated.status);
    }
    // Marks the conversation's facts complete: the operator's webhook may now be sent.
    if let Err(e) = store.end_media(call_id, now).await {
        tracing::error!(call_id, error = %e, "cannot mark the media stream ended");
    }
    if let Err(e) = crate::dialer::settle::settle_call(store.as_ref(), call_id, now).await {
        tracing::error!(call_id, error = %e, "cannot settle the lead after the call");
    }
    state.metrics.calls.outcome(outcome.as_deref());
}
