"""k-means and PCA: mlops-mcp vs scikit-learn on the same standardized data, side by side in one run.

Data: make_blobs(ROWS, 20 features, 8 centers, random_state=0), standardized once in Python with
StandardScaler. Both sides fit on that standardized matrix: scikit-learn directly, ours from a parquet
file of it through the MCP tools (release binary, stdio). Our server fits its default preprocessing
pipeline (standard scaling) on raw data first; on already standardized data it is an identity up to
rounding, so both fit the same numbers.

  k-means  ours `train_unsupervised_clustering` {kmeans, n_clusters 8, n_init N, max_iter 300,
           tol 1e-4} vs KMeans(n_clusters=8, n_init=N, max_iter=300, tol=1e-4, random_state=0).
           Both use greedy k-means++ seeding and Lloyd iterations. scikit-learn's tol is relative to
           the mean feature variance (1 here), ours is absolute: with standardized data the two stop
           on the same rule (sum of squared centroid shifts <= 1e-4). Quality: inertia recomputed
           the same way for both from the row assignments (ours from results/<job>/clusters.csv),
           plus the adjusted Rand index of each against the true blob labels and against each other.
           The 8 blobs are well apart, so both converge in a couple of Lloyd iterations and the time is
           mostly seeding and plumbing; a second call of ours with n_init=1, max_iter=1 shows our
           fixed cost (read, pipeline, seeding, scores, CSV, save).
  PCA      ours `train_unsupervised_dimension_reduction` {pca, n_components 5} vs PCA(n_components=5)
           (its default solver). Quality: explained_variance_ratio of both, largest absolute
           difference, and the smallest |cosine| between matching components.

Times: ours is the whole tool call (it reads the parquet, fits the scaling pipeline, fits, scores
silhouette / Davies-Bouldin / Calinski-Harabasz for k-means, writes the per-row CSV and saves the model;
the clustering and reduction jobs report no separate fit time). The anchor is timed twice: fit()
alone, and an end-to-end equivalent (read the parquet, StandardScaler, fit, for k-means a 5000-row
silhouette, write the per-row CSV). Ratios are ours / anchor (below 1 = ours faster). Each time is
the fastest of BENCH_REPEATS (default 3) runs, the sides alternating; the note lists every run.

Usage: python3 bench/unsupervised_vs_sklearn.py [ROWS] [N_INIT]   (defaults 1000000 and 3)"""
import asyncio
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("BENCH_THREADS", "2"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.metrics import adjusted_rand_score, silhouette_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from _bench_common import REPEATS, Table, ours, runs_note, write_parquet  # noqa: E402

K = 8
TOL = 1e-4
MAX_ITER = 300
N_COMPONENTS = 5


def inertia_of(X, labels):
    """Sum of squared distances to the mean of each assigned cluster (the same for both sides)."""
    total = 0.0
    for c in np.unique(labels):
        pts = X[labels == c]
        total += float(((pts - pts.mean(axis=0)) ** 2).sum())
    return total


async def run(rows, n_init):
    table = Table(f"k-means and PCA, {rows} x 20 (make_blobs, 8 centers, standardized)", "scikit-learn")
    X, truth = make_blobs(n_samples=rows, n_features=20, centers=K, random_state=0)
    X = StandardScaler().fit_transform(X)
    cols = [f"x{i}" for i in range(X.shape[1])]
    with tempfile.TemporaryDirectory() as home:
        uri = write_parquet(home, "bench_blobs", pd.DataFrame(X, columns=cols))
        path = os.path.join(home, uri)
        async with ours(home) as o:
            # ---- k-means: the anchor fit alone and end to end, then ours; the sides alternate.
            sk_fit, sk_e2e, call_s = [], [], []
            for r in range(REPEATS):
                t = time.perf_counter()
                km = KMeans(n_clusters=K, n_init=n_init, max_iter=MAX_ITER, tol=TOL, random_state=0).fit(X)
                sk_fit.append(time.perf_counter() - t)
                t = time.perf_counter()
                Xe = StandardScaler().fit_transform(pd.read_parquet(path).to_numpy())
                km_e = KMeans(n_clusters=K, n_init=n_init, max_iter=MAX_ITER, tol=TOL, random_state=0).fit(Xe)
                silhouette_score(Xe, km_e.labels_, sample_size=5000, random_state=0)
                pd.DataFrame({"row": np.arange(rows), "cluster": km_e.labels_}).to_csv(f"{home}/sk_clusters.csv", index=False)
                sk_e2e.append(time.perf_counter() - t)
                del Xe, km_e
                job_r, call = await o.call("train_unsupervised_clustering", {
                    "algorithm": "kmeans", "data_uri": uri, "training_job_name": f"bench-kmeans-{r}", "seed": 0,
                    "hyperparameters": {"n_clusters": K, "n_init": n_init, "max_iter": MAX_ITER, "tol": TOL},
                })
                call_s.append(call)
                if r == 0:
                    job = job_r
            ours_labels = pd.read_csv(os.path.join(home, "results/bench-kmeans-0/clusters.csv"))["cluster"].to_numpy()
            w = f"k-means k={K} n_init={n_init}"
            table.add(w, "time s (ours: tool call; anchor: fit)", min(call_s), min(sk_fit), runs_note(call_s, sk_fit))
            table.add(w, "time s (ours: tool call; anchor: end to end)", min(call_s), min(sk_e2e),
                      runs_note(call_s, sk_e2e) + "; anchor: read parquet + scale + fit + silhouette(5000) + write CSV")
            table.add(w, "inertia (from assignments)", inertia_of(X, ours_labels), inertia_of(X, km.labels_))
            table.add(w, "inertia (each side's own figure)", None, float(km.inertia_),
                      "anchor's KMeans.inertia_; ours reports none in metrics")
            table.add(w, "ARI vs true blobs", adjusted_rand_score(truth, ours_labels), adjusted_rand_score(truth, km.labels_))
            table.add(w, "ARI ours vs anchor", adjusted_rand_score(km.labels_, ours_labels), None)
            m = job["metrics"]
            table.add(w, "silhouette (5000-row sample)", m.get("silhouette"),
                      float(silhouette_score(X, km.labels_, sample_size=5000, random_state=0)))
            # Our fixed cost: the same call with one run of one iteration (read, pipeline, seeding,
            # one Lloyd step, scores, CSV, save), to tell the algorithm from the plumbing.
            _, floor_s = await o.call("train_unsupervised_clustering", {
                "algorithm": "kmeans", "data_uri": uri, "training_job_name": "bench-kmeans-floor", "seed": 0,
                "hyperparameters": {"n_clusters": K, "n_init": 1, "max_iter": 1},
            })
            table.add(w, "ours' floor: same call with n_init=1, max_iter=1 (s)", floor_s, None,
                      "I/O + pipeline + k-means++ seeding + scores + CSV + save")

            # ---- PCA.
            sk_fit, sk_e2e, call_s = [], [], []
            for r in range(REPEATS):
                t = time.perf_counter()
                pca = PCA(n_components=N_COMPONENTS).fit(X)
                sk_fit.append(time.perf_counter() - t)
                t = time.perf_counter()
                Xe = StandardScaler().fit_transform(pd.read_parquet(path).to_numpy())
                emb = PCA(n_components=N_COMPONENTS).fit_transform(Xe)
                df = pd.DataFrame(emb, columns=[f"component_{i + 1}" for i in range(N_COMPONENTS)])
                df.insert(0, "row", np.arange(rows))
                df.to_csv(f"{home}/sk_embedding.csv", index=False)
                sk_e2e.append(time.perf_counter() - t)
                del Xe, emb, df
                job_r, call = await o.call("train_unsupervised_dimension_reduction", {
                    "algorithm": "pca", "data_uri": uri, "training_job_name": f"bench-pca-{r}", "seed": 0,
                    "hyperparameters": {"n_components": N_COMPONENTS},
                })
                call_s.append(call)
                if r == 0:
                    job = job_r
            ours_ratio = np.array(job["metrics"]["explained_variance_ratio"])
            ours_emb = pd.read_csv(os.path.join(home, "results/bench-pca-0/embedding.csv"))
            ours_emb = ours_emb[[f"component_{i + 1}" for i in range(N_COMPONENTS)]].to_numpy()
            sk_emb = pca.transform(X)
            # Each of our projected columns against the matching sklearn one, up to sign.
            cos = [abs(float(np.dot(ours_emb[:, i], sk_emb[:, i]) /
                             (np.linalg.norm(ours_emb[:, i]) * np.linalg.norm(sk_emb[:, i])))) for i in range(N_COMPONENTS)]
            w = f"PCA n_components={N_COMPONENTS}"
            table.add(w, "time s (ours: tool call; anchor: fit)", min(call_s), min(sk_fit), runs_note(call_s, sk_fit))
            table.add(w, "time s (ours: tool call; anchor: end to end)", min(call_s), min(sk_e2e),
                      runs_note(call_s, sk_e2e) + "; anchor: read parquet + scale + fit_transform + write CSV")
            for i in range(N_COMPONENTS):
                table.add(w, f"explained_variance_ratio[{i}]", float(ours_ratio[i]), float(pca.explained_variance_ratio_[i]))
            table.add(w, "explained_variance_ratio total", float(ours_ratio.sum()), float(pca.explained_variance_ratio_.sum()))
            table.add(w, "max abs difference of the ratios", float(np.abs(ours_ratio - pca.explained_variance_ratio_).max()), None)
            table.add(w, "min abs cosine of matching projections", min(cos), None, "1.0 = same components up to sign")
    table.print()


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_init = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    asyncio.run(run(rows, n_init))


if __name__ == "__main__":
    main()
