"""Wall time of ``temu --version`` from source trees, interleaved, the first tree the baseline.

Each run starts a fresh interpreter that calls the console script's entry point
(``temu.cli:main`` with ``sys.argv = ["temu", "--version"]``) with ``PYTHONPATH`` set to the tree,
so an older checkout (``git worktree add --detach /tmp/old <commit>``) is timed beside this one
in the same environment:

    python benchmarks/bench_version.py /tmp/old . --runs 10
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CODE = "import sys; sys.argv = ['temu', '--version']; from temu.cli import main; sys.exit(main())"


def run_once(tree: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, cwd=tree.parent)
    elapsed = time.perf_counter() - start
    if done.returncode != 0 or not done.stdout.startswith("temu "):
        raise RuntimeError(f"{tree}: temu --version failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="+", type=Path, help="source trees holding temu/ (the first is the baseline)")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    trees = [t.resolve() for t in args.trees]
    times: dict[Path, list[float]] = {t: [] for t in trees}
    for _ in range(args.runs):
        for tree in trees:
            times[tree].append(run_once(tree))
    base = statistics.median(times[trees[0]])
    print(f"# temu --version, {args.runs} runs each, interleaved; python {sys.version.split()[0]}")
    print("| tree | median s | min s | max s | ratio to the first |")
    print("|---|---|---|---|---|")
    for tree in trees:
        t = times[tree]
        med = statistics.median(t)
        print(f"| {tree} | {med:.3f} | {min(t):.3f} | {max(t):.3f} | {med / base:.3f} |")


if __name__ == "__main__":
    main()
