//! `voice-agent emulate` and `voice-agent demo`: the whole system with no accounts and no
//! services. The emulators stand in for Exotel, Deepgram, OpenAI and ElevenLabs at the network
//! edge; the service itself runs unchanged (real clients, real `/media`, real dialer) on SQLite
//! with in-memory sessions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{Timelike, Utc};
use serde_json::{Value, json};

use crate::config::{Secret, Settings};
use crate::emulators::callee::{Language, Persona};
use crate::emulators::exotel::ExotelConfig;
use crate::emulators::{Running, deepgram, elevenlabs, exotel, openai};
use crate::phone::E164;

/// The four emulators, running.
pub struct Emulators {
    pub exotel: Running,
    pub exotel_handle: exotel::ExotelHandle,
    pub deepgram: Running,
    pub openai: Running,
    pub elevenlabs: Running,
}

/// Per E.164 number: how the emulated callee behaves, and in which language.
pub type CalleeMaps = (HashMap<String, Persona>, HashMap<String, Language>);

/// The example leads (`examples/leads.csv`), compiled in: the demo runs from any directory and
/// from an installed binary.
pub const EXAMPLE_LEADS: &str = include_str!("../examples/leads.csv");

/// The leads CSV of a demo: `path`'s, or the example leads.
pub fn leads_text(path: Option<&str>) -> Result<String, String> {
    match path {
        Some(p) => std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}")),
        None => Ok(EXAMPLE_LEADS.to_string()),
    }
}

/// Personas and languages per number, from a leads CSV file's `persona` (and `language`)
/// columns.
pub fn personas_from_csv(path: &str) -> Result<CalleeMaps, String> {
    personas_from_text(&leads_text(Some(path))?)
}

/// Personas and languages per number, from leads CSV text.
pub fn personas_from_text(text: &str) -> Result<CalleeMaps, String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(phone), Some(persona)) = (col("phone"), col("persona")) else {
        return Ok(Default::default());
    };
    let language = col("language");
    let mut personas = HashMap::new();
    let mut languages = HashMap::new();
    for record in reader.records().flatten() {
        let Ok(number) = E164::parse(record.get(phone).unwrap_or("")) else {
            continue;
        };
        if let Ok(p) = record.get(persona).unwrap_or("").parse::<Persona>() {
            personas.insert(number.as_str().to_string(), p);
        }
        let text = record.iter().collect::<Vec<_>>().join(" ");
        let hindi = language
            .and_then(|i| record.get(i))
            .is_some_and(|l| l.starts_with("hi"))
            || text.chars().any(|c| ('\u{0900}'..='\u{097F}').contains(&c));
        if hindi {
            languages.insert(number.as_str().to_string(), Language::Hi);
        }
    }
    Ok((personas, languages))
}

/// Starts the four emulators; Exotel's answered calls connect to `media_url`.
pub async fn start_emulators(
    host: [u8; 4],
    ports: [u16; 4],
    media_url: Option<String>,
    leads_csv: Option<&str>,
) -> Result<Emulators, Box<dyn std::error::Error>> {
    let text = match leads_csv {
        Some(p) => Some(leads_text(Some(p))?),
        None => None,
    };
    start_emulators_with(host, ports, demo_exotel(media_url, text.as_deref())?).await
}

/// The demo's Exotel: rings for 1.5 s, each number's callee from the leads' `persona` column.
pub fn demo_exotel(
    media_url: Option<String>,
    leads_csv: Option<&str>,
) -> Result<ExotelConfig, String> {
    let (personas, languages) = match leads_csv {
        Some(text) => personas_from_text(text)?,
        None => Default::default(),
    };
    Ok(ExotelConfig {
        ring_delay: Duration::from_millis(1500),
        media_url,
        personas,
        languages,
        ..ExotelConfig::default()
    })
}

