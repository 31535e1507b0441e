"""The Evidently side of drift_vs_evidently.py, run in Evidently's own virtual environment (its
release needs pandas<3): reads the two Parquet tables, runs the DataDriftPreset, and prints one JSON
line with the time (read + report, and the report alone), the peak RSS and the drifted columns.

Usage: python drift_anchor.py REFERENCE.parquet CURRENT.parquet"""
import json
import resource
import sys
import time

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset


def drifted_columns(snapshot):
    """Columns whose ValueDrift crossed its threshold: a distance at or above it, a p-value below."""
    out = []
    for m in snapshot.dict()["metrics"]:
        config = m["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        value, threshold = m["value"], config["threshold"]
        is_p_value = "p_value" in config["method"].lower().replace("-", "_")
        if (value < threshold) if is_p_value else (value >= threshold):
            out.append(config["column"])
    return sorted(out)


def main():
    started = time.perf_counter()
    reference = pd.read_parquet(sys.argv[1])
    current = pd.read_parquet(sys.argv[2])
    report_started = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
    drifted = drifted_columns(snapshot)
    done = time.perf_counter()
    print(json.dumps({
        "seconds": done - started,
        "report_seconds": done - report_started,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "drifted": drifted,
    }), flush=True)


if __name__ == "__main__":
    main()
