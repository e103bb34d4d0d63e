//! Small fleets and jobs for unit tests.

use raybroker_core::{Bytes, GpuModel, Quantity, Resources};

use crate::federation::Federation;
use crate::split::ClusterSpec;
use crate::trace::{Task, Timing, TraceNode};

/// A cluster of 16-CPU, 64 GiB nodes: `(id, model, gpus)`.
pub fn spec(name: &str, tier: u32, nodes: &[(&str, Option<&str>, u32)]) -> ClusterSpec {
    ClusterSpec {
        name: name.to_string(),
        tier,
        cost_per_gpu_hour: 1.0 + f64::from(tier),
        nodes: nodes
            .iter()
            .map(|(id, model, gpus)| TraceNode {
                name: id.to_string(),
                cpus: Quantity::whole(16),
                memory: Bytes(64 << 30),
                gpus: *gpus,
                gpu_model: model.map(|m| GpuModel::parse(m).unwrap()),
            })
            .collect(),
    }
}

/// A federation of `specs`.
pub fn fed(specs: &[ClusterSpec]) -> Federation {
    Federation::new(specs)
}

/// One CPU, `gpus` of the accepted `models` ('|' separated, empty = any).
pub fn job(gpus: Quantity, models: &str) -> Resources {
    Resources {
        gpus,
        gpu_types: GpuModel::parse_list(models).unwrap(),
        ..Resources::default()
    }
}

/// A task of tenant `t0` asking for `resources`, arriving at `arrival_s`
/// and running `duration_s`; its shape is its row (no shape sharing).
pub fn task(row: usize, resources: Resources, arrival_s: u64, duration_s: u64) -> Task {
    Task {
        row,
        name: format!("task-{row}"),
        tenant: "t0".to_string(),
        resources,
        shape: row as u32,
        timing: Some(Timing {
            arrival_s,
            duration_s,
        }),
    }
}

/// Half a GPU.
pub fn half() -> Quantity {
    Quantity::from_units(5_000)
}
