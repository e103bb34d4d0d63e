//! Placement benchmark: decisions per second of [`raybroker_placement::plan`]
//! against snapshots of 1,500 nodes in 4 clusters, with 1k, 100k and 1M
//! queued jobs.
//!
//! Run: `cargo run --release -p raybroker-placement --example placement_bench`
//! (options: `--rounds N`, `--warmup N`, `--depths 1000,100000,1000000`).
//!
//! The federation has the Alibaba GPU trace's node shapes (8-GPU G2/G3/V100,
//! 4-, 2- and 1-GPU T4/P100/V100/A10, CPU-only; see `nodes`), spread over
//! two on-prem clusters (tier 0) and two cloud clusters (tier 1, priced).
//! Jobs follow the trace's task mix (48 % one GPU, 38 % a share of one GPU,
//! 13 % CPU-only, 1 % 2 to 8 GPUs, a third naming GPU models) plus 2 %
//! multi-node gangs, from 8 tenants with weights, quotas and bursting.
//!
//! A queue is modelled as Redis holds it: per tenant, ordered by priority
//! then age. Each round does what the dispatch loop does: peek the head of
//! every tenant's queue (at most `MAX_HEAD_PER_TENANT` each), plan, apply
//! the placements to the snapshots, and dequeue what was placed; new jobs
//! arrive to keep the depth constant and running jobs end after their
//! duration, so the federation stays saturated. A decision is one job the
//! plan placed or gave a wait reason; only `plan` is timed.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use raybroker_adapter::{Capabilities, CapacitySnapshot, NodeCapacity, NodeResources};
use raybroker_core::{Bytes, GpuModel, Placement, Quantity, Resources};
use raybroker_placement::{
    plan, reserve, ClusterView, PendingJob, Policy, Problem, Quota, TenantPolicy, Totals, Usage,
    WaitReason, MAX_HEAD_PER_TENANT,
};

const TENANTS: usize = 8;
const ROUND_MS: u64 = 1_000;

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The trace's node shapes: (count, GPUs, model, CPUs, memory GiB). 1,500
/// nodes: all 1,213 GPU nodes of the trace and 287 of its 310 CPU-only ones.
const SHAPES: &[(u32, u64, &str, u64, u64)] = &[
    (549, 8, "G2", 96, 384),
    (387, 2, "T4", 104, 512),
    (17, 4, "T4", 96, 384),
    (131, 2, "P100", 64, 256),
    (3, 1, "P100", 8, 60),
    (39, 8, "G3", 128, 768),
    (28, 4, "V100M16", 32, 128),
    (19, 1, "V100M16", 8, 32),
    (8, 8, "V100M16", 64, 256),
    (21, 8, "V100M32", 96, 768),
    (9, 4, "V100M32", 48, 368),
    (2, 1, "A10", 128, 1024),
    (129, 0, "", 32, 256),
    (59, 0, "", 96, 512),
    (99, 0, "", 64, 256),
];

fn clusters() -> Vec<ClusterView> {
    let names = ["onprem-a", "onprem-b", "cloud-a", "cloud-b"];
    let mut nodes: Vec<Vec<NodeCapacity>> = vec![Vec::new(); names.len()];
    let mut i = 0usize;
    for &(count, gpus, model, cpus, mem) in SHAPES {
        for _ in 0..count {
            let total = NodeResources {
                cpus: Quantity::whole(cpus),
                memory: Bytes(mem << 30),
                gpus: Quantity::whole(gpus),
                custom: BTreeMap::new(),
            };
            // 3 of every 8 nodes on-prem A, 3 on-prem B, 1 each cloud.
            let cluster = [0, 1, 0, 1, 2, 0, 1, 3][i % 8];
            nodes[cluster].push(NodeCapacity {
                id: format!("{}-{i:04}", names[cluster]),
                gpu_model: (gpus > 0).then(|| GpuModel::parse(model).unwrap()),
                free: total.clone(),
                total,
            });
            i += 1;
        }
    }
    names
        .iter()
        .zip(nodes)
        .enumerate()
        .map(|(c, (name, nodes))| ClusterView {
            name: name.to_string(),
            tier: if c < 2 { 0 } else { 1 },
            cost_per_gpu_hour: [0.0, 0.0, 2.5, 3.0][c],
            labels: BTreeMap::new(),
            capabilities: Capabilities {
                fractional_gpus: true,
                multi_node: true,
                gpu_models: true,
                custom_resources: true,
            },
            snapshot: Some(CapacitySnapshot {
                taken_at_ms: 0,
                nodes,
                pending_jobs: 0,
                version: "bench".into(),
            }),
            fresh: true,
            pending_allowance: 8,
        })
        .collect()
}

