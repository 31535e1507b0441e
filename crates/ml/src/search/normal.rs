//! The truncated standard normal distribution, computed in log space: the kernels of TPE's Parzen
//! estimators. A port of Optuna's `samplers/_tpe/_truncnorm.py` (itself from SciPy): masses are
//! taken in the left tail, where they do not cancel, so a kernel whose truncation bounds are many
//! sigmas out (a narrow kernel near one end of a range) still has an accurate, finite density.
//!
//! The error function is ours (Rust's standard library has none): a series without cancellation
//! below 2 and a continued fraction above, which also gives ln erfc without underflow.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
/// Where erfc switches from 1 − (series) to the continued fraction; both are accurate to about
/// 1e-14 relative there.
const ERFC_SWITCH: f64 = 2.0;

/// erf(x) for 0 ≤ x ≤ ERFC_SWITCH by 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3···(2n+1))
/// (Abramowitz & Stegun 7.1.6): every term positive, so no cancellation.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= 2.0 * x2 / (2 * n + 1) as f64;
        sum += term;
        if term <= sum * 1e-17 {
            break;
        }
    }
    2.0 / PI.sqrt() * (-x2).exp() * sum
}

/// ln erfc(x) for x ≥ ERFC_SWITCH by erfc(x) = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + (3/2)/(x + …))))
/// (A&S 7.1.14), evaluated with Lentz's method; never underflows.
fn log_erfc_fraction(x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut f = x;
    let (mut c, mut d) = (x, 0.0);
    for j in 1..500 {
        let a = j as f64 / 2.0;
        d = x + a * d;
        if d == 0.0 {
            d = TINY;
        }
        c = x + a / c;
        if c == 0.0 {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    -x * x - 0.5 * PI.ln() - f.ln()
}

fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        2.0 - erfc(-x)
    } else if x < ERFC_SWITCH {
        1.0 - erf_series(x)
    } else {
        log_erfc_fraction(x).exp()
    }
}

/// Φ(a), the standard normal CDF.
fn ndtr(a: f64) -> f64 {
    0.5 * erfc(-a * FRAC_1_SQRT_2)
}

/// ln Φ(a), accurate in both tails.
pub(super) fn log_ndtr(a: f64) -> f64 {
    if a > 0.0 {
        (-ndtr(-a)).ln_1p()
    } else {
        let x = -a * FRAC_1_SQRT_2;
        let log_erfc = if x < ERFC_SWITCH {
            erfc(x).ln()
        } else {
            log_erfc_fraction(x)
        };
        log_erfc - std::f64::consts::LN_2
    }
}

/// ln φ(x), the standard normal density.
pub(super) fn norm_log_pdf(x: f64) -> f64 {
    -0.5 * x * x - LN_SQRT_2PI
}

/// ln(e^p + e^q).
fn log_sum(p: f64, q: f64) -> f64 {
    let max = p.max(q);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + (-(p - q).abs()).exp().ln_1p()
}

/// ln(e^p − e^q) for p ≥ q.
fn log_diff(p: f64, q: f64) -> f64 {
    p + (-(q - p).exp()).ln_1p()
}

/// ln(Φ(b) − Φ(a)), the log mass of [a, b] (Optuna's `_log_gauss_mass`): differences are taken
/// in the left tail (mirroring an interval right of 0), and an interval around 0 as 1 minus both
/// tails.
pub(super) fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        log_diff(log_ndtr(b), log_ndtr(a))
    } else if a > 0.0 {
        log_diff(log_ndtr(-a), log_ndtr(-b))
    } else {
        (-ndtr(a) - ndtr(-b)).ln_1p()
    }
}

/// The x with ln Φ(x) = y, by Newton's method from Optuna's starting points (`_ndtri_exp`): the
/// tail asymptote for very negative y, the logistic approximation of Φ otherwise, and for y near
/// 0 the mirrored problem, which keeps its precision.
fn ndtri_exp(y: f64) -> f64 {
    let flipped = y > -1e-2;
    let z = if flipped { (-y.exp_m1()).ln() } else { y };
    let mut x = if z < -5.0 {
        -(-2.0 * (z + LN_SQRT_2PI)).sqrt()
    } else {
        -(3.0_f64.sqrt() / PI) * (-z).exp_m1().ln()
    };
    for _ in 0..100 {
        let log_ndtr_x = log_ndtr(x);
        let dx = (log_ndtr_x - z) * (log_ndtr_x - norm_log_pdf(x)).exp();
        x -= dx;
        if !dx.is_finite() || dx.abs() < 1e-8 * x.abs() {
            break;
        }
    }
    if flipped { -x } else { x }
}

