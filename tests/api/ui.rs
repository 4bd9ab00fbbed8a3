//! The dashboard in headless Chromium, against the service and the four emulators over real
//! sockets: the page asks for the API key, starts a campaign, shows the live call and its
//! transcript while the emulated callee talks, pauses the campaign, and opens the call page
//! with the transcript and the recording link. SQLite is enough: the page only reads the API,
//! whose contract the rest of the suite checks on both backends.
//!
//! Skipped with a notice without chromium/chromedriver (fails instead under `CI=true`).
//! Screenshots land in `<target>/ui-screenshots/`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use voice_agent::config::Secret;
use voice_agent::dialer::Dialer;
use voice_agent::emulators::callee::{CalleeConfig, Persona};
use voice_agent::emulators::exotel::{self, ExotelConfig};
use voice_agent::emulators::{Running, deepgram, elevenlabs, openai};
use voice_agent::store::CarrierUpdate;

use crate::browser::Browser;
use crate::dialer::{exotel_settings, ist};
use crate::helpers::{Backend, TestApp, eventually, spawn_app_with};

const API_KEY: &str = "ui-test-key-0123456789";
const NUMBER: &str = "+919876543210";

struct Rig {
    app: TestApp,
    dialer: Dialer,
    _emulators: Vec<Running>,
}

/// The service with an API key, direct streaming to its `/media`, and an Exotel whose callee at
/// `NUMBER` is interested and takes its time answering (a conversation of several turns).
async fn rig() -> Rig {
    let (dg_run, _) = deepgram::spawn(deepgram::Config::default()).await.unwrap();
    let (oa_run, _) = openai::spawn(openai::Config::default()).await.unwrap();
    let (el_run, _) = elevenlabs::spawn(elevenlabs::Config::default())
        .await
        .unwrap();
    let exotel_config = ExotelConfig {
        ring_delay: Duration::from_millis(200),
        personas: HashMap::from([(NUMBER.to_string(), Persona::Interested)]),
        callee: CalleeConfig {
            reply_delay: Duration::from_millis(1200),
            max_duration: Duration::from_secs(120),
            ..CalleeConfig::default()
        },
        ..ExotelConfig::default()
    };
    let (exo_run, _) = exotel::spawn(exotel_config.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut app = spawn_app_with(Backend::Sqlite, |s| {
        exotel_settings(s, &exo_run, &exotel_config);
        s.dialer.direct_stream = true;
        s.deepgram.url = format!("{}/v1/listen", dg_run.ws_url());
        s.deepgram.api_key = Some(Secret::new("dg-key"));
        s.openai.base_url = format!("{}/v1", oa_run.http_url());
        s.openai.api_key = Some(Secret::new(openai::Config::default().api_key));
        s.elevenlabs.base_url = el_run.http_url();
        s.elevenlabs.api_key = Some(Secret::new(elevenlabs::Config::default().api_key));
        s.elevenlabs.voice_id = Some("voice-1".into());
        s.api_key = Some(Secret::new(API_KEY));
    })
    .await
    .expect("SQLite is always available");
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {API_KEY}").parse().unwrap(),
    );
    app.client = reqwest::Client::builder()
        .default_headers(auth)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // Inside India's calling hours, whatever the real time.
    app.state.clock.set(ist(25, 12, 0));
    let dialer = Dialer::new(&app.state);
    Rig {
        app,
        dialer,
        _emulators: vec![dg_run, oa_run, el_run, exo_run],
    }
}

