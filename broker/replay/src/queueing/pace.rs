//! How arrivals are paced: the compression factor that hits an offered
//! load, repeating the task list, and the broker's dispatch ticks.

use crate::trace::{Task, Timing};

/// How a replay is paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// The offered load aimed at, for reports.
    pub load: f64,
    /// Arrival times (from the first) are multiplied by this.
    pub factor: f64,
    /// The broker decides at multiples of this, ms; 0 = at every event.
    pub dispatch_ms: u64,
}

impl Pace {
    /// The first dispatch tick at or after `at_ms`.
    pub fn tick_at(&self, at_ms: u64) -> u64 {
        match self.dispatch_ms {
            0 => at_ms,
            step => at_ms.div_ceil(step) * step,
        }
    }
}

/// The arrival-time factor that makes the offered load `load`; 1 when the
/// tasks carry no time, no GPU work, or arrive all at once.
pub fn compression(tasks: &[Task], total_gpu_units: u64, load: f64) -> f64 {
    let times: Vec<Timing> = tasks.iter().filter_map(|t| t.timing).collect();
    let first = times.iter().map(|t| t.arrival_s).min().unwrap_or(0);
    let last = times.iter().map(|t| t.arrival_s).max().unwrap_or(0);
    let work: f64 = tasks
        .iter()
        .filter_map(|t| {
            t.timing
                .map(|time| t.resources.gpus.as_f64() * time.duration_s as f64)
        })
        .sum();
    let capacity = total_gpu_units as f64 / 10_000.0 * (last - first) as f64;
    if work <= 0.0 || capacity <= 0.0 || load <= 0.0 {
        1.0
    } else {
        work / (capacity * load)
    }
}

/// `copies` of the timed tasks (sorted by arrival) back to back: copy `k`
/// arrives `k` periods later, a period being the list's span plus its mean
/// gap, so spacing stays the trace's. Rows are renumbered to stay unique.
pub fn repeat(tasks: &[Task], copies: usize) -> Vec<Task> {
    let arrivals: Vec<u64> = tasks
        .iter()
        .filter_map(|t| t.timing.map(|x| x.arrival_s))
        .collect();
    let (first, last) = (
        arrivals.iter().min().copied().unwrap_or(0),
        arrivals.iter().max().copied().unwrap_or(0),
    );
    let span = last - first;
    let period = span + span / (arrivals.len().max(2) as u64 - 1);
    let rows = tasks.iter().map(|t| t.row + 1).max().unwrap_or(0);
    (0..copies.max(1))
        .flat_map(|k| {
            tasks.iter().map(move |t| {
                let mut copy = t.clone();
                copy.row += k * rows;
                if let Some(time) = copy.timing.as_mut() {
                    time.arrival_s += k as u64 * period;
                }
                copy
            })
        })
        .collect()
}
