//! Slurm: how much later a trivial job runs and completes when it goes
//! through the broker than when the same batch script is given to `sbatch`.
//!
//! One run alternates the two paths job by job, one job at a time:
//! - sbatch: the adapter's own batch script for the job (rendered by
//!   `raybroker_slurm::script`, so both paths start the same Ray cluster and
//!   entrypoint), submitted with the `sbatch` command;
//! - broker: `POST /v1/jobs` to an in-process broker whose only cluster is
//!   that Slurm, through slurmrestd.
//!
//! Both are then polled at the same interval: the sbatch job on slurmrestd
//! (`GET /job/{id}`) until Slurm says RUNNING and COMPLETED, the broker job
//! on the broker until it says `running` and `succeeded`. RUNNING is the
//! start of the allocation; COMPLETED includes the job's Ray start (seconds),
//! which dominates both paths. Figures only; nothing is asserted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use raybroker::auth::hash_token;
use raybroker::config::Config;
use raybroker_core::{Job, JobState};
use raybroker_queue::testing::unique_prefix;
use raybroker_slurm::client::SlurmClient;
use raybroker_slurm::script::{self, ScriptParams};
use raybroker_slurm::{SlurmAuth, SlurmClusterConfig};
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::dispatch::Spread;
use crate::queue_cycle::delete_prefix;

const TOKEN: &str = "bench-token-slurm-0123456789abcdef";
/// Longest wait for one job to start, or to end.
const JOB_LIMIT: Duration = Duration::from_secs(180);

/// What to run against which Slurm.
#[derive(Clone, Debug)]
pub struct Settings {
    /// slurmrestd's URL.
    pub url: String,
    /// The cluster's JWT key file.
    pub jwt_key: PathBuf,
    /// The shared jobs directory.
    pub jobs_dir: PathBuf,
    /// The Ray venv's bin directory on the nodes.
    pub ray_bin: PathBuf,
    /// Jobs per path.
    pub jobs: usize,
    /// What every job runs.
    pub entrypoint: String,
    /// `loops.dispatch_every`, `reconcile_every`, `snapshot_every`.
    pub loops: (Duration, Duration, Duration),
    /// How often both paths poll.
    pub poll_every: Duration,
}

/// Figures of the Slurm run; times in milliseconds.
#[derive(Serialize, Debug, Default)]
pub struct SlurmFigures {
    /// Jobs per path (after one warm-up each).
    pub jobs: usize,
    /// What they ran.
    pub entrypoint: String,
    /// Poll interval of both paths.
    pub poll_every_ms: u64,
    /// `sbatch` -> Slurm says RUNNING.
    pub sbatch_running: Spread,
    /// `POST /v1/jobs` -> the broker says `running`.
    pub broker_running: Spread,
    /// `sbatch` -> Slurm says COMPLETED.
    pub sbatch_completed: Spread,
    /// `POST /v1/jobs` -> the broker says `succeeded`.
    pub broker_completed: Spread,
    /// Broker median / sbatch median, submit -> running.
    pub running_ratio: f64,
    /// Broker median / sbatch median, submit -> completed.
    pub completed_ratio: f64,
}

