//! What the CLI tests share: running the binary, and a canned HTTP
//! responder that stands in for the broker and records what the CLI sent.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The id every canned job has.
pub const JOB_ID: &str = "01JDQ3ZK8V6X9T2M4N5P7R8S9A";
/// Longest any one CLI run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Runs the binary with `args`, `stdin` and extra environment, with the
/// caller's RAYBROKER_* variables removed so the host cannot leak in.
pub fn run_with(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_raybroker"));
    command.args(args);
    for name in [
        "RAYBROKER_SERVER",
        "RAYBROKER_TOKEN",
        "RAYBROKER_TOKEN_FILE",
        "RAYBROKER_OUTPUT",
        "RAYBROKER_CONFIG",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    input
        .write_all(stdin.as_bytes())
        .expect("stdin takes the input");
    drop(input);
    let started = Instant::now();
    while child.try_wait().expect("the child can be polled").is_none() {
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("raybroker {args:?} ran longer than {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("the output is collected")
}

/// Runs the binary with `args` only.
pub fn run(args: &[&str]) -> Output {
    run_with(args, "", &[])
}

/// Stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit status.
pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

/// Writes `content` to a file in a per-process temp dir.
pub fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("raybroker-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, content).expect("temp file");
    path
}

/// One request as the responder saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// One canned answer.
pub struct Canned {
    status: u16,
    content_type: &'static str,
    body: String,
}

/// A JSON answer with `status`.
pub fn json_reply(status: u16, body: Value) -> Canned {
    Canned {
        status,
        content_type: "application/json",
        body: body.to_string(),
    }
}

/// An event stream of `transition` events (after a keep-alive comment), then the end.
pub fn sse_reply(events: &[Value]) -> Canned {
    let mut body = String::from(": keep-alive\n\n");
    for event in events {
        body.push_str(&format!("event: transition\ndata: {event}\n\n"));
    }
    Canned {
        status: 200,
        content_type: "text/event-stream",
        body,
    }
}

/// Answers each incoming connection with the next canned reply, then stops
/// listening (so an unexpected extra request fails to connect).
pub struct FakeBroker {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeBroker {
    pub fn start(replies: Vec<Canned>) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        thread::spawn(move || {
            for reply in replies {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let request = read_request(&mut stream);
                recorded.lock().expect("not poisoned").push(request);
                let head = format!(
                    "HTTP/1.1 {} Canned\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    reply.status,
                    reply.content_type,
                    reply.body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(reply.body.as_bytes());
            }
        });
        FakeBroker { url, requests }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("not poisoned").clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Recorded {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).expect("the request arrives");
        assert!(n > 0, "connection closed mid-request");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).expect("the body arrives");
        assert!(n > 0, "connection closed mid-body");
        data.extend_from_slice(&buf[..n]);
    }
    Recorded {
        method,
        target,
        headers,
        body: data[head_end..head_end + length].to_vec(),
    }
}

/// A job as the broker reports it.
pub fn job(state: &str) -> Value {
    json!({
        "id": JOB_ID, "tenant": "robotics", "name": "train", "state": state,
        "reason": "because", "attempt": 1, "cluster": "onprem-a", "cancel_requested": false,
        "created_at_ms": 1_700_000_000_000_u64, "updated_at_ms": 1_700_000_060_000_u64,
        "spec": {"entrypoint": "python train.py", "resources": {"cpus": 8, "gpus": 2, "nodes": 1}},
        "attempts": [], "history": []
    })
}

pub fn transition(from: Option<&str>, to: &str, at_ms: u64) -> Value {
    json!({"job_id": JOB_ID, "tenant": "robotics", "from": from, "to": to,
           "attempt": 1, "reason": format!("now {to}"), "at_ms": at_ms})
}
