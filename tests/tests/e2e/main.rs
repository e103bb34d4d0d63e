//! End-to-end tests: the broker as a real process, over a real Redis and two
//! real Ray heads of different versions with fake GPUs.
//!
//! Needs `RAYBROKER_TEST_RAY_A` (Ray 2.31.0, 4 x A100) and
//! `RAYBROKER_TEST_RAY_B` (current Ray, 2 x L4); `deploy/local/test.sh`
//! starts both. Without them every test fails, saying how to start them.
//! Redis comes from `RAYBROKER_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6390`).
//!
//! - [`routing`]: GPU jobs land on the head with their model; a job no head
//!   can run is refused at submit;
//! - [`failures`]: a failing entrypoint fails its job, without retries;
//! - [`failover`]: jobs on a killed head fail over and run once; exit code 1
//!   is retried only when the job's policy says so; `/metrics` families;
//! - [`cancel`]: cancel a queued, a just-submitted and a running job;
//! - [`restart`]: queued jobs survive `kill -9` of the broker;
//! - [`groups`]: parallel groups keep their concurrency, series groups stop
//!   at a failure, group cancel, members released once across crashes;
//! - [`sweeps`]: grid, random and TPE sweeps and ASHA early stopping with a
//!   toy training script;
//! - [`telemetry`]: an OpenTelemetry-instrumented job's spans join the
//!   broker's trace; its metrics (log lines and OTLP) reach its results;
//! - [`crash`]: 200 jobs while the broker is SIGKILLed again and again, then
//!   every attempt checked against the heads' own records;
//! - [`slurm`]: GPU jobs routed to the test Slurm by model run inside Ray
//!   there; failures, time limits and cancels (needs the `RAYBROKER_TEST_SLURM_*`
//!   variables `deploy/local/test.sh` exports).

mod cancel;
mod crash;
mod failover;
mod failures;
mod groups;
mod kuberay;
mod restart;
mod routing;
mod slurm;
mod support;
mod sweeps;
mod telemetry;
