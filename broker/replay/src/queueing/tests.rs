use raybroker_core::Quantity;

use super::*;
use crate::policy::{BestFit, EngineConfig, FirstFit, Raybroker, RoundRobin, TimeLimits};
use crate::testkit::{fed, job, spec, task};

/// Cluster a (tier 0) and b (tier 1), one 2-GPU G2 node each.
fn two_clusters() -> Federation {
    fed(&[
        spec("a", 0, &[("a0", Some("G2"), 2)]),
        spec("b", 1, &[("b0", Some("G2"), 2)]),
    ])
}

/// 2 GPUs at t0 for 20 s, 2 GPUs at t0 for 10 s, 2 GPUs at t1 for 5 s.
fn three_jobs() -> Vec<Task> {
    let two = || job(Quantity::whole(2), "");
    vec![
        task(0, two(), 0, 20),
        task(1, two(), 0, 10),
        task(2, two(), 1, 5),
    ]
}

/// Replays at real time, the broker deciding at every event.
fn replay(tasks: &[Task], fed: Federation, policy: &mut dyn Scheduler) -> QueueRun {
    let pace = Pace {
        load: 1.0,
        factor: 1.0,
        dispatch_ms: 0,
    };
    run_paced(tasks, fed, policy, pace)
}

fn starts(run: &QueueRun) -> Vec<Option<u64>> {
    run.outcomes.iter().map(|o| o.start_ms).collect()
}

#[test]
fn checked_policies_start_the_third_job_where_capacity_frees_first() {
    let eager = EngineConfig {
        max_wait_ms: 0,
        ..EngineConfig::default()
    };
    for policy in [
        &mut FirstFit as &mut dyn Scheduler,
        &mut BestFit,
        &mut Raybroker::new(eager),
    ] {
        let run = replay(&three_jobs(), two_clusters(), policy);
        assert_eq!(
            starts(&run),
            [Some(0), Some(0), Some(10_000)],
            "{}",
            run.policy
        );
        assert_eq!(run.outcomes[2].cluster, Some(1));
        assert_eq!(run.makespan_ms, 20_000);
        // Allocation: 1.0 over [0, 15), 0.5 over [15, 20).
        assert_eq!(run.allocated.integral(0, run.makespan_ms), 17_500.0);
        // One job waits over [1, 10), while every GPU is allocated.
        assert_eq!(
            run.allocated
                .integral_while(&run.runnable, 0, run.makespan_ms),
            (9_000.0, 9_000)
        );
        assert_eq!(run.refused_starts, 0);
    }
}

#[test]
fn raybroker_bursts_only_after_the_wait_bound() {
    let bounded = |max_wait_ms| {
        let config = EngineConfig {
            max_wait_ms,
            ..EngineConfig::default()
        };
        replay(&three_jobs(), two_clusters(), &mut Raybroker::new(config))
    };
    // 5 s: job 1 bursts when its bound ends (a wake-up, no other event);
    // job 2 may burst from 6 s but the cloud is busy until 15 s.
    let run = bounded(5_000);
    assert_eq!(starts(&run), [Some(0), Some(5_000), Some(15_000)]);
    assert_eq!(run.outcomes[1].cluster, Some(1));
    // 10 minutes: nothing bursts; both wait for on-prem.
    let run = bounded(600_000);
    assert_eq!(starts(&run), [Some(0), Some(20_000), Some(30_000)]);
    assert!(run.outcomes.iter().all(|o| o.cluster == Some(0)));
    assert_eq!(run.refused_starts, 0);
}

