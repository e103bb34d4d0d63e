//! The Parzen estimator of TPE: a weighted mixture with one kernel per
//! observed trial plus one prior kernel (the parameter's own distribution).
//! Each kernel is a product over the parameters (joint, "multivariate" TPE):
//! a normal truncated to the parameter's bounds for numbers, a smoothed
//! one-hot distribution for categories.

use crate::rng::Stream;

/// `ln(sqrt(2π))`.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// One parameter as the model sees it (numbers already in model space).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dim {
    /// A real in `[low, high]`; `discrete` values are integers and the
    /// bounds already widened by half a step each way.
    Numeric { low: f64, high: f64, discrete: bool },
    /// One of `n` categories, as an index.
    Categorical { n: usize },
}

/// The kernels of one parameter.
enum Kernels {
    /// Per kernel: mean, bandwidth, ln of its mass inside the bounds.
    Numeric {
        low: f64,
        high: f64,
        discrete: bool,
        kernels: Vec<(f64, f64, f64)>,
    },
    /// Per kernel: a probability per category.
    Categorical { rows: Vec<Vec<f64>> },
}

/// A fitted estimator over all parameters.
pub(crate) struct Mixture {
    weights: Vec<f64>,
    dims: Vec<Kernels>,
}

impl Mixture {
    /// Fits the estimator to `points` (one row per trial, one model-space
    /// value per dim; category indices as `f64`) with per-row `weights`,
    /// plus a prior kernel of weight `prior_weight`.
    ///
    /// Bandwidths adapt to the data: a kernel is as wide as the larger gap
    /// to its neighbours among the observed values and the bounds (the
    /// outermost kernels look inwards only), clipped to
    /// `[range / min(100, n + 2), range]`; the prior spans the range.
    pub fn new(dims: &[Dim], points: &[Vec<f64>], weights: &[f64], prior_weight: f64) -> Self {
        let mut mixture_weights: Vec<f64> = weights.to_vec();
        mixture_weights.push(if points.is_empty() { 1.0 } else { prior_weight });
        let total: f64 = mixture_weights.iter().sum();
        mixture_weights.iter_mut().for_each(|w| *w /= total);
        let dims = dims
            .iter()
            .enumerate()
            .map(|(d, dim)| {
                let column: Vec<f64> = points.iter().map(|row| row[d]).collect();
                match *dim {
                    Dim::Numeric {
                        low,
                        high,
                        discrete,
                    } => numeric_kernels(low, high, discrete, &column),
                    Dim::Categorical { n } => categorical_kernels(n, &column, prior_weight),
                }
            })
            .collect();
        Mixture {
            weights: mixture_weights,
            dims,
        }
    }

    /// One draw: a kernel by weight, then each parameter from that kernel.
    pub fn sample(&self, stream: &mut Stream) -> Vec<f64> {
        let k = pick(&self.weights, stream);
        self.dims
            .iter()
            .map(|dim| match dim {
                Kernels::Numeric {
                    low,
                    high,
                    discrete,
                    kernels,
                } => {
                    let (mu, sigma, _) = kernels[k];
                    let x = truncated_normal(mu, sigma, *low, *high, stream);
                    if *discrete {
                        x.round()
                    } else {
                        x
                    }
                }
                Kernels::Categorical { rows } => pick(&rows[k], stream) as f64,
            })
            .collect()
    }

    /// ln of the estimator's density (or probability) at `x`.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        log_sum_exp((0..self.weights.len()).map(|k| {
            let parts: f64 = self
                .dims
                .iter()
                .zip(x)
                .map(|(dim, &value)| kernel_log_pdf(dim, k, value))
                .sum();
            self.weights[k].ln() + parts
        }))
    }
}

fn kernel_log_pdf(dim: &Kernels, k: usize, x: f64) -> f64 {
    match dim {
        Kernels::Numeric {
            discrete, kernels, ..
        } => {
            let (mu, sigma, ln_mass) = kernels[k];
            if *discrete {
                let bin = normal_mass((x - 0.5 - mu) / sigma, (x + 0.5 - mu) / sigma);
                bin.max(f64::MIN_POSITIVE).ln() - ln_mass
            } else {
                let z = (x - mu) / sigma;
                -0.5 * z * z - sigma.ln() - LN_SQRT_2PI - ln_mass
            }
        }
        Kernels::Categorical { rows } => {
            let p = rows[k].get(x as usize).copied().unwrap_or(0.0);
            p.max(f64::MIN_POSITIVE).ln()
        }
    }
}

fn numeric_kernels(low: f64, high: f64, discrete: bool, mus: &[f64]) -> Kernels {
    let range = high - low;
    let mut order: Vec<usize> = (0..mus.len()).collect();
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
    let n = mus.len();
    let min_sigma = range / (100f64).min(n as f64 + 2.0);
    let mut sigmas = vec![range; n];
    for (rank, &k) in order.iter().enumerate() {
        let left = mus[k] - if rank > 0 { mus[order[rank - 1]] } else { low };
        let right = if rank + 1 < n {
            mus[order[rank + 1]]
        } else {
            high
        } - mus[k];
        sigmas[k] = match (rank == 0, rank + 1 == n, n >= 2) {
            (true, _, true) => right,
            (_, true, true) => left,
            _ => left.max(right),
        };
    }
    let mut kernels: Vec<(f64, f64, f64)> = mus
        .iter()
        .zip(&sigmas)
        .map(|(&mu, &sigma)| (mu, sigma.clamp(min_sigma, range)))
        .chain(std::iter::once((low + range / 2.0, range)))
        .map(|(mu, sigma)| (mu, sigma, 0.0))
        .collect();
    for kernel in &mut kernels {
        let (mu, sigma, _) = *kernel;
        let mass = normal_mass((low - mu) / sigma, (high - mu) / sigma);
        kernel.2 = mass.max(f64::MIN_POSITIVE).ln();
    }
    Kernels::Numeric {
        low,
        high,
        discrete,
        kernels,
    }
}