/// The q-quantile of the standard normal truncated to [a, b] (Optuna's `ppf`), always within
/// [a, b].
pub(super) fn truncated_ppf(q: f64, a: f64, b: f64) -> f64 {
    let log_mass = log_gauss_mass(a, b);
    let x = if a < 0.0 {
        ndtri_exp(log_sum(log_ndtr(a), q.ln() + log_mass))
    } else {
        -ndtri_exp(log_sum(log_ndtr(-b), (-q).ln_1p() + log_mass))
    };
    if x.is_nan() {
        // Only at q = 1 (or a degenerate interval): the top of the interval.
        return if q < 0.5 { a } else { b };
    }
    x.max(a).min(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn close(ours: f64, reference: f64, relative: f64) {
        assert!(
            (ours - reference).abs() <= relative * reference.abs().max(1e-300),
            "ours {ours}, reference {reference}"
        );
    }

    #[test]
    fn erfc_matches_the_c_library() {
        // Python's math.erfc (the C library's).
        let reference = [
            (0.1, 0.8875370839817152),
            (0.5, 0.4795001221869535),
            (1.0, 0.15729920705028513),
            (1.9, 0.0072095707647425325),
            (2.0, 0.004677734981047265),
            (2.1, 0.002979466656332984),
            (3.0, 2.2090496998585438e-05),
            (5.0, 1.5374597944280351e-12),
            (10.0, 2.088487583762545e-45),
        ];
        for (x, expected) in reference {
            close(erfc(x), expected, 1e-13);
            close(erfc(-x), 2.0 - expected, 1e-15);
        }
        close(log_erfc_fraction(27.0), 5.23705e-319_f64.ln(), 1e-5);
    }

    #[test]
    fn log_space_functions_match_optuna() {
        // optuna.samplers._tpe._truncnorm (Optuna 5.1.0).
        for (a, expected) in [
            (-40.0, -804.6084420137538),
            (-10.0, -53.23128515051246),
            (-3.0, -6.607726221510348),
            (-0.5, -1.1759117615936188),
            (0.0, -std::f64::consts::LN_2),
            (1.0, -0.1727537790234499),
            (7.0, -1.279812543885835e-12),
        ] {
            close(log_ndtr(a), expected, 1e-12);
        }
        for (a, b, expected) in [
            (-1.0, 1.0, -0.38171514630212616),
            (-30.0, -29.0, -424.7874199097303),
            (2.0, 2.5, -4.101945378031024),
            (-0.5, 40.0, -0.36894641528865635),
            (5.0, 50.0, -15.064998393988724),
        ] {
            close(log_gauss_mass(a, b), expected, 1e-12);
        }
        for (q, a, b, expected) in [
            (0.3, -1.0, 1.0, -0.34921993245688226),
            (0.9, -30.0, -29.0, -29.003628590072662),
            (0.5, 2.0, 2.5, 2.184033353567713),
            (0.01, -0.5, 40.0, -0.4804543910516122),
            (0.7, 5.0, 50.0, 5.2273132809147285),
            (0.999, -3.0, 0.2, 0.1985223489917974),
        ] {
            close(truncated_ppf(q, a, b), expected, 1e-8);
        }
    }

    #[test]
    fn quantiles_stay_inside_the_interval() {
        for (a, b) in [(-1.0, 1.0), (-50.0, -49.0), (49.0, 50.0), (0.0, 1e-9)] {
            for q in [0.0, 1e-12, 0.5, 1.0 - 1e-12, 1.0] {
                let x = truncated_ppf(q, a, b);
                assert!(x >= a && x <= b, "q {q} on [{a}, {b}] gave {x}");
            }
        }
    }
}