/// A kind of job the queue draws from.
struct Template {
    resources: Resources,
    priority: i32,
    rounds: u64,
}

fn templates(rng: &mut Rng, n: usize) -> Vec<Template> {
    let specs = [
        "T4",
        "T4",
        "T4",
        "T4",
        "G2",
        "P100",
        "V100M16|V100M32",
        "G3",
        "P100|V100M16|V100M32",
    ];
    let shares = [800u64, 800, 400, 400, 300, 600, 200, 500, 100];
    (0..n)
        .map(|_| {
            let kind = rng.below(1000);
            let mut r = Resources {
                cpus: Quantity::whole(1 + rng.below(12)),
                memory: Bytes((2 + rng.below(30)) << 30),
                ..Resources::default()
            };
            match kind {
                0..=479 => r.gpus = Quantity::whole(1),
                480..=859 => r.gpus = Quantity::from_units(shares[rng.below(9) as usize] * 10),
                860..=989 => {}
                990..=999 => r.gpus = Quantity::whole([2, 4, 8][rng.below(3) as usize]),
                _ => unreachable!(),
            }
            if !r.gpus.is_zero() && rng.below(3) == 0 {
                r.gpu_types = GpuModel::parse_list(specs[rng.below(9) as usize]).unwrap();
            }
            if rng.below(50) == 0 {
                r.gpus = Quantity::whole(8);
                r.nodes = 2 + rng.below(3) as u32;
                r.gpu_types = GpuModel::parse_list("G2").unwrap();
            }
            Template {
                resources: r,
                priority: rng.below(3) as i32 - 1,
                rounds: 60 + rng.below(1_740),
            }
        })
        .collect()
}

fn policy() -> Policy {
    let mut policy = Policy::default();
    for t in 0..TENANTS {
        let mut tenant = TenantPolicy {
            weight: [1.0, 1.0, 2.0, 1.0, 1.0, 3.0, 1.0, 1.0][t],
            burst: t % 2 == 0,
            ..TenantPolicy::default()
        };
        if t == 3 {
            tenant.quota.gpus = Some(Quantity::whole(400));
        }
        if t == 4 {
            let cap = Quota {
                gpus: Some(Quantity::whole(100)),
                ..Quota::default()
            };
            tenant.tier_quotas.insert(1, cap);
        }
        policy.tenants.insert(format!("tenant-{t}"), tenant);
    }
    policy
}

/// Per tenant: (priority band, sequence) -> (template, enqueued at).
struct Queue {
    tenants: Vec<BTreeMap<(i32, u64), (u32, u64)>>,
    seq: u64,
}

impl Queue {
    /// A new job of a random kind for `tenant`.
    fn push(&mut self, rng: &mut Rng, templates: &[Template], tenant: usize, now_ms: u64) {
        let t = rng.below(templates.len() as u64) as u32;
        self.seq += 1;
        let band = -templates[t as usize].priority;
        self.tenants[tenant].insert((band, self.seq), (t, now_ms));
    }

    fn depth(&self) -> usize {
        self.tenants.iter().map(|q| q.len()).sum()
    }
}

/// A running job: when it ends and what it holds.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Running {
    end: std::cmp::Reverse<u64>,
    cluster: usize,
    nodes: Vec<usize>,
    template: u32,
    tenant: usize,
}

struct Stats {
    rounds: usize,
    decisions: usize,
    placed: usize,
    never: usize,
    planning: Duration,
    per_round: Vec<Duration>,
    /// Time this thread was on a CPU while planning (Linux), which leaves
    /// out time the scheduler gave to other processes.
    cpu_ns: Option<u64>,
}

