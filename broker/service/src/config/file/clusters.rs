//! The `clusters` section: each entry's name, cost and labels, and the
//! backend section that goes with its `kind` (`ray:`, `slurm:`, `kuberay:`),
//! read by the backend's own config type.

use std::collections::BTreeSet;

use crate::config::{ClusterConfig, ClusterKind};

/// Reads every cluster's backend section (with the broker's `origin` filled
/// in) and checks the entries; problems go to `bad`.
pub(super) fn read_clusters(
    clusters: &mut [ClusterConfig],
    origin: &str,
    bad: &mut dyn FnMut(&str, String),
) {
    for (i, cluster) in clusters.iter_mut().enumerate() {
        let at = format!("clusters[{i}]");
        cluster.read_backend(&at, origin, bad);
    }

    let mut names = BTreeSet::new();
    for (i, cluster) in clusters.iter().enumerate() {
        let at = format!("clusters[{i}]");
        if !is_dns_label(&cluster.name) {
            bad(&format!("{at}.name"), format!("'{}' is not a cluster name: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit", cluster.name));
        } else if !names.insert(cluster.name.as_str()) {
            bad(
                &format!("{at}.name"),
                format!("cluster '{}' is listed twice", cluster.name),
            );
        }
        if !cluster.cost_per_gpu_hour.is_finite() || cluster.cost_per_gpu_hour < 0.0 {
            bad(
                &format!("{at}.cost_per_gpu_hour"),
                "must be a number of at least 0".into(),
            );
        }
        for key in cluster.labels.keys() {
            if key.is_empty() || key.len() > 63 {
                bad(
                    &format!("{at}.labels"),
                    format!("label key '{key}' must be 1-63 characters"),
                );
            }
        }
    }
}

impl ClusterConfig {
    /// Reads the backend section that goes with `kind`; the broker's origin
    /// is filled in unless the section sets its own.
    fn read_backend(&mut self, at: &str, origin: &str, bad: &mut dyn FnMut(&str, String)) {
        let sections = [
            (ClusterKind::Ray, "ray", self.ray_section.is_some()),
            (ClusterKind::Slurm, "slurm", self.slurm_section.is_some()),
            (
                ClusterKind::Kuberay,
                "kuberay",
                self.kuberay_section.is_some(),
            ),
        ];
        for (kind, name, present) in sections {
            if present && kind != self.kind {
                bad(
                    &format!("{at}.{name}"),
                    format!(
                        "only `kind: {name}` clusters take a `{name}:` section, this one is `kind: {}`",
                        format!("{:?}", self.kind).to_lowercase()
                    ),
                );
            }
        }
        match self.kind {
            ClusterKind::Ray => {
                let needs = "a `kind: ray` cluster needs a `ray:` section with at least `address: http://HEAD:8265`";
                let section = with_origin(&self.ray_section, origin);
                self.ray_config = read_section(section, &format!("{at}.ray"), needs, bad, |c: &raybroker_ray::RayClusterConfig| {
                    c.validate().map_err(|e| (String::new(), e.to_string()))
                });
            }
            ClusterKind::Slurm => {
                let needs = "a `kind: slurm` cluster needs a `slurm:` section with `address`, `user`, `auth`, `ray_bin_dir` and `jobs_dir` (see docs/slurm.md)";
                let section = with_origin(&self.slurm_section, origin);
                self.slurm_config = read_section(section, &format!("{at}.slurm"), needs, bad, |c: &raybroker_slurm::SlurmClusterConfig| {
                    c.validate().map_err(|e| (String::new(), e.to_string()))
                });
            }
            ClusterKind::Kuberay => {
                let needs = "a `kind: kuberay` cluster needs a `kuberay:` section with at least `namespace` and a `template` (see docs/kuberay.md)";
                let section = with_origin(&self.kuberay_section, origin);
                self.kuberay_config = read_section(section, &format!("{at}.kuberay"), needs, bad, |c: &raybroker_kuberay::KubeRayClusterConfig| {
                    c.validate().map_err(|e| (format!(".{}", e.field), e.message))
                });
            }
            ClusterKind::Simulated => bad(
                &format!("{at}.kind"),
                "simulated clusters exist only in tests and the replay; use `kind: ray`, `kuberay` or `slurm`".into(),
            ),
        }
    }
}

fn is_dns_label(name: &str) -> bool {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 63
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A backend section with the broker's origin filled in unless it sets its own.
fn with_origin(section: &Option<serde_norway::Value>, origin: &str) -> Option<serde_norway::Value> {
    let mut section = section.clone()?;
    if let serde_norway::Value::Mapping(map) = &mut section {
        let key = serde_norway::Value::String("origin".into());
        if !map.contains_key(&key) {
            map.insert(key, serde_norway::Value::String(origin.to_string()));
        }
    }
    Some(section)
}

/// Reads and checks one backend section; a problem is reported under `at`
/// (plus the sub-field the check names) and gives `None`.
fn read_section<T: serde::de::DeserializeOwned>(
    section: Option<serde_norway::Value>,
    at: &str,
    needs: &str,
    bad: &mut dyn FnMut(&str, String),
    check: impl Fn(&T) -> Result<(), (String, String)>,
) -> Option<T> {
    let Some(section) = section else {
        bad(at, needs.to_string());
        return None;
    };
    match serde_norway::from_value::<T>(section) {
        Ok(config) => match check(&config) {
            Ok(()) => Some(config),
            Err((field, message)) => {
                bad(&format!("{at}{field}"), message);
                None
            }
        },
        Err(err) => {
            bad(at, err.to_string());
            None
        }
    }
}
