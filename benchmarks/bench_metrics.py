"""Rank and correlation metrics: temu's former hand-written numpy code against scipy.stats, same data, same process.

temu.evaluation.metrics now calls scipy.stats (spearmanr, pearsonr, kendalltau tau-b) after its own
input checks. This script times, per metric, the former numpy implementation (a file given by
``--old``, e.g. from git), temu's current function and the bare scipy.stats call, interleaved, on
N predictions (continuous) against N targets with ties (MOS rounded to 2 decimals); 160k = FLIVE.

    git show b4083ca:temu/evaluation/metrics.py > /tmp/metrics_old.py
    python benchmarks/bench_metrics.py --old /tmp/metrics_old.py --items 160000
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch
from common import environment, table, time_interleaved


def load_old(path: Path):
    """Import a former copy of temu/evaluation/metrics.py as a module of temu.evaluation (its imports are relative)."""
    spec = importlib.util.spec_from_file_location("temu.evaluation._metrics_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, required=True, help="a former temu/evaluation/metrics.py (see above)")
    parser.add_argument("--items", type=int, default=160_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from scipy import stats

    from temu.evaluation import metrics

    old = load_old(args.old)
    rng = np.random.default_rng(0)
    target = np.round(rng.uniform(1.0, 5.0, args.items), 2)  # MOS-like: 401 distinct values, many ties
    pred = target + rng.normal(0.0, 0.5, args.items)
    scipy_fns = {
        "srcc": lambda: stats.spearmanr(pred, target).statistic,
        "plcc": lambda: stats.pearsonr(pred, target).statistic,
        "krcc": lambda: stats.kendalltau(pred, target).statistic,
    }
    device = torch.device("cpu")
    rows = []
    start = time.perf_counter()
    for name, scipy_fn in scipy_fns.items():
        fns = {
            "old numpy": lambda name=name: getattr(old, name)(pred, target),
            "temu (scipy)": lambda name=name: getattr(metrics, name)(pred, target),
            "bare scipy.stats": scipy_fn,
        }
        values = {label: float(fn()) for label, fn in fns.items()}
        timings = time_interleaved(fns, device=device, items=args.items, repeats=args.repeats)
        base = timings["old numpy"].median
        for label, t in timings.items():
            rows.append(
                [
                    name.upper(),
                    label,
                    f"{1e3 * t.median:,.1f}",
                    f"{1e3 * min(t.seconds):,.1f}..{1e3 * max(t.seconds):,.1f}",
                    f"{base / t.median:,.2f}",
                    f"{abs(values[label] - values['old numpy']):.1e}",
                ]
            )
    print(f"# {args.items:,} items (targets with ties), {args.repeats} repeats interleaved (median)")
    print(f"# {environment(device)}")
    print(
        table(
            rows,
            ["metric", "implementation", "ms (median)", "min..max ms", "speed-up vs old", "abs. difference vs old"],
        )
    )
    print(f"# total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