/// This thread's CPU time so far, from /proc (Linux only).
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn run(depth: usize, warmup: usize, rounds: usize, empty_each_round: bool) -> Stats {
    let mut rng = Rng(42);
    let templates = templates(&mut rng, 4_096);
    let policy = policy();
    let pristine = clusters();
    let mut views = pristine.clone();
    let locate: HashMap<String, (usize, usize)> = views
        .iter()
        .enumerate()
        .flat_map(|(c, v)| {
            let nodes = &v.snapshot.as_ref().unwrap().nodes;
            nodes
                .iter()
                .enumerate()
                .map(move |(n, node)| (node.id.clone(), (c, n)))
        })
        .collect();
    let mut queue = Queue {
        tenants: vec![BTreeMap::new(); TENANTS],
        seq: 0,
    };
    let mut now = 3_600_000u64;
    for i in 0..depth {
        let enqueued = (i as u64 * 3_600_000) / depth as u64;
        queue.push(&mut rng, &templates, i % TENANTS, enqueued);
    }
    let tenant_names: Vec<String> = (0..TENANTS).map(|t| format!("tenant-{t}")).collect();
    let mut running: BinaryHeap<Running> = BinaryHeap::new();
    let mut in_flight = vec![[Totals::default(); 2]; TENANTS];
    let mut stats = Stats {
        rounds: 0,
        decisions: 0,
        placed: 0,
        never: 0,
        planning: Duration::ZERO,
        per_round: Vec::new(),
        cpu_ns: Some(0),
    };
    for round in 0..warmup + rounds {
        now += ROUND_MS;
        if empty_each_round {
            views = pristine.clone();
        }
        while running.peek().is_some_and(|r| r.end.0 <= now) {
            let done = running.pop().unwrap();
            let r = &templates[done.template as usize].resources;
            let snapshot = views[done.cluster].snapshot.as_mut().unwrap();
            for &n in &done.nodes {
                let free = &mut snapshot.nodes[n].free;
                free.gpus = free.gpus.checked_add(r.gpus).unwrap();
                free.cpus = free.cpus.checked_add(r.cpus).unwrap();
                free.memory.0 += r.memory.0;
            }
            let tier = views[done.cluster].tier as usize;
            let used = &mut in_flight[done.tenant][tier];
            let demand = Totals::of(r);
            used.gpus = used.gpus.checked_sub(demand.gpus).unwrap();
            used.cpus = used.cpus.checked_sub(demand.cpus).unwrap();
            used.memory.0 -= demand.memory.0;
        }
        let mut usage = Usage::default();
        for (t, tiers) in in_flight.iter().enumerate() {
            for (tier, amount) in tiers.iter().enumerate() {
                usage.add(&tenant_names[t], tier as u32, *amount);
            }
        }
        // Peek the head of every tenant's queue, as dispatch does.
        let mut keys = Vec::new();
        let mut jobs = Vec::new();
        for (t, q) in queue.tenants.iter().enumerate() {
            for (&(band, seq), &(template, enqueued)) in q.iter().take(MAX_HEAD_PER_TENANT) {
                keys.push((t, (band, seq), template));
                jobs.push(PendingJob {
                    id: seq.to_string(),
                    tenant: tenant_names[t].clone(),
                    priority: -band,
                    enqueued_at_ms: enqueued,
                    resources: templates[template as usize].resources.clone(),
                    placement: Placement::default(),
                    max_wait_ms: None,
                });
            }
        }
        let problem = Problem {
            now_ms: now,
            jobs: &jobs,
            clusters: &views,
            policy: &policy,
            usage: &usage,
        };
        let cpu_before = thread_cpu_ns();
        let started = Instant::now();
        let result = plan(&problem);
        let took = started.elapsed();
        let cpu = thread_cpu_ns()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        if round >= warmup {
            stats.rounds += 1;
            stats.decisions += result.placed.len() + result.waiting.len();
            stats.placed += result.placed.len();
            stats.planning += took;
            stats.per_round.push(took);
            stats.cpu_ns = stats.cpu_ns.zip(cpu).map(|(sum, ns)| sum + ns);
        }
        let by_id: HashMap<&str, usize> = jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.id.as_str(), i))
            .collect();
        // Dispatch fails what no cluster could ever run: it leaves the queue.
        for waiting in &result.waiting {
            if let WaitReason::NeverFits { .. } = waiting.reason {
                let (t, key, _) = keys[by_id[waiting.job_id.as_str()]];
                queue.tenants[t].remove(&key);
                queue.push(&mut rng, &templates, t, now);
                if round >= warmup {
                    stats.never += 1;
                }
            }
        }
        for placed in &result.placed {
            let i = by_id[placed.job_id.as_str()];
            let (t, key, template) = keys[i];
            queue.tenants[t].remove(&key);
            queue.push(&mut rng, &templates, t, now);
            let cluster = locate[&placed.nodes[0]].0;
            reserve(
                views[cluster].snapshot.as_mut().unwrap(),
                &jobs[i].resources,
                &placed.nodes,
            );
            if empty_each_round {
                continue; // nothing runs on: the next round starts empty
            }
            let tier = views[cluster].tier as usize;
            in_flight[t][tier] = in_flight[t][tier].plus(jobs[i].demand());
            running.push(Running {
                end: std::cmp::Reverse(now + templates[template as usize].rounds * ROUND_MS),
                cluster,
                nodes: placed.nodes.iter().map(|id| locate[id].1).collect(),
                template,
                tenant: t,
            });
        }
        assert_eq!(queue.depth(), depth, "the queue depth stays constant");
    }
    stats
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let rounds: usize = arg("--rounds").map_or(1_000, |v| v.parse().expect("--rounds N"));
    let warmup: usize = arg("--warmup").map_or(300, |v| v.parse().expect("--warmup N"));
    let depths: Vec<usize> = arg("--depths")
        .unwrap_or_else(|| "1000,100000,1000000".into())
        .split(',')
        .map(|d| d.parse().expect("--depths 1000,100000"))
        .collect();
    let nodes: usize = clusters()
        .iter()
        .map(|c| c.snapshot.as_ref().unwrap().nodes.len())
        .sum();
    println!(
        "{nodes} nodes in 4 clusters, {TENANTS} tenants, head of {MAX_HEAD_PER_TENANT} jobs per tenant, {warmup} warm-up + {rounds} measured rounds\n"
    );
    println!("| federation | queued jobs | decisions/round | placed/round | never fit/round | plan p50 | plan p99 | µs/decision | decisions/s | CPU µs/decision | decisions/CPU-s |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, empty) in [("saturated", false), ("empty each round", true)] {
        for &depth in &depths {
            let mut s = run(depth, if empty { 0 } else { warmup }, rounds, empty);
            s.per_round.sort_unstable();
            let pct = |p: f64| s.per_round[((s.per_round.len() - 1) as f64 * p) as usize];
            let secs = s.planning.as_secs_f64();
            println!(
                "| {label} | {depth} | {:.0} | {:.1} | {:.2} | {:.2} ms | {:.2} ms | {:.2} | {:.0} | {} | {} |",
                s.decisions as f64 / s.rounds as f64,
                s.placed as f64 / s.rounds as f64,
                s.never as f64 / s.rounds as f64,
                pct(0.5).as_secs_f64() * 1e3,
                pct(0.99).as_secs_f64() * 1e3,
                secs * 1e6 / s.decisions as f64,
                s.decisions as f64 / secs,
                s.cpu_ns.map_or("n/a".into(), |ns| format!("{:.2}", ns as f64 / 1e3 / s.decisions as f64)),
                s.cpu_ns.map_or("n/a".into(), |ns| format!("{:.0}", s.decisions as f64 * 1e9 / ns as f64)),
            );
        }
    }
    println!("\nFor contrast, `plan` handed the whole queue instead of its heads (one call, empty federation): it picks the heads itself in one pass over the jobs.\n");
    println!("| queued jobs passed to plan | decisions | plan |");
    println!("|---:|---:|---:|");
    for &depth in &depths {
        let (decisions, took) = whole_queue(depth);
        println!(
            "| {depth} | {decisions} | {:.1} ms |",
            took.as_secs_f64() * 1e3
        );
    }
}

/// One plan over a whole queue of `depth` jobs on an empty federation.
fn whole_queue(depth: usize) -> (usize, Duration) {
    let mut rng = Rng(7);
    let templates = templates(&mut rng, 4_096);
    let policy = policy();
    let views = clusters();
    let jobs: Vec<PendingJob> = (0..depth)
        .map(|i| {
            let t = &templates[rng.below(templates.len() as u64) as usize];
            PendingJob {
                id: i.to_string(),
                tenant: format!("tenant-{}", i % TENANTS),
                priority: t.priority,
                enqueued_at_ms: i as u64,
                resources: t.resources.clone(),
                placement: Placement::default(),
                max_wait_ms: None,
            }
        })
        .collect();
    let usage = Usage::default();
    let problem = Problem {
        now_ms: depth as u64,
        jobs: &jobs,
        clusters: &views,
        policy: &policy,
        usage: &usage,
    };
    let started = Instant::now();
    let result = plan(&problem);
    (
        result.placed.len() + result.waiting.len(),
        started.elapsed(),
    )
}
