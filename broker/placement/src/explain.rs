//! Why a job goes where it goes, or waits: for each cluster, infeasible with
//! the reason, blocked now with the reason, or startable with its score
//! components; plus the job's fate in the plan and its place in line.
//!
//! The explanation is taken while the real plan runs, at the moment the job
//! is decided, so it always agrees with [`crate::plan`].

use std::fmt;

use serde::Serialize;

use crate::fairness::{effective_priority, tenant_position, MAX_HEAD_PER_TENANT};
use crate::fit::static_fit;
use crate::plan::MAX_HEAD_PER_SHAPE;
use crate::plan::{run, Candidate, Input, State};
use crate::score::{cluster_key, node_key, ScoreComponents};
use crate::types::{Problem, WaitReason};
use crate::Release;

/// Everything placement can say about one job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// The job.
    pub job_id: String,
    /// What the plan does with it.
    pub outcome: Outcome,
    /// Its priority plus aging, when it was found.
    pub effective_priority: Option<i64>,
    /// Its tenant's weighted dominant share when the job was considered.
    pub dominant_share: Option<f64>,
    /// Every cluster's verdict, in configuration order.
    pub clusters: Vec<ClusterExplanation>,
}

/// What the plan does with the job.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// It starts now.
    Placed {
        /// Where.
        cluster: String,
        /// On which nodes.
        nodes: Vec<String>,
    },
    /// It waits.
    Waiting {
        /// 1 = next in line among the waiting jobs.
        position: usize,
        /// What for.
        reason: WaitReason,
    },
    /// It is further back in its tenant's queue than a plan looks.
    NotConsidered {
        /// Its 1-based place in its tenant's queue.
        tenant_position: usize,
        /// How many of each tenant's jobs a plan considers.
        considered: usize,
    },
    /// Older jobs of its tenant of the same kind (shape, constraints, wait
    /// bound) fill what a plan considers of that kind; it goes after them.
    BehindItsKind {
        /// Its 1-based place in its tenant's queue.
        tenant_position: usize,
        /// How many jobs of one kind of one tenant a plan considers.
        considered: usize,
    },
    /// No job of the problem has this id.
    UnknownJob,
}

/// One cluster's verdict on the job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterExplanation {
    /// The cluster.
    pub cluster: String,
    /// Its tier.
    pub tier: u32,
    /// Its verdict.
    pub verdict: ClusterVerdict,
}

/// Whether a cluster could take the job.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ClusterVerdict {
    /// It could never run the job.
    Infeasible {
        /// Why not.
        reason: String,
    },
    /// It could run the job, but not now.
    Blocked {
        /// Why not now.
        reason: String,
    },
    /// It could start the job now.
    Startable {
        /// How it ranks.
        score: ScoreComponents,
        /// True for the cluster the plan chose.
        chosen: bool,
        /// Why the plan may not use it although it could start the job
        /// (a burst tier before the wait bound, or bursting off).
        note: Option<String>,
    },
}

/// How the plan decided the traced job.
pub(crate) struct Trace {
    pub clusters: Vec<ClusterExplanation>,
    pub effective_priority: i64,
    pub dominant_share: f64,
}

impl Trace {
    /// Marks the cluster the plan chose.
    pub(crate) fn mark_chosen(&mut self, cluster: &str) {
        for entry in self.clusters.iter_mut().filter(|e| e.cluster == cluster) {
            if let ClusterVerdict::Startable { chosen, .. } = &mut entry.verdict {
                *chosen = true;
            }
        }
    }
}

/// Explains what [`crate::plan`] does with `job_id` and why, cluster by
/// cluster. Runs the whole plan: the same cost as one plan.
pub fn explain(job_id: &str, problem: &Problem) -> Explanation {
    explain_run(job_id, problem, None)
}

/// [`explain`] for [`crate::plan_with_releases`]: what the plan does with
/// `job_id` given the burst forecast `releases`.
pub fn explain_with_releases(job_id: &str, problem: &Problem, releases: &[Release]) -> Explanation {
    explain_run(job_id, problem, Some(releases))
}