#[test]
fn raybroker_bursts_at_once_when_the_forecast_gives_no_room_within_the_bound() {
    let forecast = |time_limits| {
        let config = EngineConfig {
            max_wait_ms: 600_000,
            time_limits,
            ..EngineConfig::default()
        };
        replay(&three_jobs(), two_clusters(), &mut Raybroker::new(config))
    };
    // Every job declares 2 h: on-prem frees nothing provably within the
    // 10 min bound, so job 1 bursts at once, and job 2 when b frees.
    let run = forecast(TimeLimits::Uniform(7_200_000));
    assert_eq!(starts(&run), [Some(0), Some(0), Some(10_000)]);
    assert_eq!(run.outcomes[1].cluster, Some(1));
    assert_eq!(run.outcomes[2].cluster, Some(1));
    // Exact limits: job 1 is planned with job 0, before anything runs, so
    // nothing is forecast to free and it bursts at once. Job 2 could burst
    // when b frees at 10 s, but job 0 frees a at 20 s, within job 2's bound:
    // it waits for on-prem.
    let run = forecast(TimeLimits::Exact);
    assert_eq!(starts(&run), [Some(0), Some(0), Some(20_000)]);
    assert_eq!(run.outcomes[1].cluster, Some(1));
    assert_eq!(run.outcomes[2].cluster, Some(0));
    assert_eq!(run.refused_starts, 0);
}

#[test]
fn round_robin_waits_on_its_own_cluster() {
    let run = replay(&three_jobs(), two_clusters(), &mut RoundRobin);
    // The third arrival goes to a (2 % 2 = 0), busy until 20 s, though b frees at 10 s.
    assert_eq!(starts(&run), [Some(0), Some(0), Some(20_000)]);
    assert_eq!(run.outcomes[2].cluster, Some(0));
    assert_eq!(run.makespan_ms, 25_000);
    assert_eq!(run.allocated.integral(0, run.makespan_ms), 17_500.0);
    assert_eq!(run.queued.at(15_000), 1.0);
    assert!(run.outcomes.iter().all(|o| !o.sent_never));
}

#[test]
fn jobs_sent_where_they_never_fit_stay_queued() {
    let fed = fed(&[
        spec("a", 0, &[("a0", Some("G2"), 2)]),
        spec("b", 0, &[("b0", Some("T4"), 2)]),
    ]);
    let tasks: Vec<Task> = (0..2)
        .map(|i| task(i, job(Quantity::whole(1), "G2"), 0, 10))
        .collect();
    let rr = replay(&tasks, fed.clone(), &mut RoundRobin);
    assert!(!rr.outcomes[0].sent_never && rr.outcomes[1].sent_never);
    assert_eq!(starts(&rr), [Some(0), None]);
    assert_eq!(
        (rr.queued.at(u64::MAX), rr.runnable.at(u64::MAX)),
        (1.0, 0.0)
    );
    let bf = replay(&tasks, fed, &mut BestFit);
    assert_eq!(starts(&bf), [Some(0), Some(0)]);
}

#[test]
fn jobs_no_cluster_can_run_are_rejected() {
    let tasks = vec![
        task(0, job(Quantity::whole(1), "A10"), 0, 10),
        task(1, job(Quantity::whole(1), ""), 0, 10),
    ];
    let run = replay(
        &tasks,
        two_clusters(),
        &mut Raybroker::new(EngineConfig::default()),
    );
    assert!(run.outcomes[0].rejected && run.outcomes[0].start_ms.is_none());
    assert_eq!(run.outcomes[1].start_ms, Some(0));
}

#[test]
fn small_jobs_backfill_past_a_waiting_big_one() {
    let fed = fed(&[spec("a", 0, &[("a0", Some("G2"), 8)])]);
    let tasks = vec![
        task(0, job(Quantity::whole(4), ""), 0, 10),
        task(1, job(Quantity::whole(8), ""), 1, 10),
        task(2, job(Quantity::whole(2), ""), 2, 5),
        task(3, job(Quantity::whole(8), ""), 3, 1),
    ];
    let run = replay(&tasks, fed, &mut FirstFit);
    // The 2-GPU job starts at once; the 8-GPU ones start in order as the node empties.
    assert_eq!(
        starts(&run),
        [Some(0), Some(10_000), Some(2_000), Some(20_000)]
    );
}

