"""t-SNE: mlops-mcp vs scikit-learn TSNE on the same standardized data, side by side in one run.

Data: make_blobs(ROWS, 50 features, 5 centers, random_state=0), standardized once in Python with
StandardScaler (our server's default pipeline would scale raw data the same way; on standardized data
it is an identity up to rounding). Both embed in 2-D with perplexity 30, 1000 iterations,
Barnes-Hut angle 0.5 and a random (not PCA) start: ours through `train_unsupervised_dimension_reduction`
{tsne, perplexity 30, max_iter 1000} over MCP stdio (release binary), the anchor as
TSNE(perplexity=30, max_iter=1000, angle=0.5, init="random", n_jobs=2, random_state=0). Each side
keeps its own learning-rate and exaggeration schedule (scikit-learn: learning_rate="auto").

Quality, computed the same way on both embeddings: trustworthiness (sklearn.manifold.trustworthiness,
5 neighbours) and the 5-fold cross-validated 5-NN accuracy of the true blob labels in the embedding.
Times: ours is the whole tool call (parquet read, scaling pipeline, t-SNE, embedding CSV written), the
anchor is fit_transform. Ratios are ours / anchor (below 1 = ours faster). Each time is the fastest
of BENCH_REPEATS (default 3) runs, the sides alternating; the note lists every run; quality is
scored on the first run's embeddings.

Usage: python3 bench/tsne_vs_sklearn.py [ROWS]   (default 5000)"""
import asyncio
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("BENCH_THREADS", "2"))

import pandas as pd  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402
from sklearn.manifold import TSNE, trustworthiness  # noqa: E402
from sklearn.model_selection import cross_val_score  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from _bench_common import REPEATS, THREADS, Table, ours, runs_note, write_parquet  # noqa: E402


def knn_accuracy(emb, labels):
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=5), emb, labels, cv=5).mean())


async def run(rows):
    table = Table(f"t-SNE, {rows} x 50 (make_blobs, 5 centers, standardized)", "scikit-learn")
    X, truth = make_blobs(n_samples=rows, n_features=50, centers=5, random_state=0)
    X = StandardScaler().fit_transform(X)
    with tempfile.TemporaryDirectory() as home:
        uri = write_parquet(home, "bench_tsne", pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]))
        async with ours(home) as o:
            sk_s, call_s = [], []
            for r in range(REPEATS):  # the sides alternate; every run is seeded the same
                t = time.perf_counter()
                emb = TSNE(n_components=2, perplexity=30, max_iter=1000, angle=0.5, init="random",
                           n_jobs=THREADS, random_state=0).fit_transform(X)
                sk_s.append(time.perf_counter() - t)
                if r == 0:
                    sk_emb = emb
                _, call = await o.call("train_unsupervised_dimension_reduction", {
                    "algorithm": "tsne", "data_uri": uri, "training_job_name": f"bench-tsne-{r}", "seed": 0,
                    "hyperparameters": {"perplexity": 30, "max_iter": 1000},
                })
                call_s.append(call)
            ours_emb = pd.read_csv(os.path.join(home, "results/bench-tsne-0/embedding.csv"))
            ours_emb = ours_emb[["component_1", "component_2"]].to_numpy()
            w = "t-SNE perplexity 30, 1000 it"
            table.add(w, "time s (ours: tool call; anchor: fit_transform)", min(call_s), min(sk_s), runs_note(call_s, sk_s))
            # scikit-learn's OpenMP threads busy-wait: on a busy 2-core machine one thread can beat two.
            with threadpool_limits(1):
                t = time.perf_counter()
                TSNE(n_components=2, perplexity=30, max_iter=1000, angle=0.5, init="random",
                     n_jobs=1, random_state=0).fit_transform(X)
                one = time.perf_counter() - t
            table.add(w, "time s (anchor on 1 thread, one run)", min(call_s), one,
                      "ours still on its threads; shows the anchor's sensitivity to a loaded machine")
            table.add(w, "trustworthiness (5 nn)", float(trustworthiness(X, ours_emb, n_neighbors=5)),
                      float(trustworthiness(X, sk_emb, n_neighbors=5)))
            table.add(w, "5-NN accuracy of blob labels (5-fold CV)", knn_accuracy(ours_emb, truth), knn_accuracy(sk_emb, truth))
    table.print()


def main():
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    asyncio.run(run(rows))


if __name__ == "__main__":
    main()
