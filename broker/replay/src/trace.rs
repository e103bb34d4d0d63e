//! Reading the Alibaba GPU cluster trace (openb, 2023): nodes and tasks.
//!
//! The CSVs are plain (no quoting), so each line is split on commas and
//! columns are found by header name; a missing column or an unreadable
//! value is an error naming the file and line. A task becomes a job:
//! `cpu_milli` -> CPUs, `memory_mib` -> memory, `num_gpu`/`gpu_milli` ->
//! GPUs (a share of one GPU when `num_gpu` is 1 and `gpu_milli` < 1000),
//! `gpu_spec` -> accepted models, `creation_time` -> arrival and
//! `deletion_time - creation_time` -> run time, capped; a task whose run
//! time is not positive is skipped.

use std::collections::HashMap;
use std::path::Path;

use raybroker_core::{Bytes, GpuModel, Quantity, Resources};

/// One node of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceNode {
    /// The node's serial name (`sn`), its id everywhere.
    pub name: String,
    /// CPUs.
    pub cpus: Quantity,
    /// Memory.
    pub memory: Bytes,
    /// Whole GPU devices.
    pub gpus: u32,
    /// The GPU model; `None` for CPU-only nodes.
    pub gpu_model: Option<GpuModel>,
}

/// One task of the trace, as the job a replay submits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// Row order in the file (0-based, skipped rows included): the arrival
    /// order when times tie, and round-robin's counter.
    pub row: usize,
    /// The task's name.
    pub name: String,
    /// The tenant derived by [`TenantRule`].
    pub tenant: String,
    /// What it asks for (one node).
    pub resources: Resources,
    /// Tasks with equal resources share a shape id, so a replay can skip
    /// retrying a shape that does not fit.
    pub shape: u32,
    /// Arrival and capped run time in seconds; `None` when the file has no
    /// time columns (the multigpu50 list): such tasks can only be filled.
    pub timing: Option<Timing>,
}

/// When a task arrives and how long it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// `creation_time`, seconds.
    pub arrival_s: u64,
    /// `deletion_time - creation_time`, capped, seconds (> 0).
    pub duration_s: u64,
}

/// How tasks are grouped into tenants, deterministically.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantRule {
    /// One tenant per QoS class (`ls`, `be`, `burstable`, `guaranteed`).
    Qos,
    /// `t0`..`t{n-1}` by [`stable_hash`] of the task name.
    Hash(u32),
}

/// How tasks are read.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Run times above this are cut to it, seconds.
    pub duration_cap_s: u64,
    /// How tenants are derived.
    pub tenants: TenantRule,
}

/// The tasks of one pod list, and what was changed on the way in.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Tasks in file order.
    pub tasks: Vec<Task>,
    /// Rows skipped because `deletion_time <= creation_time`.
    pub skipped_nonpositive: usize,
    /// Tasks whose run time was cut to the cap.
    pub capped: usize,
}

