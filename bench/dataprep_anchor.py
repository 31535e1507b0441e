"""Anchor: pandas + scikit-learn doing the data-preparation workload on 1M rows x 30 mixed columns.
`dataprep_anchor.py make PATH` writes the data set (seeded); `dataprep_anchor.py run PATH` times
load + validate + preprocess (impute, scale, one-hot) + stratified split, and prints seconds and peak RSS."""
import json, resource, sys, time
import numpy as np, pandas as pd
def make(path, rows=1_000_000):
    rows = int(rows)
    rng = np.random.default_rng(0)
    cols = {f"num_{i}": rng.normal(i, 1 + i, rows) for i in range(20)}
    for i in range(0, 20, 4):
        cols[f"num_{i}"][rng.random(rows) < 0.05] = np.nan
    cats = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    for i in range(8):
        c = cats[rng.integers(0, 3 + i % 4, rows)].astype(object)
        c[rng.random(rows) < 0.02] = None
        cols[f"cat_{i}"] = c
    cols["event_date"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), unit="D")
    cols["target"] = (rng.random(rows) < 0.3).astype(int)
    pd.DataFrame(cols).to_csv(path, index=False)
def run(path):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    t0 = time.perf_counter()
    df = pd.read_csv(path, parse_dates=["event_date"])
    t_load = time.perf_counter()
    report = {"missing": df.isna().sum().to_dict(), "duplicates": int(df.duplicated().sum()),
              "dtypes": df.dtypes.astype(str).to_dict(), "balance": df["target"].value_counts().to_dict()}
    t_val = time.perf_counter()
    y = df.pop("target"); df["event_month"] = df.pop("event_date").dt.month
    Xtr, Xte, ytr, yte = train_test_split(df, y, test_size=0.2, stratify=y, random_state=0)
    num = [c for c in df.columns if c.startswith("num_")] + ["event_month"]
    cat = [c for c in df.columns if c.startswith("cat_")]
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), num),
                             ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), cat)])
    A = pre.fit_transform(Xtr); B = pre.transform(Xte)
    t_end = time.perf_counter()
    print(json.dumps({"workload": "dataprep_1M_30", "seconds": round(t_end - t0, 2), "load_s": round(t_load - t0, 2),
                      "validate_s": round(t_val - t_load, 2), "preprocess_split_s": round(t_end - t_val, 2),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "out_cols": A.shape[1]}))
if __name__ == "__main__":
    {"make": make, "run": run}[sys.argv[1]](sys.argv[2])
