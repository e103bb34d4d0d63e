//! One decision: where a candidate starts now, or why it waits.
//!
//! The rules are in [`crate::plan`]'s documentation; this is their code.
//! Reasons a job waits, checked in order: it never fits anywhere; its
//! overall quota; a burst tier could start it but its wait bound has not
//! passed; a tier quota is all that stops a cluster from starting it;
//! capacity (and, past the reservation bound, capacity held for it); it
//! would fit but for capacity held for an older job; it would have fitted
//! but tenants ahead in fair share took the capacity this round.

use std::collections::BTreeSet;

use crate::capacity::View;
use crate::explain::trace;
use crate::fairness::Share;
use crate::fit::{constraints_allow, static_fit};
use crate::plan::{Candidate, Input, State};
use crate::score::{cluster_key, node_key, ClusterKey, NodeKey};
use crate::types::{PendingJob, Placed, Reserved, WaitReason};

/// The best cluster found for a job: its rank, index and chosen nodes.
type Choice<'a> = (ClusterKey<'a>, usize, Vec<(NodeKey, u32)>);

/// The best cluster to hold capacity on: (tier, shortfall, name), index, nodes.
type Hold<'a> = ((u32, Share, &'a str), usize, Vec<u32>);

/// The best nodes of cluster `ci` for the candidate now, through the no-fit cache.
pub(crate) fn find(
    input: &Input,
    state: &mut State,
    ci: usize,
    c: &Candidate,
) -> Option<Vec<(NodeKey, u32)>> {
    if state.no_fit.contains(&(c.shape, ci)) {
        return None;
    }
    let found = state.clusters[ci].find(&c.need, |node| node_key(&input.workload, node, &c.need));
    if found.is_none() {
        state.no_fit.insert((c.shape, ci));
    }
    found
}