/// Why a trace file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is not what the format says.
    #[error("{source_name}:{line}: {reason}")]
    Bad {
        /// The file.
        source_name: String,
        /// 1-based line number (1 is the header).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// FNV-1a, 64 bits: a hash that is the same on every machine and release.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// FNV-1a followed by MurmurHash3's 64-bit finaliser: FNV alone mixes the
/// last bytes of short names (`node-17`, `node-18`) poorly into its high
/// bits, which would make hash slices lopsided.
pub fn stable_hash(text: &str) -> u64 {
    let mut h = fnv1a(text);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A stable position of `text` in [0, 1), for deterministic fractions.
pub fn unit_hash(text: &str) -> f64 {
    (stable_hash(text) >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<String, TraceError> {
    std::fs::read_to_string(path).map_err(|source| TraceError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Rows of a headed CSV, with the column lookup.
struct Table<'a> {
    source: &'a str,
    columns: HashMap<&'a str, usize>,
    rows: Vec<(usize, Vec<&'a str>)>,
}

impl<'a> Table<'a> {
    fn parse(text: &'a str, source: &'a str, required: &[&str]) -> Result<Table<'a>, TraceError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let bad = |line: usize, reason: String| TraceError::Bad {
            source_name: source.to_string(),
            line,
            reason,
        };
        let (_, header) = lines.next().ok_or_else(|| bad(1, "empty file".into()))?;
        let columns: HashMap<&str, usize> = header
            .split(',')
            .enumerate()
            .map(|(i, name)| (name.trim(), i))
            .collect();
        if let Some(missing) = required.iter().find(|c| !columns.contains_key(**c)) {
            return Err(bad(1, format!("no column `{missing}`")));
        }
        let width = columns.len();
        let mut rows = Vec::new();
        for (index, line) in lines {
            if line.contains('"') {
                return Err(bad(index + 1, "quoted fields are not supported".into()));
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != width {
                return Err(bad(
                    index + 1,
                    format!("{} fields, the header has {width}", fields.len()),
                ));
            }
            rows.push((index + 1, fields));
        }
        Ok(Table {
            source,
            columns,
            rows,
        })
    }

    fn field<'r>(&self, row: &'r [&'a str], column: &str) -> Option<&'a str> {
        self.columns.get(column).map(|i| row[*i])
    }

    fn number(&self, line: usize, row: &[&'a str], column: &str) -> Result<u64, TraceError> {
        let text = self.field(row, column).unwrap_or("");
        text.parse().map_err(|_| TraceError::Bad {
            source_name: self.source.to_string(),
            line,
            reason: format!("`{column}` is `{text}`, not a whole number"),
        })
    }
}

/// Reads the node list (`sn, cpu_milli, memory_mib, gpu, model`).
pub fn parse_nodes(text: &str, source: &str) -> Result<Vec<TraceNode>, TraceError> {
    let table = Table::parse(
        text,
        source,
        &["sn", "cpu_milli", "memory_mib", "gpu", "model"],
    )?;
    let mut nodes = Vec::with_capacity(table.rows.len());
    for (line, row) in &table.rows {
        let gpus = u32::try_from(table.number(*line, row, "gpu")?).unwrap_or(u32::MAX);
        let model = table.field(row, "model").unwrap_or("");
        let gpu_model = match (gpus, model) {
            (0, _) => None,
            (_, "") => return Err(bad_row(source, *line, "a GPU node without a model")),
            (_, name) => {
                Some(GpuModel::parse(name).map_err(|e| bad_row(source, *line, &e.to_string()))?)
            }
        };
        nodes.push(TraceNode {
            name: table.field(row, "sn").unwrap_or("").to_string(),
            cpus: Quantity::from_units(table.number(*line, row, "cpu_milli")? * 10),
            memory: Bytes(table.number(*line, row, "memory_mib")? << 20),
            gpus,
            gpu_model,
        });
    }
    Ok(nodes)
}

fn bad_row(source: &str, line: usize, reason: &str) -> TraceError {
    TraceError::Bad {
        source_name: source.to_string(),
        line,
        reason: reason.to_string(),
    }
}

/// The GPUs one task asks for: `num_gpu` whole GPUs, or a share of one.
fn task_gpus(num_gpu: u64, gpu_milli: u64) -> Result<Quantity, String> {
    match (num_gpu, gpu_milli) {
        (0, _) => Ok(Quantity::ZERO),
        (1, 1..=1000) => Ok(Quantity::from_units(gpu_milli * 10)),
        (n, 1000) => Ok(Quantity::whole(n)),
        (n, m) => Err(format!(
            "num_gpu {n} with gpu_milli {m}: only one GPU can be shared"
        )),
    }
}

/// Reads a pod list; tasks keep file order.
pub fn parse_tasks(text: &str, source: &str, options: LoadOptions) -> Result<Workload, TraceError> {
    let table = Table::parse(
        text,
        source,
        &["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"],
    )?;
    let timed =
        table.columns.contains_key("creation_time") && table.columns.contains_key("deletion_time");
    let mut shapes: HashMap<(u64, u64, u64, Vec<GpuModel>), u32> = HashMap::new();
    let mut workload = Workload {
        tasks: Vec::with_capacity(table.rows.len()),
        skipped_nonpositive: 0,
        capped: 0,
    };
    for (row_index, (line, row)) in table.rows.iter().enumerate() {
        let gpus = task_gpus(
            table.number(*line, row, "num_gpu")?,
            table.number(*line, row, "gpu_milli")?,
        )
        .map_err(|reason| bad_row(source, *line, &reason))?;
        let mut gpu_types = Vec::new();
        if !gpus.is_zero() {
            let spec = table.field(row, "gpu_spec").unwrap_or("");
            for model in
                GpuModel::parse_list(spec).map_err(|e| bad_row(source, *line, &e.to_string()))?
            {
                if !gpu_types.contains(&model) {
                    gpu_types.push(model);
                }
            }
            gpu_types.sort();
        }
        let timing = if timed {
            let created = table.number(*line, row, "creation_time")?;
            let deleted = table.number(*line, row, "deletion_time")?;
            if deleted <= created {
                workload.skipped_nonpositive += 1;
                continue;
            }
            let run = deleted - created;
            if run > options.duration_cap_s {
                workload.capped += 1;
            }
            Some(Timing {
                arrival_s: created,
                duration_s: run.min(options.duration_cap_s).max(1),
            })
        } else {
            None
        };
        let resources = Resources {
            cpus: Quantity::from_units(table.number(*line, row, "cpu_milli")? * 10),
            memory: Bytes(table.number(*line, row, "memory_mib")? << 20),
            gpus,
            gpu_types,
            ..Resources::default()
        };
        let key = (
            resources.cpus.units(),
            resources.memory.0,
            resources.gpus.units(),
            resources.gpu_types.clone(),
        );
        let next = shapes.len() as u32;
        let shape = *shapes.entry(key).or_insert(next);
        let name = table.field(row, "name").unwrap_or("").to_string();
        let tenant = match options.tenants {
            TenantRule::Qos => match table.field(row, "qos").unwrap_or("") {
                "" => "unknown".to_string(),
                qos => qos.to_ascii_lowercase(),
            },
            TenantRule::Hash(n) => format!("t{}", stable_hash(&name) % u64::from(n.max(1))),
        };
        workload.tasks.push(Task {
            row: row_index,
            name,
            tenant,
            resources,
            shape,
            timing,
        });
    }
    Ok(workload)
}

#[cfg(test)]
mod tests;