/// Starts the four emulators, Exotel's as configured.
pub async fn start_emulators_with(
    host: [u8; 4],
    ports: [u16; 4],
    exotel_config: ExotelConfig,
) -> Result<Emulators, Box<dyn std::error::Error>> {
    let addr = |port| SocketAddr::from((host, port));
    let (exotel_run, exotel_handle) = exotel::spawn(exotel_config, addr(ports[0])).await?;
    let (dg_run, _) = deepgram::spawn_on(deepgram::Config::default(), addr(ports[1])).await?;
    let (oa_run, _) = openai::spawn_on(openai::Config::default(), addr(ports[2])).await?;
    let (el_run, _) = elevenlabs::spawn_on(elevenlabs::Config::default(), addr(ports[3])).await?;
    Ok(Emulators {
        exotel: exotel_run,
        exotel_handle,
        deepgram: dg_run,
        openai: oa_run,
        elevenlabs: el_run,
    })
}

/// Points settings at the emulators (their default credentials).
pub fn use_emulators(s: &mut Settings, e: &Emulators) {
    let exo = ExotelConfig::default();
    s.exotel.account_sid = Some(exo.account_sid);
    s.exotel.api_key = Some(Secret::new(exo.api_key));
    s.exotel.api_token = Some(Secret::new(exo.api_token));
    s.exotel.virtual_number = Some("+918044556677".into());
    s.exotel.exophlo_id = Some("demo-flow".into());
    s.exotel.base_url = e.exotel.http_url();
    s.deepgram.url = format!("{}/v1/listen", e.deepgram.ws_url());
    s.deepgram.api_key = Some(Secret::new("emulated-deepgram-key"));
    s.openai.base_url = format!("{}/v1", e.openai.http_url());
    s.openai.api_key = Some(Secret::new(openai::Config::default().api_key));
    s.elevenlabs.base_url = e.elevenlabs.http_url();
    s.elevenlabs.api_key = Some(Secret::new(elevenlabs::Config::default().api_key));
    s.elevenlabs.voice_id = Some("emulated-voice".into());
}

/// Lines printed by `emulate` so `serve` can be pointed at the emulators.
pub fn env_lines(e: &Emulators) -> Vec<String> {
    let exo = ExotelConfig::default();
    vec![
        format!("EXOTEL_BASE_URL={}", e.exotel.http_url()),
        format!("EXOTEL_ACCOUNT_SID={}", exo.account_sid),
        format!("EXOTEL_API_KEY={}", exo.api_key),
        format!("EXOTEL_API_TOKEN={}", exo.api_token),
        "EXOTEL_VIRTUAL_NUMBER=+918044556677".into(),
        "EXOTEL_EXOPHLO_ID=demo-flow".into(),
        format!("DEEPGRAM_URL={}/v1/listen", e.deepgram.ws_url()),
        "DEEPGRAM_API_KEY=emulated-deepgram-key".into(),
        format!("OPENAI_BASE_URL={}/v1", e.openai.http_url()),
        format!("OPENAI_API_KEY={}", openai::Config::default().api_key),
        format!("ELEVENLABS_BASE_URL={}", e.elevenlabs.http_url()),
        format!(
            "ELEVENLABS_API_KEY={}",
            elevenlabs::Config::default().api_key
        ),
        "ELEVENLABS_VOICE_ID=emulated-voice".into(),
    ]
}

