//! The drift statistics, each written to match a named reference implementation so that the
//! fixtures in `tests/fixtures/drift/` (made by `scripts/drift_fixtures.py` with NumPy and SciPy)
//! pin them to 1e-6.

use statrs::function::gamma::checked_gamma_ur;

/// The share given to an empty bin before a logarithm is taken (Evidently's choice for PSI).
pub(crate) const EMPTY_SHARE: f64 = 1e-4;

/// Population Stability Index over matching bins: Σ (q − p) · ln(q / p), where p and q are the
/// reference and current shares and an empty bin counts as [`EMPTY_SHARE`].
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let (p, q) = (shares(reference), shares(current));
    p.iter()
        .zip(&q)
        .map(|(&p, &q)| {
            let (p, q) = (non_zero(p), non_zero(q));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// The two-sample Kolmogorov–Smirnov statistic, the largest gap between the two empirical CDFs
/// (both sorted ascending; as `scipy.stats.ks_2samp` computes it, ties included).
pub fn ks_statistic(reference: &[f64], current: &[f64]) -> f64 {
    let (n, m) = (reference.len() as f64, current.len() as f64);
    let (mut i, mut j, mut gap) = (0usize, 0usize, 0f64);
    while i < reference.len() && j < current.len() {
        let x = reference[i].min(current[j]);
        while i < reference.len() && reference[i] <= x {
            i += 1;
        }
        while j < current.len() && current[j] <= x {
            j += 1;
        }
        gap = gap.max((i as f64 / n - j as f64 / m).abs());
    }
    gap
}

/// The p-value of a two-sample KS statistic `d` from samples of `n` and `m` rows: the asymptotic
/// Kolmogorov distribution with Stephens' small-sample correction,
/// `Q_KS((√e + 0.12 + 0.11/√e) · d)` with `e = n·m/(n+m)` (Numerical Recipes' `kstwo`; SciPy's
/// `ks_2samp(method="asymp")` before 1.5). Exact tests would need every reference row; a profile
/// keeps a quantile sketch.
pub fn ks_p_value(d: f64, n: usize, m: usize) -> f64 {
    if n == 0 || m == 0 {
        return 1.0;
    }
    let e = (n as f64 * m as f64 / (n as f64 + m as f64)).sqrt();
    kolmogorov_sf((e + 0.12 + 0.11 / e) * d)
}

/// The Kolmogorov distribution's survival function, `scipy.special.kolmogorov`:
/// `Q(y) = 2 Σ (−1)^(k−1) exp(−2k²y²)`, with the theta-function form of the CDF below 1.18 where
/// that series converges slowly.
pub fn kolmogorov_sf(y: f64) -> f64 {
    if y <= 0.0 {
        return 1.0;
    }
    if y < 1.18 {
        let t = -std::f64::consts::PI.powi(2) / (8.0 * y * y);
        let w = (2.0 * std::f64::consts::PI).sqrt() / y;
        let cdf: f64 = (0..50)
            .map(|k| {
                let odd = (2 * k + 1) as f64;
                (odd * odd * t).exp()
            })
            .sum::<f64>()
            * w;
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    let sum: f64 = (1..=100)
        .map(|k| {
            let sign = if k % 2 == 1 { 1.0 } else { -1.0 };
            sign * (-2.0 * (k * k) as f64 * y * y).exp()
        })
        .sum();
    (2.0 * sum).clamp(0.0, 1.0)
}

/// Pearson's chi-square goodness-of-fit of the current counts to the reference shares
/// (`scipy.stats.chisquare(observed, f_exp)`): empty reference bins count as [`EMPTY_SHARE`] and
/// the shares are renormalised; bins empty on both sides are left out. Returns the statistic and
/// its p-value with `bins − 1` degrees of freedom.
pub fn chi_square(reference: &[u64], current: &[u64]) -> (f64, f64) {
    let kept: Vec<(u64, u64)> = reference
        .iter()
        .zip(current)
        .filter(|(r, c)| **r > 0 || **c > 0)
        .map(|(r, c)| (*r, *c))
        .collect();
    if kept.len() < 2 {
        return (0.0, 1.0);
    }
    let ref_total: u64 = kept.iter().map(|(r, _)| r).sum();
    let observed_total: u64 = kept.iter().map(|(_, c)| c).sum();
    let floored: Vec<f64> = kept
        .iter()
        .map(|(r, _)| non_zero(*r as f64 / ref_total.max(1) as f64))
        .collect();
    let norm: f64 = floored.iter().sum();
    let statistic: f64 = kept
        .iter()
        .zip(&floored)
        .map(|((_, c), share)| {
            let expected = share / norm * observed_total as f64;
            (*c as f64 - expected).powi(2) / expected
        })
        .sum();
    let dof = (kept.len() - 1) as f64;
    // Q(k/2, 0) = 1; statrs refuses x = 0 rather than return it.
    let p = if statistic > 0.0 {
        checked_gamma_ur(dof / 2.0, statistic / 2.0).unwrap_or(0.0)
    } else {
        1.0
    };
    (statistic, p)
}

/// The Jensen–Shannon distance between the two distributions of counts, natural logarithm
/// (`scipy.spatial.distance.jensenshannon`): 0 for equal shares, at most √ln 2 ≈ 0.833.
pub fn js_distance(reference: &[u64], current: &[u64]) -> f64 {
    let (p, q) = (shares(reference), shares(current));
    let kl = |a: &[f64], m: &[f64]| -> f64 {
        a.iter()
            .zip(m)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, m)| a * (a / m).ln())
            .sum()
    };
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| (a + b) / 2.0).collect();
    ((kl(&p, &m) + kl(&q, &m)) / 2.0).max(0.0).sqrt()
}

/// Each count's share of the total (all zeros when the total is zero).
pub(crate) fn shares(counts: &[u64]) -> Vec<f64> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    counts.iter().map(|c| *c as f64 / total).collect()
}

fn non_zero(share: f64) -> f64 {
    if share == 0.0 { EMPTY_SHARE } else { share }
}

/// The `q`-quantile of sorted values, linearly interpolated (NumPy's default method).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = position.ceil() as usize;
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_distributions_show_no_drift() {
        let counts = [10, 20, 30, 40];
        assert_eq!(psi(&counts, &counts), 0.0);
        assert_eq!(js_distance(&counts, &counts), 0.0);
        let (statistic, p) = chi_square(&counts, &counts);
        assert_eq!(statistic, 0.0);
        assert!((p - 1.0).abs() < 1e-12);
        let values = [1.0, 2.0, 3.0];
        assert_eq!(ks_statistic(&values, &values), 0.0);
    }

    #[test]
    fn disjoint_samples_are_as_far_apart_as_can_be() {
        assert_eq!(ks_statistic(&[1.0, 2.0], &[3.0, 4.0, 5.0]), 1.0);
        let far = js_distance(&[1, 0], &[0, 1]);
        assert!((far - std::f64::consts::LN_2.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn the_kolmogorov_branches_meet() {
        let below = kolmogorov_sf(1.18 - 1e-9);
        let above = kolmogorov_sf(1.18);
        assert!((below - above).abs() < 1e-9, "{below} vs {above}");
        assert_eq!(kolmogorov_sf(0.0), 1.0);
        assert!(kolmogorov_sf(5.0) < 1e-20);
    }
}
