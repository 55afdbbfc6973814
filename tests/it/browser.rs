//! Headless chromium driven over the DevTools protocol, for what a person
//! looks at (live reload, forms through nginx).
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};

use crate::util::{free_port, wait_for_port};

/// Headless chromium with a DevTools port; killed when dropped.
pub struct Browser {
    child: tokio::process::Child,
    port: u16,
    _profile: tempfile::TempDir,
}

pub fn chromium_args(profile: &std::path::Path) -> Vec<String> {
    [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

impl Browser {
    pub async fn open(url: &str) -> Browser {
        Browser::open_sized(url, "1280,900").await
    }

    /// [`Browser::open`] with a window of `size` ("390,844" is a phone).
    pub async fn open_sized(url: &str, size: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = tokio::process::Command::new("chromium")
            .args(chromium_args(profile.path()))
            .arg(format!("--window-size={size}"))
            .arg(format!("--remote-debugging-port={port}"))
            .arg(url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_for_port(port, "chromium's DevTools port").await;
        Browser {
            child,
            port,
            _profile: profile,
        }
    }

    /// The page's DevTools WebSocket.
    pub async fn page(&self) -> Page {
        let ws_url = crate::util::poll_until(
            Duration::from_secs(20),
            "chromium to show a page target",
            || async {
                let list: serde_json::Value =
                    match reqwest::get(format!("http://127.0.0.1:{}/json/list", self.port)).await {
                        Ok(r) => r.json().await.unwrap_or_default(),
                        Err(_) => serde_json::Value::Null,
                    };
                list.as_array()
                    .into_iter()
                    .flatten()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
            },
        )
        .await;
        let (ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        Page { ws, next_id: 1 }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    /// Evaluates a JavaScript expression in the page, returning its value.
    pub async fn eval(&mut self, expr: &str) -> serde_json::Value {
        self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expr, "returnByValue": true}),
        )
        .await["result"]["value"]
            .clone()
    }

    /// Emulates a screen `width` × `height` CSS pixels wide (a phone at
    /// 390: headless windows are never narrower than 500), and reloads.
    pub async fn emulate_screen(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
        self.eval("location.reload()").await;
    }

    /// Sends one DevTools command and returns its result.
    pub async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = serde_json::json!({
            "id": id,
            "method": method,
            "params": params,
        });
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::Text(
                msg.to_string().into(),
            ))
            .await
            .unwrap();
        while let Some(m) = self.ws.next().await {
            let Ok(tokio_tungstenite::tungstenite::Message::Text(t)) = m else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                return v["result"].clone();
            }
        }
        panic!("DevTools connection closed");
    }

    /// Polls `expr` until `ok` holds for its value.
    pub async fn wait_for(
        &mut self,
        what: &str,
        expr: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let v = self.eval(expr).await;
            if ok(&v) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}; last value {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