#[tokio::test]
async fn dashboard_shows_a_live_call_and_pauses_its_campaign() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let rig = rig().await;
    let app = &rig.app;
    let res = app
        .post_json(
            "/campaigns",
            json!({
                "name": "Rooftop solar, Pune",
                "greeting": "Namaste {name}, this is Asha from SunRise Solar. Do you have a minute to talk about rooftop solar?",
                "instructions": "You are Asha from SunRise Solar. A site visit is free and the panels pay for themselves in about five years.",
                "qualification_fields": [{"name": "roof_type", "description": "flat or sloped"}],
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let campaign = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let report = app
        .upload_report(campaign, "phone,name\n9876543210,Kavya\n")
        .await;
    assert_eq!(report["imported"], 1, "{report}");
    let row = format!("#campaigns tr[data-campaign-id=\"{campaign}\"]");

    // The page is public; the API behind it asks for the key, which the page then keeps.
    browser
        .client
        .goto(&app.url("/ui"))
        .await
        .expect("open /ui");
    browser
        .wait(20, "the API key dialog", || async {
            browser
                .client
                .find(fantoccini::Locator::Css("#key-dialog[open]"))
                .await
                .ok()
        })
        .await;
    let key_input = browser
        .client
        .find(fantoccini::Locator::Css("#key-input"))
        .await
        .unwrap();
    key_input.send_keys("not-the-key").await.unwrap();
    browser.click("#key-save").await;
    browser
        .wait_for_text("#key-error", "That key was refused", 20)
        .await;
    key_input.send_keys(API_KEY).await.unwrap();
    browser.click("#key-save").await;
    let text = browser.wait_for_text(&row, "Rooftop solar, Pune", 20).await;
    assert!(text.contains("Draft"), "{text}");

    // Start from the page.
    browser
        .click(&format!("{row} button[data-action=\"start\"]"))
        .await;
    eventually(20, "the campaign running", || async {
        let c = app.get_json(&format!("/campaigns/{campaign}")).await;
        (c["status"] == "running").then_some(())
    })
    .await;
    browser.wait_for_text(&row, "Running", 20).await;

    // The dialer places the call; the callee answers and talks over /media.
    let outcome = rig.dialer.run_once(app.state.clock.now()).await.unwrap();
    assert_eq!((outcome.claimed, outcome.dialed), (1, 1));
    let leads = app.get_json(&format!("/campaigns/{campaign}/leads")).await;
    let lead = leads["leads"][0]["id"].as_i64().unwrap();
    let call = app.get_json(&format!("/leads/{lead}")).await["calls"][0]["id"]
        .as_i64()
        .unwrap();

    // The live call appears with its number masked, and its transcript follows the conversation.
    let card = format!("#live-calls [data-call-id=\"{call}\"]");
    let head = browser.wait_for_text(&card, "3210", 30).await;
    assert!(!head.contains("9876543210"), "number not masked: {head}");
    assert!(head.contains("Rooftop solar, Pune"), "{head}");
    let transcript = format!("{card} .transcript");
    browser
        .wait_for_text(&transcript, "Namaste Kavya, this is Asha", 40)
        .await;
    browser
        .wait_for_text(&transcript, "Yes, I am interested", 40)
        .await;
    let live = app.get_json(&format!("/calls/{call}")).await;
    assert!(
        live["ended_at"].is_null(),
        "the call should still be live while its transcript grows: {live}"
    );

    // Pause from the page: the API says paused, and so does the page.
    browser
        .click(&format!("{row} button[data-action=\"pause\"]"))
        .await;
    eventually(20, "the campaign paused", || async {
        let c = app.get_json(&format!("/campaigns/{campaign}")).await;
        (c["status"] == "paused").then_some(())
    })
    .await;
    browser.wait_for_text(&row, "Paused", 20).await;
    browser
        .wait(20, "the Resume button", || async {
            browser
                .client
                .find(fantoccini::Locator::Css(&format!(
                    "{row} button[data-action=\"resume\"]"
                )))
                .await
                .ok()
        })
        .await;

    // The latency chart is drawn from the call's measured turns.
    browser
        .wait(40, "a voice-to-voice bar in the latency chart", || async {
            browser
                .client
                .find(fantoccini::Locator::Css(
                    "#latency svg.latency-chart [data-component=\"voice_to_voice\"]",
                ))
                .await
                .ok()
        })
        .await;
    browser.screenshot("dashboard-live-call").await;

    // The call page: the transcript as stored, then the recording once the carrier has one.
    browser
        .click(&format!("{card} a[href=\"/ui/calls/{call}\"]"))
        .await;
    browser
        .wait_for_text(".view-call h1", &format!("Call #{call}"), 20)
        .await;
    browser
        .wait_for_text("#transcript .transcript", "Namaste Kavya", 20)
        .await;
    let ended = eventually(90, "the call to end", || async {
        let c = app.get_json(&format!("/calls/{call}")).await;
        (c["status"] == "completed").then_some(c)
    })
    .await;
    assert_eq!(ended["intent"], "interested", "{ended}");
    browser
        .wait_for_text(".view-call h1", "Completed", 20)
        .await;
    let turns = app.state.store.turns_of_call(call).await.unwrap();
    assert!(
        turns.len() >= 4,
        "a conversation of several turns: {turns:?}"
    );
    let shown = browser
        .wait(20, "every stored turn on the call page", || async {
            let n = browser
                .client
                .find_all(fantoccini::Locator::Css("#transcript .turn"))
                .await
                .ok()?
                .len();
            (n == turns.len()).then_some(n)
        })
        .await;
    assert_eq!(shown, turns.len());
    let last = turns.last().unwrap();
    browser
        .wait_for_text("#transcript .transcript", &last.text, 20)
        .await;

    let recording = "https://recordings.exotel.example/ui-test/call.mp3";
    app.state
        .store
        .update_call_carrier(
            call,
            &CarrierUpdate {
                recording_url: Some(recording.into()),
                ..CarrierUpdate::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    let href = browser
        .wait(20, "the recording link", || async {
            let link = browser
                .client
                .find(fantoccini::Locator::Css("a#recording"))
                .await
                .ok()?;
            link.attr("href").await.ok().flatten()
        })
        .await;
    assert_eq!(href, recording);
    browser.screenshot("call-page").await;

    // The campaign page shows the pause too, and the lead.
    browser
        .client
        .goto(&app.url(&format!("/ui/campaigns/{campaign}")))
        .await
        .unwrap();
    browser
        .wait_for_text(".view-campaign .page-head", "Paused", 20)
        .await;
    browser.wait_for_text("#campaign-leads", "Kavya", 20).await;
    browser.screenshot("campaign-page").await;

    // Whatever the API returns is shown as text, never run as markup.
    let markup = r#"<img src="x" onerror="document.title='pwned'">Solar"#;
    let res = app.post_json("/campaigns", json!({"name": markup})).await;
    let other = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    browser.client.goto(&app.url("/ui")).await.unwrap();
    let shown = browser
        .wait_for_text(
            &format!("#campaigns tr[data-campaign-id=\"{other}\"]"),
            "Solar",
            20,
        )
        .await;
    assert!(shown.contains(r#"<img src="x""#), "{shown}");
    let injected = browser
        .client
        .execute(
            "return [document.querySelectorAll('#campaigns img').length, document.title]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!([0, "Dashboard · voice-agent"]));
}

/// The page's refresh waits: a second while the server is quick, twice as long as a slow
/// refresh took, doubled per failure in a row, at most 30 s (so a slow server is asked less
/// often, not more). Read from the module the page itself runs (`poll.js`, used by `app.js`).
#[tokio::test]
async fn the_page_refreshes_less_often_while_the_server_is_slow_or_failing() {
    let Some(browser) = Browser::launch().await else {
        return;
    };
    let app = crate::helpers::spawn_app(Backend::Sqlite).await.unwrap();
    browser.client.goto(&app.url("/ui")).await.unwrap();
    let waits = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             import('/ui/assets/poll.js').then((m) => done([
               m.nextDelay(40, 0), m.nextDelay(3000, 0), m.nextDelay(40, 1), m.nextDelay(40, 3),
               m.nextDelay(3000, 2), m.nextDelay(120000, 0), m.nextDelay(40, 50)]));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(waits, json!([1000, 6000, 2000, 8000, 24000, 30000, 30000]));
    let app_js = app.get_text("/ui/assets/app.js").await;
    assert!(
        app_js.contains("nextDelay(performance.now() - started, failures)"),
        "app.js schedules its next refresh with nextDelay"
    );
}
