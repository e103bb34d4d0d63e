//! The broker's HTTP API as the CLI calls it: wire calls only, no printing.
//!
//! Every call returns the parsed answer together with the raw body, so
//! `--output json` can print exactly what the broker sent.

use std::time::Duration;

use raybroker_core::{FieldError, Job, JobId, JobSpec, JobState};
use reqwest::header::{ACCEPT, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::error::{CliError, ErrorKind};
use super::wire::{CancelReply, ClusterList, ErrorBody, JobPage, LogsReply, PlacementReport};

/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plain request/answer call may take; the event stream has none.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `submit --dry-run` waits for the broker's explanation: the spec
/// is printed anyway, so an absent broker should not hold it up.
const DRY_RUN_TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed answer plus the exact body it came from.
#[derive(Debug)]
pub struct Reply<T> {
    /// The HTTP status (201 vs 200 tells a new job from an idempotent replay).
    pub status: StatusCode,
    /// The body as the broker sent it.
    pub raw: String,
    /// The body, parsed.
    pub body: T,
}

/// Filters for `GET /v1/jobs`.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs on this cluster.
    pub cluster: Option<String>,
    /// Only jobs with every one of these labels.
    pub labels: Vec<(String, String)>,
    /// Page size.
    pub limit: Option<u32>,
    /// Where the previous page ended.
    pub cursor: Option<String>,
    /// Another tenant's jobs (admins only).
    pub tenant: Option<String>,
}

impl ListQuery {
    /// The query string pairs, in a stable order.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(state) = self.state {
            pairs.push(("state", state.as_str().to_string()));
        }
        if let Some(cluster) = &self.cluster {
            pairs.push(("cluster", cluster.clone()));
        }
        for (key, value) in &self.labels {
            pairs.push(("label", format!("{key}={value}")));
        }
        if let Some(limit) = self.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = &self.cursor {
            pairs.push(("cursor", cursor.clone()));
        }
        if let Some(tenant) = &self.tenant {
            pairs.push(("tenant", tenant.clone()));
        }
        pairs
    }
}

/// A connection to one broker, with the caller's token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    /// The broker's base URL, always ending in `/` so paths join below it.
    base: Url,
    /// Sent as a bearer token when present.
    token: Option<String>,
}

