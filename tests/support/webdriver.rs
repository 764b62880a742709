//! A small WebDriver client for the browser tests: starts Debian's `chromedriver` on a free
//! port, opens a headless Chromium session with a fresh profile, and speaks the W3C WebDriver
//! protocol over HTTP (JSON). Only what the tests use: navigate, find, click, read text, accept a confirmation, take a screenshot.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian's packages put the browser and its driver.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A browser session; the driver (and with it the browser) is killed on drop.
pub(crate) struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// An element of the current page.
#[derive(Clone, Debug)]
pub(crate) struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium. Panics with what to install when either
    /// is missing (`.ci/run` installs the `chromium` and `chromium-driver` packages).
    pub(crate) async fn start() -> Self {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install the Debian packages chromium and chromium-driver \
                 (bash .ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("a profile dir");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.json::<Value>());
            if let Some(body) = ready {
                if body.await.ok().and_then(|v| v["value"]["ready"].as_bool()) == Some(true) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            } }
        });
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("create a session")
            .json()
            .await
            .expect("a session answer");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            http,
            session: format!("{base}/session/{session}"),
            driver,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("webdriver {path}: {e}"));
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!(
                "webdriver {path}: {error}: {}",
                answer["value"]["message"].as_str().unwrap_or("")
            );
        }
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Opens `url` and waits for it to load.
    pub(crate) async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The current page's URL.
    pub(crate) async fn url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The elements matching a CSS selector (none is not an error).
    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        found
            .as_array()
            .map(|els| {
                els.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`, waiting up to 10 s for it to appear.
    pub(crate) async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(el) = self.find_all(css).await.into_iter().next() {
                return el;
            }
            assert!(Instant::now() < deadline, "no element matches `{css}`");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Finds the first element matching `css` and clicks it, again if the page replaced it
    /// in between (the live overview replaces its table every two seconds).
    pub(crate) async fn click_on(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let el = self.find(css).await;
            let url = format!("{}/element/{}/click", self.session, el.0);
            let answer: Value = self
                .http
                .post(&url)
                .json(&json!({}))
                .send()
                .await
                .expect("webdriver click")
                .json()
                .await
                .expect("webdriver click answer");
            match answer["value"]["error"].as_str() {
                None => return,
                Some(_) if replaced(&answer) && Instant::now() < deadline => continue,
                Some(error) => panic!("click on `{css}`: {error}: {answer}"),
            }
        }
    }

    /// Clicks `el`.
    pub(crate) async fn click(&self, el: &Element) {
        self.post(&format!("/element/{}/click", el.0), json!({}))
            .await;
    }

    /// The visible text of `el`.
    pub(crate) async fn text(&self, el: &Element) -> String {
        let v = self
            .call(
                reqwest::Method::GET,
                &format!("/element/{}/text", el.0),
                None,
            )
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The visible text of the first element matching `css`, read again if the page replaced
    /// the element in between (the live overview does every two seconds).
    pub(crate) async fn text_of(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let el = self.find(css).await;
            let url = format!("{}/element/{}/text", self.session, el.0);
            let answer: Value = self
                .http
                .get(&url)
                .send()
                .await
                .expect("webdriver text")
                .json()
                .await
                .expect("webdriver text answer");
            match answer["value"]["error"].as_str() {
                None => return answer["value"].as_str().unwrap_or_default().to_owned(),
                Some(_) if replaced(&answer) && Instant::now() < deadline => continue,
                Some(error) => panic!("text of `{css}`: {error}: {answer}"),
            }
        }
    }

    /// The text of the whole page's body (read again when a navigation replaced the body
    /// between finding it and reading it: a submitted form loads the next page).
    pub(crate) async fn body_text(&self) -> String {
        self.text_of("body").await
    }

    /// Accepts the open `confirm()` dialog, waiting up to 10 s for it.
    pub(crate) async fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/alert/accept", self.session);
            let answer: Value = self
                .http
                .post(&url)
                .json(&json!({}))
                .send()
                .await
                .expect("webdriver alert")
                .json()
                .await
                .expect("webdriver alert answer");
            if answer["value"]["error"].is_null() {
                return;
            }
            assert!(Instant::now() < deadline, "no dialog opened: {answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to 20 s until the page's body text satisfies `done`, reloading it each time
    /// when `reload` is on; returns the text.
    pub(crate) async fn wait_text(
        &self,
        reload: bool,
        what: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.body_text().await;
            if done(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the page says:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            if reload {
                let url = self.url().await;
                self.goto(&url).await;
            }
        }
    }

    /// A PNG of the window.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 PNG")
    }

    /// Ends the session (closing the browser) and stops the driver.
    pub(crate) async fn quit(mut self) {
        let _ = self.http.delete(self.session.as_str()).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Whether a WebDriver error says the element was replaced after it was found: `stale element
/// reference`, or, from some ChromeDriver builds when a navigation replaced the document
/// meanwhile, an `unknown error` whose message says the node "does not belong to the document".
fn replaced(answer: &Value) -> bool {
    let value = &answer["value"];
    match value["error"].as_str() {
        Some("stale element reference") => true,
        Some("unknown error") => value["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not belong to the document")),
        _ => false,
    }
}