/// Decides one candidate: places it, or records why it waits.
pub(crate) fn decide<'a>(input: &Input<'a>, state: &mut State<'a>, cand: usize, may_reserve: bool) {
    let c = &input.candidates[cand];
    let jobs: &'a [PendingJob] = input.problem.jobs;
    let job = &jobs[c.job];
    let tenant = job.tenant.as_str();
    let policy = input.problem.policy.tenant(tenant);
    let demand = job.demand();
    let tracing = input.trace == Some(c.job);

    let feasible: Vec<bool> = state
        .clusters
        .iter()
        .map(|cs| {
            constraints_allow(&job.resources, &job.placement, cs.view).is_ok()
                && cs.could_ever_run(&c.need)
        })
        .collect();
    let home = state
        .clusters
        .iter()
        .zip(&feasible)
        .filter(|(_, ok)| **ok)
        .map(|(cs, _)| cs.view.tier)
        .min();
    let bound = job.max_wait_ms.unwrap_or(policy.max_wait_ms);
    // Past its bound a job may burst. Before, only a lower tier that takes
    // jobs now (fresh, within its pending allowance) holds it back: waiting
    // for a cluster that is down or full of pending jobs gains nothing. Nor
    // does waiting behind a job of its line (GPUs per node, models) still
    // queued past its own bound: the lower tiers have not started it for a
    // whole bound, so a job behind it in the same line would not start
    // there within its bound either (head-of-line delay as the predictor of
    // delay, as in Ibrahim and Whitt, Operations Research 2009).
    let line_too_slow = input.overdue_lines.contains(&c.need.line());
    let waited_out = job.waited_ms(input.problem.now_ms) >= bound || line_too_slow;
    let mut accepting_below = false;
    let until_ms = job.enqueued_at_ms.saturating_add(bound);
    if tracing {
        state.trace = Some(trace(
            input, state, c, &feasible, home, waited_out, until_ms,
        ));
    }
    let Some(home) = home else {
        let per_cluster = input
            .problem
            .clusters
            .iter()
            .map(|v| {
                let why = static_fit(&job.resources, &job.placement, v).err();
                debug_assert!(why.is_some(), "static checks disagree on {}", v.name);
                (v.name.clone(), why.unwrap_or_default())
            })
            .collect();
        state
            .waiting
            .push((c.job, WaitReason::NeverFits { per_cluster }));
        return;
    };
    if let Some(detail) = state.ledger.breach(tenant, None, demand) {
        state
            .waiting
            .push((c.job, WaitReason::Quota { tier: None, detail }));
        return;
    }

    let mut best: Option<Choice<'a>> = None;
    let mut why: Vec<(String, String)> = Vec::new();
    let mut allowed: Vec<usize> = Vec::new();
    let mut tier_quota: Option<(u32, String, bool)> = None;
    let mut burst_blocked = false;
    // Whether the forecast gives it room on a lower tier by its bound
    // (asked once per job: the answer promises that room to it).
    let mut room_below: Option<bool> = None;
    for (tier, group) in &input.tiers {
        if best.is_some() {
            break; // a lower tier starts it
        }
        let above = *tier > home;
        for &ci in group.iter().filter(|ci| feasible[**ci]) {
            let view = state.clusters[ci].view;
            if above && !policy.burst {
                why.push((view.name.clone(), format!("tier {tier} is above the job's lowest feasible tier {home}, and its tenant does not burst")));
                continue;
            }
            if let Err(reason) = &state.clusters[ci].accepting {
                why.push((view.name.clone(), reason.clone()));
                continue;
            }
            if let Some(detail) = state.ledger.breach(tenant, Some(*tier), demand) {
                why.push((view.name.clone(), format!("tier {tier} quota: {detail}")));
                // The quota is what it waits for when it is all that stops
                // this cluster from starting it.
                if tier_quota.as_ref().is_none_or(|(_, _, could)| !could) {
                    let could = find(input, state, ci, c).is_some();
                    tier_quota = Some((*tier, detail, could));
                }
                continue;
            }
            if above && !waited_out && accepting_below {
                let here = find(input, state, ci, c).is_some();
                // With a forecast, it waits only while a lower tier will
                // have room for it by its bound.
                let room_below = *room_below.get_or_insert_with(|| {
                    let below: Vec<usize> = (0..state.clusters.len())
                        .filter(|&i| {
                            let cs = &state.clusters[i];
                            feasible[i] && cs.view.tier < *tier && cs.accepting.is_ok()
                        })
                        .collect();
                    match state.outlook.as_mut() {
                        Some(o) => o.promise(&state.clusters, &below, &c.need, c.shape, until_ms),
                        None => true,
                    }
                });
                if !here || room_below {
                    burst_blocked = burst_blocked || here;
                    why.push((view.name.clone(), format!(
                        "burst tier {tier}: the job may burst once it has waited {bound} ms (at {until_ms})"
                    )));
                    continue;
                }
            }
            allowed.push(ci);
            match find(input, state, ci, c) {
                Some(chosen) => {
                    let key = cluster_key(view, &chosen);
                    if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
                        best = Some((key, ci, chosen));
                    }
                }
                None => why.push((
                    view.name.clone(),
                    "not enough free capacity now".to_string(),
                )),
            }
        }
        accepting_below = accepting_below
            || group
                .iter()
                .any(|ci| feasible[*ci] && state.clusters[*ci].accepting.is_ok());
    }

    if let Some((key, ci, chosen)) = best {
        let cluster = &mut state.clusters[ci];
        for &(_, idx) in &chosen {
            cluster.take(idx, c.job, &c.need);
        }
        let nodes = chosen
            .iter()
            .map(|(_, idx)| cluster.nodes[*idx as usize].id.to_string())
            .collect();
        state.ledger.add(tenant, key.tier, demand);
        state.placed.push(Placed {
            job_id: job.id.clone(),
            cluster: key.name.to_string(),
            nodes,
        });
        if let Some(trace) = state.trace.as_mut().filter(|_| tracing) {
            trace.mark_chosen(key.name);
        }
        return;
    }

    let reason = if burst_blocked {
        if may_reserve {
            reserve(state, c, &allowed);
        }
        WaitReason::BurstWaitBound { until_ms }
    } else if let Some((tier, detail, _)) =
        tier_quota.filter(|(_, _, could)| *could || allowed.is_empty())
    {
        WaitReason::Quota {
            tier: Some(tier),
            detail,
        }
    } else if let Some(reserved) = may_reserve.then(|| reserve(state, c, &allowed)).flatten() {
        WaitReason::Capacity {
            per_cluster: why,
            reserved: Some(reserved),
        }
    } else if let Some(for_job) = held_for(input, state, c, &allowed) {
        WaitReason::Reservation { for_job }
    } else if let Some(ahead) = taken_by_others(input, state, c, tenant, &allowed) {
        WaitReason::FairShare {
            dominant_share: state.ledger.share(tenant),
            ahead,
        }
    } else {
        WaitReason::Capacity {
            per_cluster: why,
            reserved: None,
        }
    };
    if room_below.is_none() && !matches!(reason, WaitReason::Quota { .. }) {
        // It takes what frees on its lowest tier before the jobs behind it.
        let home_clusters: Vec<usize> = (0..state.clusters.len())
            .filter(|&i| {
                let cs = &state.clusters[i];
                feasible[i] && cs.view.tier == home && cs.accepting.is_ok()
            })
            .collect();
        let by_ms = input.problem.now_ms.saturating_add(bound);
        if let Some(outlook) = state.outlook.as_mut() {
            outlook.promise(&state.clusters, &home_clusters, &c.need, c.shape, by_ms);
        }
    }
    state.waiting.push((c.job, reason));
}

