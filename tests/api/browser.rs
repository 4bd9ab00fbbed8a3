//! A headless Chromium driven through chromedriver (WebDriver, with `fantoccini`), for tests of
//! the dashboard page. Each `Browser` starts its own chromedriver on a free port and a Chromium
//! with a fresh profile, and ends both when dropped (also when the test panics).
//!
//! Binaries: `CHROMEDRIVER` and `CHROMIUM` when set, else `chromedriver` and `chromium` (or
//! `chromium-browser`, `google-chrome`) on `PATH`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Chromium flags for a quiet, deterministic headless run (no background traffic, no GPU).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1440,1100",
];

pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_addr: SocketAddr,
    session: Option<String>,
    _profile: tempfile::TempDir,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    match std::env::var_os(env) {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ => on_path(names),
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (after a notice, or a panic under
    /// `CI=true`) when either is not installed.
    pub async fn launch() -> Option<Browser> {
        let driver_bin = binary("CHROMEDRIVER", &["chromedriver"]);
        let chromium = binary(
            "CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let (Some(driver_bin), Some(chromium)) = (driver_bin, chromium) else {
            crate::helpers::skip_or_fail(
                "browser",
                "chromium and chromedriver are needed for the dashboard test \
                 (apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER)",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let driver_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let url = format!("http://{driver_addr}");
        wait_until_ready(&url).await;

        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a Chromium session through chromedriver");
        let session = client.session_id().await.ok().flatten();
        Some(Browser {
            client,
            driver,
            driver_addr,
            session,
            _profile: profile,
        })
    }

    /// Polls `check` every 100 ms until it gives `Some`; after `secs`, saves a screenshot of the
    /// page and fails naming `what`.
    pub async fn wait<T, F, Fut>(&self, secs: u64, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if tokio::time::Instant::now() >= deadline {
                let shot = self.screenshot("timed-out").await;
                panic!(
                    "timed out after {secs} s waiting for {what} (page: {})",
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `css`, or `None` when there is none yet.
    pub async fn text(&self, css: &str) -> Option<String> {
        let el = self.client.find(Locator::Css(css)).await.ok()?;
        el.text().await.ok()
    }

    /// Waits until the element matching `css` shows `needle`; returns its whole text.
    pub async fn wait_for_text(&self, css: &str, needle: &str, secs: u64) -> String {
        self.wait(secs, &format!("{needle:?} in `{css}`"), || async {
            self.text(css).await.filter(|t| t.contains(needle))
        })
        .await
    }

    /// Clicks the element matching `css` once it exists.
    pub async fn click(&self, css: &str) {
        let el = self
            .wait(20, &format!("`{css}` to click"), || async {
                self.client.find(Locator::Css(css)).await.ok()
            })
            .await;
        el.click()
            .await
            .unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Saves a PNG of the whole page (the window grown to the page's height) to
    /// `<target>/ui-screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        // The window's height includes the browser's own frame: add it to the page's height.
        let sizes = self
            .client
            .execute(
                "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]",
                vec![],
            )
            .await
            .ok();
        let size = |i: usize| sizes.as_ref().and_then(|v| v[i].as_u64());
        if let (Some(page), Some(frame)) = (size(0), size(1)) {
            let height = (page.clamp(900, 4000) + frame) as u32;
            if let Err(e) = self.client.set_window_size(1440, height).await {
                eprintln!("cannot resize the window to {height} px for a screenshot: {e}");
            }
        }
        let png = self.client.screenshot().await.expect("screenshot");
        let _ = self.client.set_window_size(1440, 1100).await;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .join("ui-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

async fn wait_until_ready(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let ready = http
            .get(format!("{url}/status"))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if let Ok(res) = ready
            && let Ok(v) = res.json::<Value>().await
            && v["value"]["ready"] == true
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver at {url} did not become ready within 20 s");
}

impl Drop for Browser {
    /// Ends the WebDriver session (chromedriver then closes Chromium) with a plain blocking
    /// request, since `Drop` cannot await; then the driver process is killed.
    fn drop(&mut self) {
        if let Some(session) = self.session.take()
            && let Ok(mut s) = TcpStream::connect_timeout(&self.driver_addr, Duration::from_secs(2))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{session} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
                 Content-Length: 0\r\n\r\n",
                self.driver_addr
            );
            let mut reply = Vec::new();
            let _ = s.read_to_end(&mut reply);
        }
        let _ = self.driver.start_kill();
    }
}