fn explain_run(job_id: &str, problem: &Problem, releases: Option<&[Release]>) -> Explanation {
    let Some(index) = problem.jobs.iter().position(|j| j.id == job_id) else {
        return Explanation {
            job_id: job_id.to_string(),
            outcome: Outcome::UnknownJob,
            effective_priority: None,
            dominant_share: None,
            clusters: Vec::new(),
        };
    };
    let job = &problem.jobs[index];
    let (plan, trace) = run(problem, releases, Some(index));
    let outcome = if let Some(placed) = plan.placement_of(job_id) {
        Outcome::Placed {
            cluster: placed.cluster.clone(),
            nodes: placed.nodes.clone(),
        }
    } else if let Some(waiting) = plan.waiting_of(job_id) {
        Outcome::Waiting {
            position: waiting.position,
            reason: waiting.reason.clone(),
        }
    } else {
        let tenant_position = tenant_position(problem, job);
        if tenant_position > MAX_HEAD_PER_TENANT {
            Outcome::NotConsidered {
                tenant_position,
                considered: MAX_HEAD_PER_TENANT,
            }
        } else {
            Outcome::BehindItsKind {
                tenant_position,
                considered: MAX_HEAD_PER_SHAPE,
            }
        }
    };
    match trace {
        Some(trace) => Explanation {
            job_id: job_id.to_string(),
            outcome,
            effective_priority: Some(trace.effective_priority),
            dominant_share: Some(trace.dominant_share),
            clusters: trace.clusters,
        },
        None => Explanation {
            job_id: job_id.to_string(),
            outcome,
            effective_priority: Some(effective_priority(
                job,
                problem.now_ms,
                problem.policy.aging_ms_per_priority,
            )),
            dominant_share: None,
            clusters: problem
                .clusters
                .iter()
                .map(|view| ClusterExplanation {
                    cluster: view.name.clone(),
                    tier: view.tier,
                    verdict: match static_fit(&job.resources, &job.placement, view) {
                        Err(reason) => ClusterVerdict::Infeasible { reason },
                        Ok(()) => ClusterVerdict::Blocked {
                            reason: "the job is not yet at the head of its tenant's queue"
                                .to_string(),
                        },
                    },
                })
                .collect(),
        },
    }
}

/// True when a feasible cluster below `tier` takes jobs now, so a job that
/// has not waited its bound stays off `tier`.
fn held_back(state: &State, feasible: &[bool], tier: u32) -> bool {
    state
        .clusters
        .iter()
        .zip(feasible)
        .any(|(c, ok)| *ok && c.view.tier < tier && c.accepting.is_ok())
}

/// Every cluster's verdict on the candidate at the moment it is decided.
pub(crate) fn trace(
    input: &Input,
    state: &State,
    c: &Candidate,
    feasible: &[bool],
    home: Option<u32>,
    waited_out: bool,
    until_ms: u64,
) -> Trace {
    let job = &input.problem.jobs[c.job];
    let policy = input.problem.policy.tenant(&job.tenant);
    let clusters = state
        .clusters
        .iter()
        .zip(feasible)
        .map(|(cluster, could_run)| {
            let view = cluster.view;
            let blocked = |reason: String| ClusterVerdict::Blocked { reason };
            let verdict = if !*could_run {
                ClusterVerdict::Infeasible {
                    reason: static_fit(&job.resources, &job.placement, view)
                        .err()
                        .unwrap_or_default(),
                }
            } else if let Err(reason) = &cluster.accepting {
                blocked(reason.clone())
            } else if let Some(d) = state.ledger.breach(&job.tenant, Some(view.tier), job.demand()) {
                blocked(format!("tier {} quota: {d}", view.tier))
            } else {
                match cluster.find(&c.need, |node| node_key(&input.workload, node, &c.need)) {
                    None => blocked("not enough free capacity now".to_string()),
                    Some(chosen) => {
                        let key = cluster_key(view, &chosen);
                        let above = home.is_some_and(|home| view.tier > home);
                        let note = if above && !policy.burst {
                            Some("above the job's lowest feasible tier, and its tenant does not burst".to_string())
                        } else if above && !waited_out && held_back(state, feasible, view.tier) {
                            Some(format!("a burst tier for this job: allowed from {until_ms} ms"))
                        } else {
                            None
                        };
                        let nodes = chosen
                            .iter()
                            .map(|(_, i)| cluster.nodes[*i as usize].id.to_string())
                            .collect();
                        ClusterVerdict::Startable {
                            score: ScoreComponents::new(&input.workload, view, &key, nodes),
                            chosen: false,
                            note,
                        }
                    }
                }
            };
            ClusterExplanation {
                cluster: view.name.clone(),
                tier: view.tier,
                verdict,
            }
        })
        .collect();
    Trace {
        clusters,
        effective_priority: effective_priority(
            job,
            input.problem.now_ms,
            input.problem.policy.aging_ms_per_priority,
        ),
        dominant_share: state.ledger.share(&job.tenant),
    }
}

