//! With AOF and `appendfsync always` (the production setting in
//! docs/operations.md), every job the queue acknowledged survives Redis being
//! killed with SIGKILL. This test starts its own Redis so it can kill it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raybroker_core::{JobSpec, JobState, TenantId};
use raybroker_queue::testing::{self, now_ms};
use raybroker_queue::{JobQueue, QueueConfig};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_redis(dir: &Path, port: u16) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH (deploy/local/redis.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[tokio::test]
async fn acknowledged_jobs_survive_sigkill_of_redis() {
    let dir = std::env::temp_dir().join(testing::unique_prefix("aof"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let config = QueueConfig {
        key_prefix: "rb".into(),
        ..QueueConfig::default()
    };
    let t = TenantId::new("t").unwrap();

    let mut redis = start_redis(&dir, port);
    let queue = JobQueue::new(testing::pool(&url), config.clone());
    let mut ids = Vec::new();
    for i in 0..200 {
        let spec = JobSpec {
            entrypoint: format!("python train.py --seed {i}"),
            ..JobSpec::default()
        };
        ids.push(
            queue
                .submit(&t, spec, now_ms())
                .await
                .unwrap()
                .job()
                .id
                .clone(),
        );
    }
    let leased = queue.lease(&t, 5, now_ms()).await.unwrap();
    redis.kill().unwrap(); // SIGKILL: no shutdown, no final fsync
    redis.wait().unwrap();
    drop(queue);

    let mut redis = start_redis(&dir, port);
    // Redis loads the AOF before it answers; the pool retries connections.
    let queue = JobQueue::new(testing::pool(&url), config);
    let deadline = Instant::now() + Duration::from_secs(10);
    while queue.ping().await.is_err() {
        assert!(Instant::now() < deadline, "redis did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &ids {
        let job = queue
            .get(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("job {id} lost"));
        let expected = if leased.iter().any(|l| &l.job.id == id) {
            JobState::Dispatching
        } else {
            JobState::Queued
        };
        assert_eq!(job.state, expected);
    }
    assert_eq!(queue.queued_count(&t).await.unwrap(), 195);
    // The leased jobs come back once their lease runs out.
    let reclaimed = queue.reclaim_expired(now_ms() + 3_600_000).await.unwrap();
    assert_eq!(reclaimed.len(), 5);
    assert_eq!(queue.queued_count(&t).await.unwrap(), 200);
    redis.kill().unwrap();
    redis.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
