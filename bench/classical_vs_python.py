"""Tree ensembles: mlops-mcp vs scikit-learn RandomForest and XGBoost, side by side in one run.

Data: make_classification / make_regression, ROWS x 20 features (10 informative; regression noise
10), random_state 0, split 80/20 with train_test_split(random_state=0). The same rows go to both
sides: the anchors get the numpy arrays, ours gets them as parquet files (target column `y`) under
its MLOPS_HOME and is driven through the MCP tools over stdio (release binary):
`train_supervised_classifier` / `train_supervised_regressor`, then `evaluate_classifier` /
`evaluate_regressor` on the 20% test file.

Settings (identical on both sides):
  random forest   100 trees, max_depth 12, max_features sqrt (classification) / all (regression),
                  bootstrap; scikit-learn RandomForest*(n_jobs=2, random_state=0)
  boosted trees   200 rounds, max_depth 6, learning_rate 0.3, XGBoost defaults otherwise
                  (min_child_weight 1, reg_lambda 1, max_bin 256); XGB*(tree_method="hist", n_jobs=2)

Reported per workload: ours `metrics.fit_seconds` (the job's own fit timer; it also covers scoring
the training rows once), ours whole tool-call wall time (parquet read, preprocessing pipeline fit,
fit, model save), the anchor's fit() time, and test accuracy / R² of both; ratios are ours / anchor
(below 1 = ours faster for times). Each time is the fastest of BENCH_REPEATS (default 3) runs, the
sides alternating; the note lists every run.

Usage: python3 bench/classical_vs_python.py [ROWS] [WORKLOADS]
  ROWS default 100000; WORKLOADS a comma list of rf_clf,rf_reg,gbdt_clf,gbdt_reg (default all)."""
import asyncio
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("BENCH_THREADS", "2"))

import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor  # noqa: E402
from sklearn.metrics import accuracy_score, r2_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from _bench_common import REPEATS, THREADS, Table, ours, runs_note, write_parquet  # noqa: E402

RF = {"n_estimators": 100, "max_depth": 12}
GBDT = {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.3}


def dataset(kind, rows):
    if kind == "clf":
        X, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)
    else:
        X, y = make_regression(n_samples=rows, n_features=20, n_informative=10, noise=10.0, random_state=0)
    return train_test_split(X, y, test_size=0.2, random_state=0)


def frame(X, y):
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    df["y"] = y
    return df


def anchor_model(algo, kind):
    if algo == "rf":
        cls = RandomForestClassifier if kind == "clf" else RandomForestRegressor
        return cls(**RF, max_features="sqrt" if kind == "clf" else 1.0, n_jobs=THREADS, random_state=0)
    cls = xgb.XGBClassifier if kind == "clf" else xgb.XGBRegressor
    return cls(**GBDT, tree_method="hist", max_bin=256, n_jobs=THREADS, random_state=0)


async def run(rows, workloads):
    table = Table(f"tree ensembles, {rows} x 20, 80/20 split", "scikit-learn / XGBoost")
    with tempfile.TemporaryDirectory() as home:
        data = {}
        for kind in sorted({w.split("_")[1] for w in workloads}):
            Xtr, Xte, ytr, yte = dataset(kind, rows)
            data[kind] = (Xtr, Xte, ytr, yte,
                          write_parquet(home, f"bench_{kind}_train", frame(Xtr, ytr)),
                          write_parquet(home, f"bench_{kind}_test", frame(Xte, yte)))
        async with ours(home) as o:
            for w in workloads:
                algo, kind = w.split("_")
                Xtr, Xte, ytr, yte, train_uri, test_uri = data[kind]
                hp = dict(RF, max_features="sqrt" if kind == "clf" else "all") if algo == "rf" else dict(GBDT)
                tool = "train_supervised_classifier" if kind == "clf" else "train_supervised_regressor"
                anchor_fits, fit_s, call_s = [], [], []
                for r in range(REPEATS):  # the sides alternate, so both see the same background load
                    m = anchor_model(algo, kind)
                    t = time.perf_counter()
                    m.fit(Xtr, ytr)
                    anchor_fits.append(time.perf_counter() - t)
                    if r == 0:
                        pred = m.predict(Xte)
                        anchor_score = accuracy_score(yte, pred) if kind == "clf" else r2_score(yte, pred)
                    job_r, call = await o.call(tool, {
                        "algorithm": "random_forest" if algo == "rf" else "xgboost",
                        "train_data_uri": train_uri, "target_column": "y",
                        "training_job_name": f"bench-{w}-{r}", "seed": 0, "hyperparameters": hp,
                    })
                    fit_s.append(job_r["metrics"]["fit_seconds"])
                    call_s.append(call)
                    if r == 0:
                        job = job_r
                ev, eval_s = await o.call("evaluate_classifier" if kind == "clf" else "evaluate_regressor",
                                          {"model_uri": job["model_uri"], "test_data_uri": test_uri})
                score_name = "accuracy" if kind == "clf" else "r2"
                label = f"{'random forest' if algo == 'rf' else 'boosted trees'} {'classifier' if kind == 'clf' else 'regressor'}"
                table.add(label, "fit s (ours: metrics.fit_seconds)", min(fit_s), min(anchor_fits),
                          runs_note(fit_s, anchor_fits))
                table.add(label, "fit s (ours: whole train tool call)", min(call_s), min(anchor_fits),
                          runs_note(call_s) + "; ours also reads parquet, fits the scaling pipeline, saves the model")
                table.add(label, f"test {score_name}", ev[score_name], anchor_score)
                table.add(label, "evaluate tool call s (ours only)", eval_s, None)
    table.print()


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    workloads = sys.argv[2].split(",") if len(sys.argv) > 2 else ["rf_clf", "rf_reg", "gbdt_clf", "gbdt_reg"]
    asyncio.run(run(rows, workloads))


if __name__ == "__main__":
    main()
