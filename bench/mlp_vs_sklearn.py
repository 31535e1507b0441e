"""MLP classifier: mlops-mcp (candle, through the MCP tool) vs scikit-learn's MLPClassifier, side by
side in one run. PyTorch is the anchor the issue prefers, but its Linux wheels pull in gigabytes of
CUDA libraries; scikit-learn's MLP is the CPU anchor that installs everywhere.

Data: make_classification, ROWS rows (default 50k) x 20 features, split 80/20 (random_state 0),
standardised once and given to both sides as the same numbers. Both train the same network: one
hidden layer of 100 ReLU units (scikit-learn's default), Adam at 1e-3, L2 alpha 1e-4, batch 200, for
exactly EPOCHS epochs (default 20; early stopping off on both sides), on all 80% training rows.
Reported: seconds per epoch (ours: the job's fit_seconds / epochs, where every epoch also scores
the 20% test rows given as validation data, which scikit-learn does not do; the anchor: fit time /
n_iter_), and test accuracy.

Usage: python3 bench/mlp_vs_sklearn.py [ROWS] [EPOCHS]   (bench/requirements.txt, a release build)"""
import asyncio
import os
import sys
import tempfile
import time
import warnings

import pandas as pd
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from _bench_common import REPEATS, Table, ours, runs_note, write_parquet


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    cols = [f"x{i}" for i in range(X.shape[1])]
    home = tempfile.mkdtemp()
    uris = {}
    for name, (a, b) in {"train": (Xtr, ytr), "test": (Xte, yte)}.items():
        df = pd.DataFrame(a, columns=cols)
        df["y"] = b
        uris[name] = write_parquet(home, f"mlp_{name}", df)

    def anchor():
        m = MLPClassifier(hidden_layer_sizes=(100,), activation="relu", solver="adam", alpha=1e-4,
                          batch_size=200, learning_rate_init=1e-3, max_iter=epochs, tol=0.0,
                          n_iter_no_change=10**6, early_stopping=False, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t = time.perf_counter()
            m.fit(Xtr, ytr)
            seconds = time.perf_counter() - t
        return seconds / m.n_iter_, m.score(Xte, yte)

    async def mine():
        per_epoch, acc = [], None
        async with ours(home) as o:
            for run in range(REPEATS):
                job, _ = await o.call("train_supervised_classifier", {
                    "algorithm": "neural_network", "train_data_uri": uris["train"], "target_column": "y",
                    "validation_data_uri": uris["test"],
                    "training_job_name": f"bench-mlp-{run}", "overwrite": True, "seed": 0,
                    "hyperparameters": {"hidden_layer_sizes": [100], "activation": "relu", "solver": "adam",
                                        "alpha": 1e-4, "batch_size": 200, "learning_rate_init": 1e-3,
                                        "max_iter": epochs, "early_stopping": False},
                })
                per_epoch.append(job["metrics"]["fit_seconds"] / job["metrics"]["epochs"])
                ev, _ = await o.call("evaluate_classifier", {"model_uri": job["model_uri"],
                                                             "test_data_uri": uris["test"]})
                acc = ev["accuracy"]
        return per_epoch, acc

    anchor_runs, anchor_acc = [], None
    for _ in range(REPEATS):
        s, anchor_acc = anchor()
        anchor_runs.append(s)
    ours_runs, ours_acc = asyncio.run(mine())
    t = Table(f"MLP classifier, {rows} x 20, 100 ReLU units, batch 200, {epochs} epochs",
              "scikit-learn MLPClassifier")
    workload = f"mlp_{rows}x20"
    t.add(workload, "seconds per epoch", min(ours_runs), min(anchor_runs), runs_note(ours_runs, anchor_runs))
    t.add(workload, "test accuracy", ours_acc, anchor_acc)
    t.print()


if __name__ == "__main__":
    main()
