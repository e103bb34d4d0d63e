//! One test's broker: its config file, the broker process (which a test may
//! SIGKILL and start again on the same config), and the cleanup of
//! everything the test left (process, Ray jobs, Redis keys). Calls to its
//! API are in `api.rs`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard};

use super::{ray, redis_url, Heads, HEAD_A, HEAD_B, POLL};

/// Held by every running [`TestEnv`]: the tests of this binary share two
/// small heads and assert on their capacity, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The tenant every test submits as.
pub const TENANT: &str = "e2e";

/// How long a broker may take to answer `/readyz` and see both heads.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd broker may take to exit before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// What differs between tests' configs.
#[derive(Clone, Debug)]
pub struct Options {
    /// `loops.gc_every`. Long by default: the garbage collector deletes the
    /// finished Ray jobs of finished broker jobs, which tests read after the
    /// broker job ended.
    pub gc_every: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options { gc_every: "1h" }
    }
}

/// A broker process over both heads, with a config of its own.
pub struct TestEnv {
    /// The heads.
    pub heads: Heads,
    /// The origin every Ray job of this test is tagged with.
    pub origin: String,
    /// The broker's Redis key prefix.
    pub prefix: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The tenant's token.
    pub token: String,
    /// How many times the broker process was started.
    pub starts: u32,
    label: String,
    dir: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    /// The broker's API client (see `api.rs`).
    pub(super) http: reqwest::Client,
    child: Option<Child>,
    /// The test Slurm cluster is in the config too (see `slurm.rs`).
    pub(super) with_slurm: bool,
    /// Released last, once everything above is cleaned up.
    _serial: MutexGuard<'static, ()>,
}

impl TestEnv {
    /// A broker with the default options, ready: it answers `/readyz` and
    /// reports both heads healthy.
    pub async fn start(label: &str) -> TestEnv {
        TestEnv::start_with(label, Options::default()).await
    }

    /// A broker with `options`, ready.
    pub async fn start_with(label: &str, options: Options) -> TestEnv {
        TestEnv::start_over(label, options, false).await
    }

    /// A broker over both heads and, when `with_slurm`, the test Slurm.
    pub(super) async fn start_over(label: &str, options: Options, with_slurm: bool) -> TestEnv {
        TestEnv::start_full(label, options, with_slurm, Heads::from_env(), "").await
    }

    /// A broker over `heads` (heads the test started itself) rather than
    /// the shared ones, with `extra` appended to its config (top-level
    /// sections such as `retry:`).
    pub async fn start_on(label: &str, options: Options, heads: Heads, extra: &str) -> TestEnv {
        TestEnv::start_full(label, options, false, heads, extra).await
    }