/// One job's two moments, ms after its submit.
struct Run {
    running_ms: f64,
    completed_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cluster_config(settings: &Settings, origin: &str) -> SlurmClusterConfig {
    SlurmClusterConfig::new(
        &settings.url,
        "root",
        SlurmAuth::JwtKey {
            key_file: settings.jwt_key.clone(),
            lifespan: Duration::from_secs(3600),
        },
        &settings.ray_bin,
        &settings.jobs_dir,
        origin,
    )
}

/// Runs the comparison.
pub async fn run(redis_url: &str, settings: &Settings) -> anyhow::Result<SlurmFigures> {
    if settings.jobs == 0 {
        bail!("--slurm-jobs must be at least 1");
    }
    let prefix = unique_prefix("bench-slurm");
    let origin = format!("raybroker-{prefix}");
    let direct_origin = format!("{origin}-sbatch");
    let direct_config = cluster_config(settings, &direct_origin);
    let client = SlurmClient::new(&direct_config).context("slurm client")?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = broker_config(redis_url, &prefix, &origin, settings)?;
    let server = tokio::spawn(raybroker::serve::run(config, listener, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let broker = Broker { base, http };

    let measured = async {
        broker.wait_healthy().await?;
        sbatch_one(&client, &direct_config, settings, "warmup").await?;
        broker.run_one(settings).await?;
        let (mut direct, mut brokered) = (Vec::new(), Vec::new());
        for i in 0..settings.jobs {
            if i % 2 == 1 {
                brokered.push(broker.run_one(settings).await?);
            }
            direct.push(sbatch_one(&client, &direct_config, settings, &i.to_string()).await?);
            if i % 2 == 0 {
                brokered.push(broker.run_one(settings).await?);
            }
        }
        anyhow::Ok((direct, brokered))
    }
    .await;
    let _ = stop.send(());
    server.await.context("broker task")??;
    delete_prefix(redis_url, &prefix).await?;
    for dir in [&origin, &direct_origin] {
        let _ = std::fs::remove_dir_all(settings.jobs_dir.join(dir));
    }
    let (direct, brokered) = measured?;
    let spread = |runs: &[Run], f: fn(&Run) -> f64| Spread::of(runs.iter().map(f));
    let sbatch_running = spread(&direct, |r| r.running_ms);
    let broker_running = spread(&brokered, |r| r.running_ms);
    let sbatch_completed = spread(&direct, |r| r.completed_ms);
    let broker_completed = spread(&brokered, |r| r.completed_ms);
    Ok(SlurmFigures {
        jobs: settings.jobs,
        entrypoint: settings.entrypoint.clone(),
        poll_every_ms: settings.poll_every.as_millis() as u64,
        running_ratio: broker_running.median_ms / sbatch_running.median_ms,
        completed_ratio: broker_completed.median_ms / sbatch_completed.median_ms,
        sbatch_running,
        broker_running,
        sbatch_completed,
        broker_completed,
    })
}

/// One job through `sbatch`, polled on slurmrestd.
async fn sbatch_one(
    client: &SlurmClient,
    config: &SlurmClusterConfig,
    settings: &Settings,
    label: &str,
) -> anyhow::Result<Run> {
    // The directory is per run (the origin is), so the label is enough.
    let name = format!("bench-sbatch-{label}");
    let dir = config.jobs_dir.join(&config.origin).join(&name);
    std::fs::create_dir_all(&dir)?;
    let dir_text = dir.to_string_lossy().into_owned();
    let script = script::render(
        &ScriptParams {
            submission_id: &name,
            job_dir: &dir_text,
            entrypoint: &settings.entrypoint,
            time_limit: None,
            gpu_model: None,
        },
        config,
    );
    let path = dir.join("job.sh");
    std::fs::write(&path, script)?;
    let sent = Instant::now();
    let output = tokio::process::Command::new("sbatch")
        .args([
            "--parsable",
            "--job-name",
            &name,
            "--cpus-per-task",
            "1",
            "--chdir",
        ])
        .arg(&dir)
        .arg("--output")
        .arg(dir.join("output.log"))
        .arg("--export=PATH=/usr/local/bin:/usr/bin:/bin,LANG=C.UTF-8,PYTHONUNBUFFERED=1")
        .arg(&path)
        .output()
        .await
        .context("run sbatch (is SLURM_CONF set? see deploy/local/slurm.sh env)")?;
    if !output.status.success() {
        bail!("sbatch failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let id: u64 = text
        .trim()
        .split(';')
        .next()
        .and_then(|id| id.parse().ok())
        .with_context(|| format!("sbatch printed no job id: {text}"))?;
    let mut running = None;
    loop {
        let job = client
            .job(id)
            .await?
            .context("slurm forgot the sbatch job")?;
        let state = job.job_state.first().map(String::as_str).unwrap_or("");
        if running.is_none() && state != "PENDING" {
            running = Some(sent.elapsed());
        }
        match state {
            "COMPLETED" => {
                let running = running.unwrap_or_else(|| sent.elapsed());
                return Ok(Run {
                    running_ms: ms(running),
                    completed_ms: ms(sent.elapsed()),
                });
            }
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" => {}
            other => bail!("sbatch job {id} ended {other}"),
        }
        if sent.elapsed() > JOB_LIMIT {
            bail!("sbatch job {id} did not complete within {JOB_LIMIT:?}");
        }
        tokio::time::sleep(settings.poll_every).await;
    }
}

struct Broker {
    base: String,
    http: reqwest::Client,
}

impl Broker {
    async fn wait_healthy(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self
                .http
                .get(format!("{}/v1/clusters", self.base))
                .bearer_auth(TOKEN)
                .send()
                .await;
            if let Ok(response) = answer {
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if body["clusters"][0]["healthy"] == true {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("the broker did not see the Slurm cluster healthy within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn run_one(&self, settings: &Settings) -> anyhow::Result<Run> {
        let spec = json!({"entrypoint": settings.entrypoint, "resources": {"cpus": 1}});
        let sent = Instant::now();
        let response = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(TOKEN)
            .json(&spec)
            .send()
            .await?;
        if response.status().as_u16() != 201 {
            bail!("the broker refused the job: {}", response.text().await?);
        }
        let id = response.json::<Job>().await?.id.to_string();
        let mut running = None;
        loop {
            let job: Job = self
                .http
                .get(format!("{}/v1/jobs/{id}", self.base))
                .bearer_auth(TOKEN)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            match job.state {
                JobState::Running if running.is_none() => running = Some(sent.elapsed()),
                JobState::Succeeded => {
                    return Ok(Run {
                        running_ms: ms(running.unwrap_or_else(|| sent.elapsed())),
                        completed_ms: ms(sent.elapsed()),
                    })
                }
                JobState::Failed | JobState::Cancelled => {
                    bail!("broker job {id} ended {}: {}", job.state, job.reason)
                }
                _ => {}
            }
            if sent.elapsed() > JOB_LIMIT {
                bail!("broker job {id} did not complete within {JOB_LIMIT:?}");
            }
            tokio::time::sleep(settings.poll_every).await;
        }
    }
}

fn broker_config(
    redis_url: &str,
    prefix: &str,
    origin: &str,
    settings: &Settings,
) -> anyhow::Result<Config> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let (dispatch, reconcile, snapshot) = settings.loops;
    let text = format!(
        r#"
version: 1
listen: 127.0.0.1:0
redis: {{url: "{redis_url}", key_prefix: "{prefix}", pool_size: 8}}
tenants:
  - {{name: bench, token_sha256: "{hash}"}}
origin: {origin}
clusters:
  - name: slurm
    kind: slurm
    slurm:
      address: "{url}"
      user: root
      auth: {{jwt_key_file: "{key}"}}
      ray_bin_dir: "{bin}"
      jobs_dir: "{jobs}"
loops:
  snapshot_every: {snapshot}
  dispatch_every: {dispatch}
  reconcile_every: {reconcile}
  gc_every: 1h
"#,
        hash = hash_token(TOKEN),
        url = settings.url,
        key = settings.jwt_key.display(),
        bin = settings.ray_bin.display(),
        jobs = settings.jobs_dir.display(),
        snapshot = ms(snapshot),
        dispatch = ms(dispatch),
        reconcile = ms(reconcile),
    );
    Ok(Config::from_yaml_str(&text, "slurm benchmark")?)
}

/// The figures for people.
pub fn print(f: &SlurmFigures) {
    println!(
        "slurm: {} jobs per path of `{}`, one at a time, polled every {} ms",
        f.jobs, f.entrypoint, f.poll_every_ms
    );
    let line = |what: &str, s: &Spread| {
        println!(
            "  {what:<34} median {:>7.0} ms  p90 {:>7.0} ms  (min {:.0}, max {:.0})",
            s.median_ms, s.p90_ms, s.min_ms, s.max_ms
        )
    };
    line("sbatch: submit -> RUNNING", &f.sbatch_running);
    line("broker: submit -> running", &f.broker_running);
    println!(
        "  ratio of medians (broker / sbatch) {:.3}",
        f.running_ratio
    );
    line("sbatch: submit -> COMPLETED", &f.sbatch_completed);
    line("broker: submit -> succeeded", &f.broker_completed);
    println!(
        "  ratio of medians (broker / sbatch) {:.3}",
        f.completed_ratio
    );
}
