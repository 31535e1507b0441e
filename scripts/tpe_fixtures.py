#!/usr/bin/env python3
"""Makes crates/ml/tests/fixtures/tpe/optuna_hartmann6.json: how well Optuna's samplers minimise
the 6-D Hartmann function in 50 trials, which crates/ml/tests/search.rs holds mlops_ml::search's
TPE to.

The objective is the standard Hartmann-6 (the constants below, as in Surjanovic & Bingham's
Virtual Library of Simulation Experiments), minimised on [0, 1]^6 with every coordinate a
`suggest_float("x0".."x5", 0, 1)`; its global minimum is -3.32237. For each seed 0..9 a fresh
study runs 50 trials one after another, and the best value found is recorded. Three samplers:

- "tpe": `TPESampler(seed=seed)` with Optuna's defaults, which for a single-objective study are
  the multivariate TPE (one joint Parzen estimator over all parameters), as mlops_ml::search's.
  This is the median the Rust test holds ours to.
- "tpe_independent": `TPESampler(seed=seed, multivariate=False)`, the univariate TPE (one Parzen
  estimator per parameter), for reference.
- "random": `RandomSampler(seed=seed)`, for reference.

Each sampler's entry has the per-seed best values ("best", seed order) and their median.

Run: python3 scripts/tpe_fixtures.py   (needs optuna; e.g. python3 -m venv /tmp/optuna-venv &&
/tmp/optuna-venv/bin/pip install optuna && /tmp/optuna-venv/bin/python scripts/tpe_fixtures.py)
"""

import json
import math
import pathlib
import statistics

import optuna

OUT = pathlib.Path(__file__).resolve().parent.parent / "crates/ml/tests/fixtures/tpe"
SEEDS = range(10)
TRIALS = 50

ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
]
P = [
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
]
MINIMUM = -3.32237
ARGMIN = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]


def hartmann6(x):
    total = 0.0
    for alpha, a_row, p_row in zip(ALPHA, A, P):
        inner = sum(a * (xj - p * 1e-4) ** 2 for a, xj, p in zip(a_row, x, p_row))
        total -= alpha * math.exp(-inner)
    return total


def objective(trial):
    return hartmann6([trial.suggest_float(f"x{j}", 0.0, 1.0) for j in range(6)])


def best_values(make_sampler):
    best = []
    for seed in SEEDS:
        study = optuna.create_study(direction="minimize", sampler=make_sampler(seed))
        study.optimize(objective, n_trials=TRIALS)
        best.append(study.best_value)
    return {"best": best, "median": statistics.median(best)}


def main():
    assert abs(hartmann6(ARGMIN) - MINIMUM) < 1e-4, "the Hartmann-6 constants are off"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {
        "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
        "tpe_independent": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=False),
        "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    }
    fixture = {
        "function": "hartmann6",
        "global_minimum": MINIMUM,
        "optuna_version": optuna.__version__,
        "seeds": list(SEEDS),
        "trials": TRIALS,
    }
    for name, make_sampler in samplers.items():
        fixture[name] = best_values(make_sampler)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "optuna_hartmann6.json", "w") as f:
        json.dump(fixture, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
