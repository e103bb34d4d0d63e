//! The formulas the reports use, kept apart so each is tested by hand.

/// Jain's fairness index, `(sum x)^2 / (n * sum x^2)`: 1 when every value
/// is equal, `1/n` when one value holds everything. An empty list, or one
/// of all zeros (nobody waited at all), counts as perfectly fair.
pub fn jain(values: &[f64]) -> f64 {
    let sum: f64 = values.iter().sum();
    let squares: f64 = values.iter().map(|x| x * x).sum();
    if values.is_empty() || squares == 0.0 {
        1.0
    } else {
        sum * sum / (values.len() as f64 * squares)
    }
}

/// Arithmetic mean; 0 for an empty list.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of `values`; 0 when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Allocated over total (both in the same units); 0 when there is nothing.
pub fn allocation_ratio(allocated: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        allocated as f64 / total as f64
    }
}

/// A value that holds from each point's time until the next point's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    /// `(time, value)`, times non-decreasing.
    pub points: Vec<(u64, f64)>,
}

impl Step {
    /// Sets the value from `time` on (a later point at the same time wins).
    pub fn set(&mut self, time: u64, value: f64) {
        match self.points.last_mut() {
            Some(last) if last.0 == time => last.1 = value,
            _ => self.points.push((time, value)),
        }
    }

    /// The value at `time` (0 before the first point).
    pub fn at(&self, time: u64) -> f64 {
        let after = self.points.partition_point(|(t, _)| *t <= time);
        if after == 0 {
            0.0
        } else {
            self.points[after - 1].1
        }
    }

    /// The integral over `[from, to)`, in value x time units.
    pub fn integral(&self, from: u64, to: u64) -> f64 {
        let mut times: Vec<u64> = self
            .points
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| (from..=to).contains(t))
            .collect();
        times.insert(0, from);
        times.push(to);
        times.dedup();
        times
            .windows(2)
            .map(|pair| self.at(pair[0]) * (pair[1] - pair[0]) as f64)
            .sum()
    }

    /// The integral over the parts of `[from, to)` where `mask` (another
    /// step) is above zero, and the length of those parts.
    pub fn integral_while(&self, mask: &Step, from: u64, to: u64) -> (f64, u64) {
        let mut times: Vec<u64> = self
            .points
            .iter()
            .chain(&mask.points)
            .map(|(t, _)| *t)
            .collect();
        times.push(from);
        times.push(to);
        times.retain(|t| (from..=to).contains(t));
        times.sort_unstable();
        times.dedup();
        let (mut area, mut length) = (0.0, 0);
        for pair in times.windows(2) {
            if mask.at(pair[0]) > 0.0 {
                let span = pair[1] - pair[0];
                area += self.at(pair[0]) * span as f64;
                length += span;
            }
        }
        (area, length)
    }

    /// The value at `count` evenly spaced times from `from` to `to`.
    pub fn sample(&self, from: u64, to: u64, count: usize) -> Vec<(u64, f64)> {
        let count = count.max(2);
        (0..count)
            .map(|i| {
                let t = from
                    + ((to.saturating_sub(from)) as f64 * i as f64 / (count - 1) as f64) as u64;
                (t, self.at(t))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_by_hand() {
        assert_eq!(jain(&[5.0, 5.0, 5.0]), 1.0);
        // One of four holds everything: 1/4.
        assert_eq!(jain(&[0.0, 0.0, 8.0, 0.0]), 0.25);
        // (1 + 3)^2 / (2 * (1 + 9)) = 16 / 20.
        assert!((jain(&[1.0, 3.0]) - 0.8).abs() < 1e-12);
        assert_eq!(jain(&[]), 1.0);
        assert_eq!(jain(&[0.0, 0.0]), 1.0);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&values, 95.0), 19.0);
        assert_eq!(percentile(&values, 100.0), 20.0);
        assert_eq!(percentile(&values, 0.0), 1.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[], 95.0), 0.0);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), 3.0);
    }

    #[test]
    fn allocation_ratio_by_hand() {
        assert_eq!(allocation_ratio(4_600, 20_000), 0.23);
        assert_eq!(allocation_ratio(1, 0), 0.0);
    }

    #[test]
    fn step_integrals_by_hand() {
        let mut alloc = Step::default();
        alloc.set(0, 2.0);
        alloc.set(10, 4.0);
        alloc.set(10, 6.0);
        alloc.set(20, 0.0);
        assert_eq!(alloc.points.len(), 3, "same-time points merge");
        assert_eq!(alloc.at(15), 6.0);
        // 2 x 10 + 6 x 10.
        assert_eq!(alloc.integral(0, 30), 80.0);
        assert_eq!(alloc.integral(5, 15), 2.0 * 5.0 + 6.0 * 5.0);
        let mut queued = Step::default();
        queued.set(0, 0.0);
        queued.set(5, 3.0);
        queued.set(15, 0.0);
        // Queue non-empty over [5, 15): 2 x 5 + 6 x 5 over 10 time units.
        assert_eq!(alloc.integral_while(&queued, 0, 30), (40.0, 10));
        assert_eq!(alloc.sample(0, 20, 3), vec![(0, 2.0), (10, 6.0), (20, 0.0)]);
    }
}
