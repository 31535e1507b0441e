"""Anchor: MLflow's model registry (SQLite backend) — registrations per second and search latency.
Usage: registry_anchor.py N [TRACKING_URI]   (N versions of one model, then searches; SQLite in a
temporary folder unless a tracking URI such as postgresql://postgres@127.0.0.1:5432/mlflow is given)."""
import json, os, statistics, sys, tempfile, time
import mlflow
from mlflow import MlflowClient
n = int(sys.argv[1])
d = tempfile.mkdtemp()
uri = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{d}/mlflow.db"
mlflow.set_tracking_uri(uri)
c = MlflowClient()
c.create_registered_model("anchor")
t = time.perf_counter()
for i in range(n):
    c.create_model_version("anchor", source=f"{d}/models/{i}", tags={"i": str(i)})
reg = time.perf_counter() - t
lat = []
for i in range(50):
    t = time.perf_counter(); c.search_model_versions(f"name='anchor' and tag.i='{i * (n // 50)}'"); lat.append(time.perf_counter() - t)
lat.sort()
print(json.dumps({"workload": f"mlflow_registry_{uri.split(':')[0]}_{n}", "registrations_per_s": round(n / reg, 1),
                  "search_p50_ms": round(statistics.median(lat) * 1e3, 2), "search_p99_ms": round(lat[-1] * 1e3, 2)}))