/// Each observed category is a kernel putting weight 1 on itself and
/// `prior_weight / kernels` on every category, normalised; the prior kernel
/// is uniform.
fn categorical_kernels(n: usize, observed: &[f64], prior_weight: f64) -> Kernels {
    let spread = prior_weight / (observed.len() + 1) as f64;
    let mut rows: Vec<Vec<f64>> = observed
        .iter()
        .map(|&index| {
            let mut row = vec![spread; n];
            if let Some(p) = row.get_mut(index as usize) {
                *p += 1.0;
            }
            let sum: f64 = row.iter().sum();
            row.iter_mut().for_each(|p| *p /= sum);
            row
        })
        .collect();
    rows.push(vec![1.0 / n.max(1) as f64; n]);
    Kernels::Categorical { rows }
}

fn truncated_normal(mu: f64, sigma: f64, low: f64, high: f64, stream: &mut Stream) -> f64 {
    for _ in 0..64 {
        let x = mu + sigma * stream.normal();
        if (low..=high).contains(&x) {
            return x;
        }
    }
    mu.clamp(low, high)
}

/// An index drawn with probability proportional to `weights`.
fn pick(weights: &[f64], stream: &mut Stream) -> usize {
    let total: f64 = weights.iter().sum();
    let mut target = stream.uniform() * total;
    for (i, w) in weights.iter().enumerate() {
        if target < *w {
            return i;
        }
        target -= w;
    }
    weights.len().saturating_sub(1)
}

fn log_sum_exp(terms: impl Iterator<Item = f64>) -> f64 {
    let terms: Vec<f64> = terms.collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// `Φ(b) - Φ(a)` for `a <= b`, accurate in both tails.
pub(crate) fn normal_mass(a: f64, b: f64) -> f64 {
    let upper_tail = |z: f64| 0.5 * erfc(z / std::f64::consts::SQRT_2);
    if a >= 0.0 {
        upper_tail(a) - upper_tail(b)
    } else if b <= 0.0 {
        upper_tail(-b) - upper_tail(-a)
    } else {
        1.0 - upper_tail(-a) - upper_tail(b)
    }
}

/// The complementary error function, with a relative error below 1.2e-7
/// everywhere (the Chebyshev fit in Numerical Recipes, §6.2).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * poly.exp();
    if x >= 0.0 {
        value
    } else {
        2.0 - value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_mass_matches_known_values() {
        let cases = [
            (f64::NEG_INFINITY, 0.0, 0.5),
            (-1.0, 1.0, 0.682_689_492),
            (-1.96, 1.96, 0.950_004_210),
            (3.0, 4.0, 0.001_318_227),
            (-5.0, -4.0, 3.138_459e-5),
        ];
        for (a, b, expected) in cases {
            let got = normal_mass(a, b);
            assert!(
                (got - expected).abs() / expected < 1e-5,
                "Φ({b}) - Φ({a}) = {got}"
            );
        }
    }

    #[test]
    fn numeric_density_integrates_to_one_and_samples_stay_inside() {
        let dims = [Dim::Numeric {
            low: 0.0,
            high: 10.0,
            discrete: false,
        }];
        let points = vec![vec![2.0], vec![2.5], vec![9.0]];
        let model = Mixture::new(&dims, &points, &[1.0; 3], 1.0);
        let steps = 20_000;
        let width = 10.0 / steps as f64;
        let integral: f64 = (0..steps)
            .map(|i| model.log_pdf(&[(i as f64 + 0.5) * width]).exp() * width)
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "integral {integral}");
        let mut stream = Stream::new(3, 0, 0);
        let draws: Vec<f64> = (0..2000).map(|_| model.sample(&mut stream)[0]).collect();
        assert!(draws.iter().all(|x| (0.0..=10.0).contains(x)));
        let near = draws.iter().filter(|x| (1.0..3.5).contains(*x)).count();
        // A uniform density would put 25 % (500) there.
        assert!(near > 600, "two of four kernels sit near 2-2.5: {near}");
    }

    #[test]
    fn discrete_and_categorical_probabilities_sum_to_one() {
        let dims = [
            Dim::Numeric {
                low: 0.5,
                high: 5.5,
                discrete: true,
            },
            Dim::Categorical { n: 3 },
        ];
        let points = vec![vec![2.0, 1.0], vec![2.0, 1.0], vec![5.0, 2.0]];
        let model = Mixture::new(&dims, &points, &[1.0; 3], 1.0);
        let mut total = 0.0;
        let mut by_category = [0.0; 3];
        for v in 1..=5 {
            for (c, slot) in by_category.iter_mut().enumerate() {
                let p = model.log_pdf(&[f64::from(v), c as f64]).exp();
                total += p;
                *slot += p;
            }
        }
        assert!((total - 1.0).abs() < 1e-6, "total {total}");
        assert!(
            by_category[1] > by_category[2] && by_category[2] > by_category[0],
            "{by_category:?}"
        );
    }
}