    async fn start_full(
        label: &str,
        options: Options,
        with_slurm: bool,
        heads: Heads,
        extra: &str,
    ) -> TestEnv {
        let serial = SERIAL.lock().await;
        let unique = ulid::Ulid::new().to_string().to_lowercase();
        let origin = format!("rbe2e-{label}-{unique}");
        let prefix = format!("e2e-{label}-{unique}");
        let token = format!("{:032x}", rand::random::<u128>());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&origin);
        std::fs::create_dir_all(&dir).expect("a directory for the broker's files");
        let port = free_port();
        let mut config = config_yaml(&heads, &origin, &prefix, &token, port, &options);
        if with_slurm {
            config = super::slurm::with_slurm_cluster(&config);
        }
        config.push_str(extra);
        let config_path = dir.join("broker.yaml");
        std::fs::write(&config_path, config).expect("write the broker's config");
        let mut env = TestEnv {
            heads,
            origin,
            prefix,
            base: format!("http://127.0.0.1:{port}"),
            token,
            starts: 0,
            label: label.to_string(),
            log_path: dir.join("broker.log"),
            config_path,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("an HTTP client"),
            child: None,
            with_slurm,
            _serial: serial,
        };
        env.restart().await;
        env
    }

    /// Starts the broker process on the same config and waits until it is
    /// ready. The previous process must be gone ([`TestEnv::kill`]).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is still running");
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the broker's log");
        let _ = writeln!(log, "=== test harness: broker start {} ===", self.starts);
        let child = Command::new(env!("CARGO_BIN_EXE_raybroker-e2e-broker"))
            .arg(&self.config_path)
            .env("RUST_LOG", "info,raybroker=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the broker process");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// SIGKILLs the broker process, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for `/readyz`, then for both clusters healthy.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "the broker exited during start-up ({status}); its log:\n{}",
                        self.log_tail(40)
                    );
                }
            }
            let Some(reason) = self.not_ready_because().await else {
                return;
            };
            assert!(
                Instant::now() < deadline,
                "the broker was not ready within {READY_WITHIN:?}: {reason}\nits log:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Why the broker is not ready yet, `None` when it is.
    async fn not_ready_because(&self) -> Option<String> {
        match self.http.get(format!("{}/readyz", self.base)).send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => return Some(format!("/readyz answered {}", response.status())),
            Err(e) => return Some(format!("/readyz: {e}")),
        }
        let (status, body) = match self
            .try_call(reqwest::Method::GET, "/v1/clusters", None)
            .await
        {
            Ok(answer) => answer,
            Err(e) => return Some(e),
        };
        if status != 200 {
            return Some(format!("/v1/clusters answered {status}: {body}"));
        }
        let clusters = body["clusters"].as_array().cloned().unwrap_or_default();
        let healthy: Vec<&str> = clusters
            .iter()
            .filter(|c| c["healthy"] == true)
            .filter_map(|c| c["name"].as_str())
            .collect();
        let slurm_ok = !self.with_slurm || healthy.contains(&super::slurm::SLURM);
        if healthy.contains(&HEAD_A) && healthy.contains(&HEAD_B) && slurm_ok {
            None
        } else {
            Some(format!("not every cluster is healthy yet: {body}"))
        }
    }

    /// The last `lines` lines of the broker's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it does not exit in time.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on the pid of a child this test started and has
            // not reaped yet, so the pid cannot belong to another process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("the broker did not stop within {STOP_WITHIN:?} of SIGTERM; killing it");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for TestEnv {
    /// Stops the broker, stops and deletes this test's Ray jobs, deletes its
    /// Redis keys; keeps the broker's log when the test failed.
    fn drop(&mut self) {
        self.stop();
        let (heads, origin) = (self.heads.clone(), self.origin.clone());
        // The test's runtime may be unwinding: clean up on a runtime of its own.
        let ray_cleanup = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?
                .block_on(ray::clean_up(&heads, &origin, Duration::from_secs(30)))
        })
        .join();
        match ray_cleanup {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("cleaning up the Ray jobs of {}: {e}", self.origin),
            Err(_) => eprintln!("cleaning up the Ray jobs of {} panicked", self.origin),
        }
        if self.with_slurm {
            super::slurm::clean_up(&self.origin);
        }
        if let Err(e) = delete_keys(&self.prefix) {
            eprintln!("deleting the Redis keys under {}: {e}", self.prefix);
        }
        if std::thread::panicking() {
            eprintln!(
                "test {} failed; the broker's config and log are in {}\nlast lines of the log:\n{}",
                self.label,
                self.dir.display(),
                self.log_tail(60)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A port nothing listens on now (the broker binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn config_yaml(
    heads: &Heads,
    origin: &str,
    prefix: &str,
    token: &str,
    port: u16,
    options: &Options,
) -> String {
    format!(
        r#"# Written by the raybroker end-to-end tests.
version: 1
listen: 127.0.0.1:{port}
redis: {{url: "{redis}", key_prefix: "{prefix}", pool_size: 8}}
# Short, so jobs a killed dispatcher held come back soon.
queue: {{lease_ttl: 5s}}
tenants:
  - {{name: {TENANT}, token_sha256: "{hash}"}}
origin: {origin}
clusters:
  - name: {HEAD_A}
    kind: ray
    tier: 0
    labels: {{head: a}}
    pending_allowance: 2
    ray: {{address: "{a}", request_timeout: 15s}}
  - name: {HEAD_B}
    kind: ray
    tier: 0
    labels: {{head: b}}
    pending_allowance: 2
    ray: {{address: "{b}", request_timeout: 15s}}
loops:
  snapshot_every: 1s
  snapshot_max_age: 15s
  dispatch_every: 100ms
  reconcile_every: 300ms
  lost_grace: 30s
  gc_every: {gc_every}
"#,
        redis = redis_url(),
        hash = raybroker::auth::hash_token(token),
        a = heads.a,
        b = heads.b,
        gc_every = options.gc_every,
    )
}

/// Deletes every key under `prefix` (never anything else).
fn delete_keys(prefix: &str) -> redis::RedisResult<()> {
    use redis::Commands as _;
    let mut conn = redis::Client::open(redis_url())?.get_connection()?;
    let keys: Vec<String> = conn
        .scan_match::<_, String>(format!("{prefix}:*"))?
        .collect::<redis::RedisResult<_>>()?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL").arg(chunk).exec(&mut conn)?;
    }
    Ok(())
}
