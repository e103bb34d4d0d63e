//! One span as the broker keeps and shows it, whoever made it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who made a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpanOrigin {
    /// The broker: the job's lifecycle and its adapter calls.
    Broker,
    /// The cluster's own record of the attempt (start and end times).
    Cluster,
    /// The job itself, over OTLP.
    Job,
}

/// A span, with ids in lower-case hex as in OTLP/JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SpanRecord {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent's span id; absent for a root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// What it covers, e.g. `queued`, `running`, `train_epoch`.
    pub name: String,
    /// Who made it.
    pub origin: SpanOrigin,
    /// The reporting service (`service.name`), for job spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Start, ns since the Unix epoch.
    pub start_unix_nano: u64,
    /// End, ns since the Unix epoch (for a span still open: now).
    pub end_unix_nano: u64,
    /// True while the stretch it covers has not ended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
    /// Attributes (cluster, tenant, attempt, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub attributes: BTreeMap<String, serde_json::Value>,
    /// `error: <message>` when the span reports a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl SpanRecord {
    /// Its length in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 / 1e6
    }
}

/// Milliseconds to nanoseconds.
pub fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(1_000_000)
}

/// The spans as a tree, depth first, children by start time; each with its
/// depth (0 for a root). A span whose parent is not among them is a root;
/// a span id seen twice is kept once (the first).
pub fn tree_order(spans: Vec<SpanRecord>) -> Vec<(usize, SpanRecord)> {
    use std::collections::{HashMap, HashSet};
    let mut seen = HashSet::new();
    let spans: Vec<SpanRecord> = spans
        .into_iter()
        .filter(|s| seen.insert((s.trace_id.clone(), s.span_id.clone())))
        .collect();
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        let parent = span
            .parent_span_id
            .as_deref()
            .filter(|p| ids.contains(p) && *p != span.span_id);
        children.entry(parent).or_default().push(i);
    }
    for list in children.values_mut() {
        list.sort_by_key(|&i| (spans[i].start_unix_nano, spans[i].end_unix_nano));
    }
    let mut order = Vec::with_capacity(spans.len());
    let mut placed = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = children
        .get(&None)
        .map(|roots| roots.iter().rev().map(|&i| (0, i)).collect())
        .unwrap_or_default();
    while let Some((depth, i)) = stack.pop() {
        if std::mem::replace(&mut placed[i], true) {
            continue;
        }
        order.push((depth, i));
        if let Some(kids) = children.get(&Some(spans[i].span_id.as_str())) {
            stack.extend(kids.iter().rev().map(|&k| (depth + 1, k)));
        }
    }
    // Spans only in a parent cycle are unreachable from a root: list them last.
    order.extend((0..spans.len()).filter(|&i| !placed[i]).map(|i| (0, i)));
    let mut slots: Vec<Option<SpanRecord>> = spans.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(depth, i)| slots[i].take().map(|s| (depth, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start: u64) -> SpanRecord {
        SpanRecord {
            trace_id: "t".repeat(32),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_string),
            name: id.into(),
            origin: SpanOrigin::Job,
            service: None,
            start_unix_nano: start,
            end_unix_nano: start + 1,
            open: false,
            attributes: Default::default(),
            status: None,
        }
    }

    #[test]
    fn orders_depth_first_by_start_and_keeps_orphans_and_cycles() {
        let spans = vec![
            span("c2", Some("r"), 5),
            span("r", None, 0),
            span("c1", Some("r"), 3),
            span("g", Some("c1"), 4),
            span("orphan", Some("missing"), 1),
            span("r", None, 0),
            span("x", Some("y"), 9),
            span("y", Some("x"), 9),
        ];
        let order: Vec<(usize, String)> = tree_order(spans)
            .into_iter()
            .map(|(d, s)| (d, s.span_id))
            .collect();
        let names: Vec<&str> = order.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["r", "c1", "g", "c2", "orphan", "x", "y"]);
        assert_eq!(order[2].0, 2);
    }
}
