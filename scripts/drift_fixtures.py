#!/usr/bin/env python3
"""Makes the drift-statistics fixtures in crates/data/tests/fixtures/drift/.

Each case is a reference and a current column (`<case>_reference.csv`, `<case>_current.csv`) and
the statistics computed here with NumPy and SciPy (`expected.json`), which
crates/data/tests/drift.rs asserts mlops-data reproduces to 1e-6. The definitions follow
crates/data/src/drift/stats.rs:

- bins: the reference's deciles (np.quantile, linear), repeats removed; bin i holds (e[i-1], e[i]].
- PSI: sum((q - p) * ln(q / p)), an empty bin's share counted as 1e-4 (Evidently's choice).
- KS: scipy.stats.ks_2samp's statistic against the reference's sketch (all values up to 1,000,
  else 1,001 evenly spaced quantiles); p-value scipy.special.kolmogorov((e + 0.12 + 0.11/e) * D),
  e = sqrt(n*m/(n+m)) over the non-missing rows (Stephens' approximation).
- chi-square: scipy.stats.chisquare of the current counts against the reference shares (an empty
  reference bucket's share 1e-4, renormalised; buckets empty on both sides left out).
- Jensen-Shannon: scipy.spatial.distance.jensenshannon (natural log).

Run: python3 scripts/drift_fixtures.py   (needs numpy and scipy)
"""

import json
import pathlib

import numpy as np
from scipy import special, stats
from scipy.spatial import distance

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/data/tests/fixtures/drift"
EMPTY_SHARE = 1e-4
SKETCH = 1000
TOP_VALUES = 50


def psi(ref_counts, cur_counts):
    p = np.asarray(ref_counts, float) / max(sum(ref_counts), 1)
    q = np.asarray(cur_counts, float) / max(sum(cur_counts), 1)
    p[p == 0] = EMPTY_SHARE
    q[q == 0] = EMPTY_SHARE
    return float(np.sum((q - p) * np.log(q / p)))


def numeric(ref, cur):
    r = np.sort(ref[np.isfinite(ref)])
    c = np.sort(cur[np.isfinite(cur)])
    edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
    ref_counts = np.bincount(np.searchsorted(edges, r, side="left"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, c, side="left"), minlength=len(edges) + 1)
    sketch = r if len(r) <= SKETCH else np.quantile(r, np.arange(SKETCH + 1) / SKETCH)
    d = float(stats.ks_2samp(sketch, c).statistic)
    e = np.sqrt(len(r) * len(c) / (len(r) + len(c)))
    return {
        "kind": "numeric",
        "mean": float(np.mean(r)),
        "std": float(np.std(r, ddof=1)),
        "missing_rate_reference": float(1 - len(r) / len(ref)),
        "missing_rate_current": float(1 - len(c) / len(cur)),
        "bin_edges": edges.tolist(),
        "bin_counts": ref_counts.tolist(),
        "current_bin_counts": cur_counts.tolist(),
        "psi": psi(ref_counts, cur_counts),
        "ks_statistic": d,
        "ks_p_value": float(special.kolmogorov((e + 0.12 + 0.11 / e) * d)),
    }


def categorical(ref, cur):
    values, counts = np.unique([v for v in ref if v is not None], return_counts=True)
    order = sorted(zip(values.tolist(), counts.tolist()), key=lambda vc: (-vc[1], vc[0]))
    top = order[:TOP_VALUES]
    names = [v for v, _ in top]
    ref_counts = [n for _, n in top] + [sum(n for _, n in order[TOP_VALUES:])]
    cur_counts = [0] * (len(names) + 1)
    for v in cur:
        if v is None:
            continue
        cur_counts[names.index(v) if v in names else len(names)] += 1
    kept = [(r, c) for r, c in zip(ref_counts, cur_counts) if r > 0 or c > 0]
    shares = np.array([r for r, _ in kept], float) / sum(r for r, _ in kept)
    shares[shares == 0] = EMPTY_SHARE
    shares /= shares.sum()
    observed = np.array([c for _, c in kept], float)
    chi = stats.chisquare(observed, f_exp=shares * observed.sum())
    return {
        "kind": "categorical",
        "categories": names,
        "bin_counts": ref_counts,
        "current_bin_counts": cur_counts,
        "missing_rate_reference": sum(v is None for v in ref) / len(ref),
        "missing_rate_current": sum(v is None for v in cur) / len(cur),
        "psi": psi(ref_counts, cur_counts),
        "chi_square": float(chi.statistic),
        "chi_square_p_value": float(chi.pvalue),
        "js_distance": float(distance.jensenshannon(ref_counts, cur_counts)),
    }


def with_missing(rng, values, rate):
    values = values.astype(float)
    values[rng.random(len(values)) < rate] = np.nan
    return values


def write_column(path, values):
    with open(path, "w") as f:
        f.write("value\n")
        for v in values:
            if v is None or (isinstance(v, float) and np.isnan(v)):
                f.write("\n")
            else:
                f.write(f"{v!r}\n" if isinstance(v, float) else f"{v}\n")


def main():
    rng = np.random.default_rng(20261207)
    letters = np.array(["apple", "banana", "cherry", "damson"])
    cases = {
        # All reference values kept: KS against the exact reference sample.
        "normal_shift": (
            with_missing(rng, rng.normal(0, 1, 800), 0.05),
            with_missing(rng, rng.normal(0.3, 1.2, 600), 0.1),
        ),
        # A sketch of quantiles stands for 5,000 reference values.
        "lognormal_sketch": (rng.lognormal(0, 0.7, 5000), rng.lognormal(0.1, 0.7, 3000)),
        # Ties: small integers repeat, so deciles repeat and KS steps over tied values.
        "poisson_ties": (
            rng.poisson(3, 900).astype(float),
            rng.poisson(3.4, 700).astype(float),
        ),
        "same_distribution": (rng.normal(5, 2, 1000), rng.normal(5, 2, 1000)),
    }
    categorical_cases = {
        "categories_new_value": (
            list(rng.choice(letters, 1000, p=[0.4, 0.3, 0.2, 0.1])) + [None] * 20,
            list(rng.choice(letters, 700, p=[0.3, 0.3, 0.2, 0.2])) + ["elder"] * 50 + [None] * 5,
        ),
        # More distinct values than the profile keeps: the tail is "other".
        "categories_long_tail": (
            [f"v{int(x):03d}" for x in rng.zipf(1.3, 3000) % 120],
            [f"v{int(x):03d}" for x in rng.zipf(1.5, 2000) % 120],
        ),
    }
    expected = {}
    for name, (ref, cur) in cases.items():
        write_column(OUT / f"{name}_reference.csv", ref.tolist())
        write_column(OUT / f"{name}_current.csv", cur.tolist())
        expected[name] = numeric(ref, cur)
    for name, (ref, cur) in categorical_cases.items():
        ref = [None if v is None else str(v) for v in ref]
        cur = [None if v is None else str(v) for v in cur]
        write_column(OUT / f"{name}_reference.csv", ref)
        write_column(OUT / f"{name}_current.csv", cur)
        expected[name] = categorical(ref, cur)
    kolmogorov = {str(y): float(special.kolmogorov(y)) for y in [0.2, 0.5, 0.8, 1.0, 1.17, 1.19, 1.5, 2.0, 3.0]}
    with open(OUT / "expected.json", "w") as f:
        json.dump({"cases": expected, "kolmogorov": kolmogorov}, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