impl Client {
    /// Checks the server URL and builds the HTTP client.
    pub fn new(server: &str, token: Option<String>) -> Result<Client, CliError> {
        let mut base = Url::parse(server).map_err(|err| {
            CliError::usage(format!("--server '{server}': {err}"))
                .with_hint("write e.g. --server http://broker.example.org:8080")
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(CliError::usage(format!(
                "--server '{server}': the scheme must be http or https"
            ))
            .with_hint("write e.g. --server http://broker.example.org:8080"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("raybroker-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| CliError::failed(format!("cannot set up HTTP: {err}")))?;
        Ok(Client { http, base, token })
    }

    /// The server URL as given (for messages).
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `POST /v1/jobs`: 201 for a new job, 200 for an idempotent replay.
    pub async fn submit(&self, spec: &JobSpec) -> Result<Reply<Job>, CliError> {
        let request = self.request(Method::POST, "v1/jobs")?.json(spec);
        self.call(request, "submit the job").await
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn job(&self, id: &JobId) -> Result<Reply<Job>, CliError> {
        let request = self.request(Method::GET, &format!("v1/jobs/{id}"))?;
        self.call(request, &format!("read job {id}")).await
    }

    /// `GET /v1/jobs`: one page.
    pub async fn list(&self, query: &ListQuery) -> Result<Reply<JobPage>, CliError> {
        let request = self.request(Method::GET, "v1/jobs")?.query(&query.pairs());
        self.call(request, "list jobs").await
    }

    /// `POST /v1/jobs/{id}/cancel`.
    pub async fn cancel(&self, id: &JobId) -> Result<Reply<CancelReply>, CliError> {
        let request = self.request(Method::POST, &format!("v1/jobs/{id}/cancel"))?;
        self.call(request, &format!("cancel job {id}")).await
    }

    /// `GET /v1/jobs/{id}/logs?offset=N`.
    pub async fn logs(&self, id: &JobId, offset: u64) -> Result<Reply<LogsReply>, CliError> {
        let request = self
            .request(Method::GET, &format!("v1/jobs/{id}/logs"))?
            .query(&[("offset", offset)]);
        self.call(request, &format!("read the log of job {id}"))
            .await
    }

    /// `GET /v1/jobs/{id}/placement`: why the job waits, or where it went.
    pub async fn placement(&self, id: &JobId) -> Result<Reply<PlacementReport>, CliError> {
        let request = self.request(Method::GET, &format!("v1/jobs/{id}/placement"))?;
        self.call(request, &format!("explain the placement of job {id}"))
            .await
    }

    /// `POST /v1/placement/dry-run`: what placement would do with `spec`
    /// now; the broker writes nothing.
    pub async fn dry_run(&self, spec: &JobSpec) -> Result<Reply<PlacementReport>, CliError> {
        let request = self
            .request(Method::POST, "v1/placement/dry-run")?
            .json(spec);
        self.call_within(request, "explain the spec's placement", DRY_RUN_TIMEOUT)
            .await
    }

    /// `GET path?query`, parsed as `T` (traces, results).
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Reply<T>, CliError> {
        let request = self.request(Method::GET, path)?.query(query);
        self.call(request, what).await
    }

    /// `GET path?query` whose answer is text (CSV), returned as sent.
    pub async fn get_text(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<String, CliError> {
        let request = self.request(Method::GET, path)?.query(query);
        let (_, raw) = self.send_within(request, what, REQUEST_TIMEOUT).await?;
        Ok(raw)
    }

    /// `GET /v1/clusters`.
    pub async fn clusters(&self) -> Result<Reply<ClusterList>, CliError> {
        let request = self.request(Method::GET, "v1/clusters")?;
        self.call(request, "list clusters").await
    }

    /// `GET /v1/jobs/{id}/events`: the open server-sent event stream.
    /// `last_event_id` resumes after an event already seen.
    pub async fn events(
        &self,
        id: &JobId,
        last_event_id: Option<&str>,
    ) -> Result<Response, CliError> {
        let mut request = self
            .request(Method::GET, &format!("v1/jobs/{id}/events"))?
            .header(ACCEPT, "text/event-stream");
        if let Some(last) = last_event_id {
            request = request.header("Last-Event-ID", last);
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let raw = response.text().await.unwrap_or_default();
        Err(api_error(status, &raw, &format!("follow job {id}")))
    }

    pub(super) fn request(&self, method: Method, path: &str) -> Result<RequestBuilder, CliError> {
        let url = self
            .base
            .join(path)
            .map_err(|err| CliError::usage(format!("--server '{}': {err}", self.server())))?;
        let mut request = self.http.request(method, url);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        Ok(request)
    }

    /// Sends a request/answer call and parses a success body as `T`.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> Result<Reply<T>, CliError> {
        self.call_within(request, what, REQUEST_TIMEOUT).await
    }

    /// [`Client::call`] with its own time limit.
    async fn call_within<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        what: &str,
        limit: Duration,
    ) -> Result<Reply<T>, CliError> {
        let (status, raw) = self.send_within(request, what, limit).await?;
        let body = serde_json::from_str(&raw).map_err(|err| {
            CliError::failed(format!(
                "could not read the broker's answer when trying to {what}: {err}"
            ))
            .with_hint(format!(
                "is {} a raybroker of the same version as this CLI?",
                self.server()
            ))
        })?;
        Ok(Reply { status, raw, body })
    }

    /// Sends a request within `limit`: the status and body text of a
    /// success, else the broker's error (or why no answer came) for `what`.
    async fn send_within(
        &self,
        request: RequestBuilder,
        what: &str,
        limit: Duration,
    ) -> Result<(StatusCode, String), CliError> {
        let response = request
            .timeout(limit)
            .send()
            .await
            .map_err(|err| self.transport_error(&err))?;
        let status = response.status();
        let raw = response
            .text()
            .await
            .map_err(|err| self.transport_error(&err))?;
        if !status.is_success() {
            return Err(api_error(status, &raw, what));
        }
        Ok((status, raw))
    }

    /// The request never got an HTTP answer.
    pub fn transport_error(&self, err: &reqwest::Error) -> CliError {
        let server = self.server();
        let cause = root_cause(err);
        if err.is_connect() {
            CliError::failed(format!("cannot connect to the broker at {server}: {cause}"))
                .with_hint(format!(
                    "is the broker running at {server}? start it with `raybroker serve --config FILE`, \
                     or point --server (RAYBROKER_SERVER) at it"
                ))
                .transient()
        } else if err.is_timeout() {
            CliError::failed(format!("the broker at {server} did not answer in time"))
                .with_hint("it may be overloaded; try again, or check its logs")
                .transient()
        } else {
            CliError::failed(format!("talking to the broker at {server} failed: {cause}"))
                .transient()
        }
    }
}

/// The innermost cause, e.g. "Connection refused (os error 111)", which says
/// more than reqwest's "error sending request for url".
fn root_cause(err: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// Turns a 4xx/5xx answer into the error the user sees: the broker's
/// message, one line per offending field, and a hint chosen by status.
pub fn api_error(status: StatusCode, raw: &str, what: &str) -> CliError {
    let (message, fields) = match serde_json::from_str::<ErrorBody>(raw) {
        Ok(body) => (
            without_inlined_fields(&body.error.message, &body.error.fields),
            body.error.fields,
        ),
        Err(_) => {
            let text = raw.trim();
            let snippet: String = text.chars().take(200).collect();
            let message = if snippet.is_empty() {
                format!("could not {what}: HTTP {status}")
            } else {
                format!("could not {what}: HTTP {status}: {snippet}")
            };
            (message, Vec::new())
        }
    };
    let kind = match status {
        StatusCode::BAD_REQUEST
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::Usage,
        _ => ErrorKind::Failed,
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED => Some("set RAYBROKER_TOKEN or pass --token (or --token-file)"),
        StatusCode::FORBIDDEN => Some(
            "your token does not allow this; --tenant and other tenants' jobs need an admin token",
        ),
        StatusCode::NOT_FOUND => Some("check the job id; `raybroker list` shows your jobs"),
        StatusCode::TOO_MANY_REQUESTS => Some("the broker is limiting requests; try again shortly"),
        s if s.is_server_error() => Some("the broker failed; its logs say why"),
        _ if !fields.is_empty() => Some("fix the fields above and try again"),
        _ => None,
    };
    let details = fields.iter().map(ToString::to_string);
    let mut error = match kind {
        ErrorKind::Usage => CliError::usage(message),
        ErrorKind::Failed => CliError::failed(message),
    }
    .with_details(details);
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        error = error.transient();
    }
    if let Some(hint) = hint {
        error = error.with_hint(hint);
    }
    error
}

/// The broker's message may repeat the fields inline ("invalid job:
/// resources.gpus: ...; placement: ..."); they are printed one per line
/// below it, so keep only the part before the first one.
fn without_inlined_fields(message: &str, fields: &[FieldError]) -> String {
    let Some(first) = fields.first() else {
        return message.to_string();
    };
    match message.find(&first.to_string()) {
        Some(at) if at > 0 => message[..at]
            .trim_end_matches([' ', ':', ';', ','])
            .to_string(),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_list_fields_and_exit_2() {
        let raw = r#"{"error": {"code": "invalid_spec", "message": "the job spec is invalid",
                     "fields": [{"field": "resources.gpus", "message": "must be whole above 1"}]}}"#;
        let err = api_error(StatusCode::UNPROCESSABLE_ENTITY, raw, "submit the job");
        assert_eq!(err.kind, ErrorKind::Usage);
        assert_eq!(err.message, "the job spec is invalid");
        assert_eq!(err.details, ["resources.gpus: must be whole above 1"]);
        assert_eq!(
            err.hint.as_deref(),
            Some("fix the fields above and try again")
        );
    }

    #[test]
    fn fields_repeated_in_the_message_are_shown_once() {
        let raw = r#"{"error": {"code": "invalid", "message": "invalid job: priority: too high; name: too long",
                     "fields": [{"field": "priority", "message": "too high"}, {"field": "name", "message": "too long"}]}}"#;
        let err = api_error(StatusCode::UNPROCESSABLE_ENTITY, raw, "submit the job");
        assert_eq!(err.message, "invalid job");
        assert_eq!(err.details, ["priority: too high", "name: too long"]);

        let raw = r#"{"error": {"code": "malformed", "message": "bad query parameter 'limit': must be 1 to 500",
                     "fields": [{"field": "limit", "message": "must be 1 to 500"}]}}"#;
        let err = api_error(StatusCode::BAD_REQUEST, raw, "list jobs");
        assert_eq!(err.message, "bad query parameter 'limit': must be 1 to 500");
    }

    #[test]
    fn unauthorized_hints_at_the_token() {
        let raw = r#"{"error": {"code": "unauthorized", "message": "missing bearer token"}}"#;
        let err = api_error(StatusCode::UNAUTHORIZED, raw, "list jobs");
        assert_eq!(err.kind, ErrorKind::Failed);
        assert!(err.hint.unwrap().contains("RAYBROKER_TOKEN"));
    }

    #[test]
    fn a_non_json_error_body_is_shown_with_the_status() {
        let err = api_error(StatusCode::BAD_GATEWAY, "upstream down\n", "list jobs");
        assert_eq!(
            err.message,
            "could not list jobs: HTTP 502 Bad Gateway: upstream down"
        );
        assert_eq!(err.kind, ErrorKind::Failed);
    }

    #[test]
    fn server_urls_are_checked_and_joined_below_their_path() {
        let client = Client::new("http://broker:8080/api", None).unwrap();
        assert_eq!(client.base.as_str(), "http://broker:8080/api/");
        assert_eq!(client.server(), "http://broker:8080/api");
        let err = Client::new("broker:8080", None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Usage);
        assert!(Client::new("not a url", None).is_err());
    }

    #[test]
    fn list_query_repeats_labels() {
        let query = ListQuery {
            state: Some(JobState::Running),
            labels: vec![
                ("project".into(), "ant".into()),
                ("seed".into(), "1".into()),
            ],
            limit: Some(50),
            ..ListQuery::default()
        };
        let pairs: Vec<(&str, String)> = query.pairs();
        assert_eq!(
            pairs,
            [
                ("state", "running".to_string()),
                ("label", "project=ant".to_string()),
                ("label", "seed=1".to_string()),
                ("limit", "50".to_string()),
            ]
        );
    }
}