#[test]
fn compression_hits_the_offered_load() {
    // 2 x (1 GPU x 100 s) over a 10 s span on 4 GPUs: load 1 needs 5x.
    let tasks = vec![
        task(0, job(Quantity::whole(1), ""), 0, 100),
        task(1, job(Quantity::whole(1), ""), 10, 100),
    ];
    assert_eq!(compression(&tasks, 40_000, 1.0), 5.0);
    assert_eq!(compression(&tasks, 40_000, 2.0), 2.5);
    let run = run(&tasks, two_clusters(), &mut FirstFit, 2.0, 0);
    assert_eq!(run.outcomes[1].arrival_ms, 25_000);
    assert_eq!(run.pace.factor, 2.5);
    assert_eq!(run.last_arrival_ms, 25_000);
}

#[test]
fn the_broker_decides_at_its_ticks_clusters_at_once() {
    let pace = Pace {
        load: 1.0,
        factor: 1.0,
        dispatch_ms: 4_000,
    };
    let tasks = three_jobs();
    let ff = run_paced(&tasks, two_clusters(), &mut FirstFit, pace);
    // Arrivals at 0 s start at the 0 s tick; job 2 (1 s) waits for b to free
    // at 10 s, then for the 12 s tick.
    assert_eq!(starts(&ff), [Some(0), Some(0), Some(12_000)]);
    let rr = run_paced(&tasks, two_clusters(), &mut RoundRobin, pace);
    assert_eq!(
        starts(&rr),
        [Some(0), Some(0), Some(20_000)],
        "a cluster starts jobs itself"
    );
    assert_eq!(pace.tick_at(4_001), 8_000);
}

#[test]
fn repeats_keep_the_spacing_and_renumber_rows() {
    let one = || job(Quantity::whole(1), "");
    let tasks = vec![
        task(0, one(), 100, 5),
        task(1, one(), 110, 5),
        task(2, one(), 130, 5),
    ];
    let copies = repeat(&tasks, 2);
    let arrivals: Vec<u64> = copies.iter().map(|t| t.timing.unwrap().arrival_s).collect();
    // Span 30 s, mean gap 15 s: the second copy starts 45 s after the first.
    assert_eq!(arrivals, [100, 110, 130, 145, 155, 175]);
    let rows: Vec<usize> = copies.iter().map(|t| t.row).collect();
    assert_eq!(rows, [0, 1, 2, 3, 4, 5]);
    assert_eq!(copies[4].shape, tasks[1].shape);
    // Twice the work over (45 + 30) / 30 = 2.5 times the span: load 0.8 of one copy's.
    let one_copy = compression(&tasks, 10_000, 1.0);
    assert!((compression(&copies, 10_000, 1.0) / one_copy - 0.8).abs() < 1e-12);
}

#[test]
fn one_plan_never_packs_more_gpu_shares_than_the_devices_hold() {
    // One 2-GPU node; 0.6 of a GPU is taken: devices free 0.4 and 1.0.
    let fed = fed(&[spec("a", 0, &[("a0", Some("T4"), 2)])]);
    let share = |units| job(Quantity::from_units(units), "");
    let tasks = vec![
        task(0, share(6_000), 0, 100),
        task(1, share(7_000), 1, 10),
        task(2, share(7_000), 1, 10),
    ];
    let run = replay(&tasks, fed, &mut Raybroker::new(EngineConfig::default()));
    // The snapshot reads 1.4 GPUs free (one whole, 0.4 of the other). The
    // plan puts the first 0.7 share on the whole GPU, leaving 0.3 and 0.4:
    // no device holds the second, so it is not placed (and not refused); it
    // starts when the first ends.
    assert_eq!(run.refused_starts, 0);
    assert_eq!(starts(&run), [Some(0), Some(1_000), Some(11_000)]);
}
