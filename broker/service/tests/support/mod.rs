//! An in-process broker on a real Redis, under a key prefix of its own.
//!
//! Redis comes from `RAYBROKER_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6390`). Each broker uses a fresh `test-<ulid>` prefix
//! and deletes only its own keys when stopped; nothing is flushed.

// Each test binary uses only part of this module.
#![allow(dead_code)]

use std::time::Duration;

use raybroker::auth::hash_token;
use raybroker::config::Config;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Token of the `robotics` tenant.
pub const ROBOTICS: &str = "robotics-token-0123456789";
/// Token of the `vision` tenant.
pub const VISION: &str = "vision-token-0123456789";
/// Token of the `ops` tenant, an admin.
pub const OPS: &str = "ops-token-0123456789";

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("RAYBROKER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390".into())
}

/// A running broker.
pub struct Broker {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The key prefix of this broker's queue.
    pub prefix: String,
    /// How long [`Broker::stop`] waits for the server to end (10 s).
    pub stop_within: Duration,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Options for [`Broker::start_with`].
pub struct Options {
    /// The Redis URL the broker is configured with.
    pub redis_url: String,
    /// `api.max_body_bytes`.
    pub max_body: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            redis_url: redis_url(),
            max_body: "4KiB",
        }
    }
}

impl Broker {
    /// A broker on the test Redis.
    pub async fn start() -> Broker {
        Broker::start_with(Options::default()).await
    }

    /// A broker with `options`.
    pub async fn start_with(options: Options) -> Broker {
        let prefix = format!("test-{}", ulid::Ulid::new().to_string().to_lowercase());
        let yaml = format!(
            r#"
version: 1
listen: 127.0.0.1:0
redis: {{url: "{url}", key_prefix: "{prefix}", pool_size: 8}}
queue: {{lease_ttl: 30s, event_stream_max_len: 10000}}
api: {{max_body_bytes: {max_body}}}
tenants:
  - {{name: robotics, token_sha256: "{robotics}"}}
  - {{name: vision, token_sha256: "{vision}"}}
  - {{name: ops, admin: true, token_sha256: "{ops}"}}
gpu_models: [G2]
clusters:
  - {{name: onprem-a, kind: ray, tier: 0, labels: {{site: onprem}}, ray: {{address: "http://127.0.0.1:9"}}}}
  - {{name: gke-burst, kind: ray, tier: 1, cost_per_gpu_hour: 2.5, ray: {{address: "http://127.0.0.1:9"}}}}
"#,
            url = options.redis_url,
            max_body = options.max_body,
            robotics = hash_token(ROBOTICS),
            vision = hash_token(VISION),
            ops = hash_token(OPS),
        );
        Broker::from_yaml(prefix, &yaml).await
    }

    /// A broker on the config `yaml`, whose Redis key prefix is `prefix`.
    pub async fn from_yaml(prefix: String, yaml: &str) -> Broker {
        let config = Config::from_yaml_str(yaml, "test config").expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(raybroker::serve::run(config, listener, async {
            let _ = stopped.await;
        }));
        Broker {
            base,
            prefix,
            stop_within: Duration::from_secs(10),
            client: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// A request to `path` with `token` (none: unauthenticated).
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// GET with a token; the status and the JSON body.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        json(
            self.request(Method::GET, path, Some(token))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    /// POST a JSON body with a token; the status and the JSON body.
    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let response = self
            .request(Method::POST, path, Some(token))
            .json(body)
            .send()
            .await
            .expect("POST");
        json(response).await
    }

    /// POST a raw body with a content type; the status and the JSON body.
    pub async fn post_raw(
        &self,
        token: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self.request(Method::POST, "/v1/jobs", Some(token));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        json(request.body(body).send().await.expect("POST")).await
    }

    /// Submits a job; returns its id.
    pub async fn submit(&self, token: &str, spec: Value) -> String {
        let (status, job) = self.post_json("/v1/jobs", token, &spec).await;
        assert_eq!(status, 201, "{job}");
        job["id"].as_str().expect("job id").to_string()
    }

    /// Every Redis key under this broker's prefix.
    pub async fn keys(&self) -> Vec<String> {
        let mut conn = redis_connection().await;
        redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .expect("KEYS")
    }

    /// Stops the server, checks it stopped cleanly and promptly, and deletes its keys.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(self.stop_within, server)
                .await
                .unwrap_or_else(|_| panic!("server stops within {:?}", self.stop_within))
                .expect("server task did not panic");
            result.expect("server ran without error");
        }
        let keys = self.keys().await;
        if !keys.is_empty() {
            let mut conn = redis_connection().await;
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("DEL");
        }
    }
}

/// A connection to the test Redis.
pub async fn redis_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis must run (see RAYBROKER_TEST_REDIS_URL)")
}

/// The status and JSON body of a response (`null` for an empty body).
pub async fn json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// The `field`s named by an error body.
pub fn fields(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .filter_map(|f| f["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads server-sent events from `response` until the stream ends; each as
/// `(event name, JSON data)`. Panics if it does not end within `limit`.
pub async fn read_events(response: Response, limit: Duration) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if let Some(event) = parse_event(&block) {
                    events.push(event);
                }
            }
        }
    };
    tokio::time::timeout(limit, read)
        .await
        .expect("the event stream ends in time");
    events
}

fn parse_event(block: &str) -> Option<(String, Value)> {
    let mut name = None;
    let mut data = String::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        }
    }
    let data = serde_json::from_str(&data).ok()?;
    Some((name?, data))
}