/// `voice-agent demo`: the service and the emulators in one process; dials every lead of the
/// CSV at `leads` (the compiled-in example leads when `None`) and prints a report.
pub async fn run_demo(
    leads: Option<&str>,
    keep_running: bool,
    timeout: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let leads_csv = leads_text(leads)?;
    let dir = tempfile_dir()?;
    let db = format!("sqlite://{}", dir.join("demo.db").display());
    let mut settings = Settings::for_database(&db);
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:8000").await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let base = format!("http://{}", listener.local_addr()?);
    settings.our_base_url = base.clone();
    settings.webhook_secret = Secret::new("demo-webhook-secret-0123456789");
    settings.dialer.tick = Duration::from_millis(250);
    settings.dialer.rate_per_sec = 5.0;
    settings.max_concurrent_calls = 10;
    let media_url = format!(
        "{}/media?secret={}",
        base.replacen("http", "ws", 1),
        settings.webhook_secret.expose()
    );
    // One clock for the service and the emulated carrier, so a call's dial, answer and end
    // times are on one timeline even when the demo moves the service's clock (below).
    let clock = demo_clock();
    let exotel_config = ExotelConfig {
        clock: clock.clone(),
        ..demo_exotel(Some(media_url), Some(&leads_csv))?
    };
    let emulators = start_emulators_with([127, 0, 0, 1], [0; 4], exotel_config).await?;
    use_emulators(&mut settings, &emulators);
    println!(
        "voice-agent demo: service on {base}, database {db}, emulated Exotel/Deepgram/OpenAI/ElevenLabs"
    );

    let mut state = crate::startup::AppState::build(settings).await?;
    state.clock = clock;
    let dialer = std::sync::Arc::new(crate::dialer::Dialer::new(&state));
    state.tasks.spawn(dialer.run(state.shutdown.clone()));
    let server_state = state.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_server = stop.clone();
    let server = tokio::spawn(async move {
        crate::startup::serve(listener, server_state, async move {
            stop_server.cancelled().await
        })
        .await
    });

    let http = reqwest::Client::new();
    let campaign: Value = http
        .post(format!("{base}/campaigns"))
        .json(&json!({
            "name": "Demo: SunRise Solar",
            "instructions": "You are Asha, calling for SunRise Solar about rooftop solar panels. A site visit is free and the panels pay for themselves in about five years.",
            "greeting": "Namaste {name}, this is Asha from SunRise Solar. Do you have a minute to talk about rooftop solar?",
            "calling_window": {"start": "09:00", "end": "21:00", "weekdays": ["mon","tue","wed","thu","fri","sat","sun"]},
            "max_attempts": 2,
            "retry_delays": {"no_answer": 1, "busy": 1, "failed": 1},
            "qualification_fields": [{"name": "roof_type", "description": "flat or sloped"}]
        }))
        .send()
        .await?
        .json()
        .await?;
    let id = campaign["id"].as_i64().ok_or("campaign not created")?;
    let csv = leads_csv.clone().into_bytes();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv).file_name("leads.csv"),
    );
    let report: Value = http
        .post(format!("{base}/campaigns/{id}/upload-csv"))
        .multipart(form)
        .send()
        .await?
        .json()
        .await?;
    println!(
        "Imported {} leads ({} invalid rows, {} duplicates); starting the campaign.",
        report["imported"], report["invalid_count"], report["duplicates"]
    );
    http.post(format!("{base}/campaigns/{id}/start"))
        .send()
        .await?;

    let started = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let c: Value = http
            .get(format!("{base}/campaigns/{id}"))
            .send()
            .await?
            .json()
            .await?;
        let counts = &c["lead_counts"];
        let live = state.store.count_active_calls(Some(id)).await.unwrap_or(0);
        println!(
            "[{:>3}s] live calls {live:>2} | pending {} retry {} in progress {} | completed {} failed {} do-not-call {} callback {}",
            started.elapsed().as_secs(),
            counts["pending"],
            counts["retry"],
            counts["in_progress"],
            counts["completed"],
            counts["failed"],
            counts["do_not_call"],
            counts["callback"]
        );
        let settled = counts["pending"] == 0 && counts["in_progress"] == 0 && counts["retry"] == 0;
        if c["status"] == "completed" || settled || started.elapsed() > timeout {
            break;
        }
    }
    print_report(&state, id, &emulators, &leads_csv).await?;
    if keep_running {
        println!(
            "\nThe service stays up on {base} (Ctrl-C to stop). Try: curl {base}/campaigns/{id}"
        );
        crate::startup::shutdown_signal().await;
    }
    stop.cancel();
    let _ = server.await;
    Ok(())
}