/// Holds capacity for the candidate on the allowed cluster (lowest tier,
/// then smallest shortfall) whose nodes come closest to its shape.
fn reserve(state: &mut State, c: &Candidate, allowed: &[usize]) -> Option<Reserved> {
    let wanted = c.need.nodes as usize;
    if wanted == 0 {
        return None;
    }
    let mut best: Option<Hold> = None;
    for &ci in allowed {
        let cluster = &state.clusters[ci];
        let mut scored: Vec<(Share, u32)> = (0..cluster.nodes.len() as u32)
            .filter_map(|i| cluster.deficit(i, &c.need).map(|d| (Share(d), i)))
            .collect();
        if scored.len() < wanted {
            continue;
        }
        scored.sort_unstable();
        scored.truncate(wanted);
        let shortfall = Share(scored.iter().map(|(d, _)| d.0).sum());
        let key = (cluster.view.tier, shortfall, cluster.view.name.as_str());
        if best.as_ref().is_none_or(|(k, _, _)| key < *k) {
            best = Some((key, ci, scored.into_iter().map(|(_, i)| i).collect()));
        }
    }
    let (_, ci, nodes) = best?;
    let cluster = &mut state.clusters[ci];
    for &idx in &nodes {
        cluster.claim(idx, c.job, &c.need);
    }
    Some(Reserved {
        cluster: cluster.view.name.clone(),
        nodes: nodes
            .iter()
            .map(|i| cluster.nodes[*i as usize].id.to_string())
            .collect(),
    })
}

/// The job whose reservation holds capacity the candidate would fit in.
/// A one-node job only needs the held nodes checked; a gang, every node.
fn held_for(input: &Input, state: &State, c: &Candidate, allowed: &[usize]) -> Option<String> {
    let claim = allowed.iter().find_map(|&ci| {
        let cluster = &state.clusters[ci];
        if cluster.claimed.is_empty() {
            return None;
        }
        let held = |i: &u32| cluster.nodes[*i as usize].claim.as_ref();
        if c.need.nodes == 1 {
            let fits = |i: &&u32| cluster.nodes[**i as usize].fits(&c.need, View::IgnoringClaims);
            return cluster.claimed.iter().find(fits).and_then(held);
        }
        let nodes = cluster.fits_in(&c.need, View::IgnoringClaims)?;
        nodes.iter().find_map(held)
    })?;
    Some(input.problem.jobs[claim.job].id.clone())
}

/// Other tenants that placed jobs this round on allowed clusters where the
/// candidate would have fitted at the start of the round. For a one-node
/// job: the tenants that took a node it would have fitted on. For a gang:
/// every other tenant that placed there, when the gang fitted at the start.
fn taken_by_others<'a>(
    input: &Input<'a>,
    state: &mut State,
    c: &Candidate,
    tenant: &str,
    allowed: &[usize],
) -> Option<Vec<String>> {
    let jobs: &'a [PendingJob] = input.problem.jobs;
    let mut ahead: BTreeSet<&'a str> = BTreeSet::new();
    for &ci in allowed {
        let cluster = &state.clusters[ci];
        let others = cluster
            .taken
            .iter()
            .map(|(node, job)| (*node, jobs[*job].tenant.as_str()))
            .filter(|(_, t)| *t != tenant);
        if c.need.nodes == 1 {
            let fitted = |(node, _): &(u32, &str)| {
                cluster.nodes[*node as usize].fits(&c.need, View::Initial)
            };
            ahead.extend(others.filter(fitted).map(|(_, t)| t));
            continue;
        }
        let others: Vec<&str> = others.map(|(_, t)| t).collect();
        if others.is_empty() {
            continue;
        }
        let fitted = *state
            .fitted_initially
            .entry((c.shape, ci))
            .or_insert_with(|| cluster.fits_in(&c.need, View::Initial).is_some());
        if fitted {
            ahead.extend(others);
        }
    }
    (!ahead.is_empty()).then(|| ahead.into_iter().map(String::from).collect())
}