impl fmt::Display for WaitReason {
    /// One line for people, e.g. `waiting for the tier 1 quota: gpus: ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |per_cluster: &[(String, String)]| {
            let parts: Vec<String> = per_cluster
                .iter()
                .map(|(c, why)| format!("{c}: {why}"))
                .collect();
            parts.join("; ")
        };
        match self {
            WaitReason::Capacity { per_cluster, reserved } => {
                write!(f, "waiting for capacity: {}", list(per_cluster))?;
                if let Some(r) = reserved {
                    write!(f, "; capacity held for it on {} ({})", r.cluster, r.nodes.join(", "))?;
                }
                Ok(())
            }
            WaitReason::Quota { tier: None, detail } => write!(f, "waiting for quota: {detail}"),
            WaitReason::Quota { tier: Some(t), detail } => {
                write!(f, "waiting for the tier {t} quota: {detail}")
            }
            WaitReason::FairShare { dominant_share, ahead } => write!(
                f,
                "waiting for fair share: {} went first (this tenant's weighted dominant share: {dominant_share:.3})",
                ahead.join(", ")
            ),
            WaitReason::BurstWaitBound { until_ms } => write!(
                f,
                "waiting for its lowest tier until {until_ms} ms, then it may burst to a higher one"
            ),
            WaitReason::Reservation { for_job } => {
                write!(f, "waiting: the capacity it fits is held for job {for_job}, which waited longer")
            }
            WaitReason::NeverFits { per_cluster } => {
                if per_cluster.is_empty() {
                    f.write_str("fits no cluster: no clusters are configured")
                } else {
                    write!(f, "fits no cluster: {}", list(per_cluster))
                }
            }
        }
    }
}

impl fmt::Display for Explanation {
    /// Several lines for people: the outcome, then one line per cluster.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Placed { cluster, nodes } => {
                writeln!(f, "job {}: starts now on {cluster} ({})", self.job_id, nodes.join(", "))?
            }
            Outcome::Waiting { position, reason } => {
                writeln!(f, "job {}: waiting, position {position}: {reason}", self.job_id)?
            }
            Outcome::NotConsidered { tenant_position, considered } => writeln!(
                f,
                "job {}: number {tenant_position} in its tenant's queue; placement looks at the first {considered}",
                self.job_id
            )?,
            Outcome::BehindItsKind { tenant_position, considered } => writeln!(
                f,
                "job {}: number {tenant_position} in its tenant's queue, behind {considered} older jobs of the same shape that wait; placement looks at the first {considered} of each shape",
                self.job_id
            )?,
            Outcome::UnknownJob => return writeln!(f, "job {}: not queued", self.job_id),
        }
        if let Some(priority) = self.effective_priority {
            write!(f, "effective priority {priority}")?;
        }
        if let Some(share) = self.dominant_share {
            write!(f, ", tenant's weighted dominant share {share:.3}")?;
        }
        writeln!(f)?;
        for c in &self.clusters {
            write!(f, "  {} (tier {}): ", c.cluster, c.tier)?;
            match &c.verdict {
                ClusterVerdict::Infeasible { reason } => writeln!(f, "never: {reason}")?,
                ClusterVerdict::Blocked { reason } => writeln!(f, "not now: {reason}")?,
                ClusterVerdict::Startable {
                    score,
                    chosen,
                    note,
                } => {
                    let what = if *chosen { "chosen" } else { "could start it" };
                    writeln!(
                        f,
                        "{what}{}: fragmentation {:+.3} GPUs, {} CPU-only jobs on GPU nodes, cost {}/GPU-hour, leaves {} GPUs and {} CPUs free on {}",
                        note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
                        score.fragmentation_delta_gpus,
                        score.cpu_job_on_gpu_nodes,
                        score.cost_per_gpu_hour,
                        score.leftover_gpus,
                        score.leftover_cpus,
                        score.nodes.join(", "),
                    )?
                }
            }
        }
        Ok(())
    }
}
