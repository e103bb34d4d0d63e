//! Median and percentiles of a handful of timings.

use serde::Serialize;

/// How a set of timings spreads, in milliseconds.
#[derive(Serialize, Debug, Default, Clone, Copy)]
pub struct Spread {
    /// Median (the mean of the two middle values for an even count).
    pub median_ms: f64,
    /// 90th percentile, nearest rank.
    pub p90_ms: f64,
    /// Smallest.
    pub min_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Spread {
    /// The spread of `values`; NaN everywhere when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut sorted: Vec<f64> = values.into_iter().collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Spread {
                median_ms: f64::NAN,
                p90_ms: f64::NAN,
                min_ms: f64::NAN,
                max_ms: f64::NAN,
            };
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        let rank = (0.9 * n as f64).ceil() as usize;
        Spread {
            median_ms: median,
            p90_ms: sorted[rank.clamp(1, n) - 1],
            min_ms: sorted[0],
            max_ms: sorted[n - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_by_nearest_rank() {
        let twenty = Spread::of((1..=20).map(f64::from));
        assert_eq!(twenty.median_ms, 10.5);
        assert_eq!(twenty.p90_ms, 18.0);
        assert_eq!((twenty.min_ms, twenty.max_ms), (1.0, 20.0));
        let three = Spread::of([3.0, 1.0, 2.0]);
        assert_eq!(three.median_ms, 2.0);
        assert_eq!(three.p90_ms, 3.0);
        assert!(Spread::of([]).median_ms.is_nan());
    }
}