/// The demo's clock: real time when every example lead can be called for the next hours, else
/// 11:00 IST today (the emulated callers do not mind). Calls are legal 09:00–21:00 local time,
/// and one example lead is in Dubai, 90 minutes behind India: from 11:00 to 18:00 IST every
/// lead's window is open (before 10:30 IST the Dubai lead would wait for its 09:00).
fn demo_clock() -> crate::clock::Clock {
    let clock = crate::clock::Clock::default();
    let india = Utc::now().with_timezone(&chrono_tz::Asia::Kolkata);
    if !(11..18).contains(&india.hour()) {
        let eleven = india
            .date_naive()
            .and_hms_opt(11, 0, 0)
            .expect("valid time");
        let at = chrono::TimeZone::from_local_datetime(&chrono_tz::Asia::Kolkata, &eleven)
            .single()
            .expect("IST has no DST");
        clock.set(at.with_timezone(&Utc));
        println!(
            "It is {} in India, outside the hours when every example lead may be called: the \
             demo runs its clock (the service's and the emulated carrier's) at 11:00 IST.",
            india.format("%H:%M")
        );
    }
    clock
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("voice-agent-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn print_report(
    state: &crate::startup::AppState,
    campaign: i64,
    e: &Emulators,
    leads_csv: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = &state.store;
    let page = store
        .list_leads(
            campaign,
            &crate::store::LeadQuery {
                status: None,
                limit: 1000,
                offset: 0,
            },
        )
        .await?;
    let (personas, _) = personas_from_text(leads_csv).unwrap_or_default();
    println!(
        "\n{:<22} {:<15} {:<14} {:<14} {:>3} {:>5}  transcript",
        "lead", "persona", "status", "outcome", "att", "turns"
    );
    let mut latencies: HashMap<&str, Vec<i32>> = HashMap::new();
    for lead in &page.leads {
        let calls = store.calls_of_lead(lead.id).await?;
        let mut turns = Vec::new();
        for c in &calls {
            turns.extend(store.turns_of_call(c.id).await?);
        }
        for t in &turns {
            for (k, v) in [
                ("stt", t.stt_ms),
                ("llm_first_token", t.llm_first_token_ms),
                ("tts_first_byte", t.tts_first_byte_ms),
                ("voice_to_voice", t.voice_to_voice_ms),
                ("added_by_us", t.added_ms),
            ] {
                if let Some(v) = v {
                    latencies.entry(k).or_default().push(v);
                }
            }
        }
        let excerpt: String = turns
            .iter()
            .take(3)
            .map(|t| {
                format!(
                    "{}: {}",
                    if t.speaker == "agent" { "A" } else { "C" },
                    t.text
                )
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let excerpt: String = excerpt.chars().take(90).collect();
        println!(
            "{:<22} {:<15} {:<14} {:<14} {:>3} {:>5}  {}",
            lead.name
                .as_deref()
                .unwrap_or("-")
                .chars()
                .take(22)
                .collect::<String>(),
            personas
                .get(&lead.phone)
                .map(|p| format!("{p:?}"))
                .unwrap_or_default(),
            lead.status.as_str(),
            lead.outcome
                .as_deref()
                .or(lead.last_result.as_deref())
                .unwrap_or("-"),
            lead.attempts,
            turns.len(),
            excerpt
        );
    }
    println!("\nPer-turn latency (ms)     p50    p95   n");
    for k in [
        "stt",
        "llm_first_token",
        "tts_first_byte",
        "voice_to_voice",
        "added_by_us",
    ] {
        let mut v = latencies.remove(k).unwrap_or_default();
        v.sort_unstable();
        let p = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        println!("  {k:<22} {:>6} {:>6} {:>3}", p(0.5), p(0.95), v.len());
    }
    let violations = e.exotel_handle.violations();
    println!(
        "\nCarrier protocol violations seen by the emulated Exotel: {}",
        violations.total()
    );
    Ok(())
}
