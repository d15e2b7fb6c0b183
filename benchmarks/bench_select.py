"""``temu.corpus.select`` on a corpus output of 10 million rows: wall time, peak memory, rows/s.

Generates a corpus output folder in a temporary folder (``--shards`` Parquet shard files of
``--rows`` in all, as ``temu score --output DIR/`` writes them: ids like ``photos/00123/img_0012345.jpg``,
float32 scores, 1% error rows, a plan), then times each rule in a fresh Python process (so the
peak RSS, from ``resource.getrusage``, is that selection's own), writing the kept ids to a
``.txt`` file. The baseline, run the same way, only reads the columns a selection needs (id,
score, error) of every shard into one table: the I/O a selection cannot avoid. (The peak is the
child's ``VmHWM``: ``ru_maxrss`` would carry over the parent's peak across ``exec`` on Linux.)

    python benchmarks/bench_select.py                          # 10M rows in 1,000 shards of 10,000
    python benchmarks/bench_select.py --rows 1000000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from common import table

REPO = Path(__file__).resolve().parent.parent


def make_scores(folder: Path, rows: int, shards: int, seed: int = 0) -> None:
    """A corpus output folder of ``rows`` rows in ``shards`` shard files, with its plan and _SUCCESS."""
    sys.path.insert(0, str(REPO))
    from temu.corpus.output import shard_output
    from temu.corpus.plan import OutputFolder, Plan, Shard
    from temu.corpus.uris import Filesystems

    rng = np.random.default_rng(seed)
    out = OutputFolder(str(folder), Filesystems())
    per = -(-rows // shards)
    plan_shards = []
    for k in range(shards):
        start, stop = k * per, min(rows, (k + 1) * per)
        shard = Shard(f"list-{k:05d}", "list", str(folder / "list.txt"), "list.txt", 0, 1, stop - start)
        plan_shards.append(shard)
        n = stop - start
        ids = [f"photos/{i // 1000:05d}/img_{i:07d}.jpg".encode() for i in range(start, stop)]
        scores = rng.random(n, dtype=np.float32).round(4)  # rounded: many ties, as real scores have
        bad = rng.random(n) < 0.01
        values = [None if b else float(s) for s, b in zip(scores, bad)]
        errors = [f"{i.decode()}: not an image file" if b else None for i, b in zip(ids, bad)]
        t, _ = shard_output(shard, ids, values, errors, [None] * n)
        out.write_table(shard.file_name, t)
    out.commit_plan(Plan({"model": {}, "head_sha256": "", "precision": "fp32"}, ["list.txt"], {}, plan_shards))
    out.write_bytes("_SUCCESS", b"")


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
start = time.perf_counter()
how, scores, out = sys.argv[1], sys.argv[2], sys.argv[3]
if how == "read":
    import pyarrow.parquet as pq
    from pathlib import Path
    parts = [pq.read_table(p, columns=["id", "score", "error"]) for p in sorted(Path(scores).glob("*.parquet"))]
    import pyarrow as pa
    kept = pa.concat_tables(parts).num_rows
else:
    import temu.corpus
    rule = json.loads(how)
    kept = temu.corpus.select(scores, output=out, overwrite=True, **rule).kept
seconds = time.perf_counter() - start
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]  # this image's own peak
peak_kib = int(peak[0].split()[1]) if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_kib": peak_kib, "kept": kept}}))
"""


def run_child(how: str, scores: Path, out: Path) -> dict:
    code = CHILD.format(repo=str(REPO))
    proc = subprocess.run([sys.executable, "-c", code, how, str(scores), str(out)], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ways = {
        "read id, score, error (baseline)": "read",
        "--top 0.1": json.dumps({"top": 0.1}),
        "--top-k 1000000": json.dumps({"top_k": 1_000_000}),
        "--min-score 0.5": json.dumps({"min_score": 0.5}),
    }
    with tempfile.TemporaryDirectory() as tmp:
        scores = Path(tmp) / "scores"
        start = time.perf_counter()
        make_scores(scores, args.rows, args.shards)
        made = time.perf_counter() - start
        size = sum(p.stat().st_size for p in scores.glob("*.parquet"))
        results: dict[str, list[dict]] = {name: [] for name in ways}
        for _ in range(args.repeats):  # interleaved: load drift hits every way alike
            for name, how in ways.items():
                results[name].append(run_child(how, scores, Path(tmp) / "keep.txt"))
    rows = []
    base = statistics.median(r["seconds"] for r in results["read id, score, error (baseline)"])
    for name, runs in results.items():
        seconds = [r["seconds"] for r in runs]
        median = statistics.median(seconds)
        peak = max(r["peak_kib"] for r in runs) / 1024
        rows.append(
            [
                name,
                f"{runs[0]['kept']:,}",
                f"{median:.2f}",
                f"{min(seconds):.2f}..{max(seconds):.2f}",
                f"{peak:,.0f}",
                f"{args.rows / median / 1e6:.2f}",
                f"{median / base:.2f}",
            ]
        )
    print(
        f"# {args.rows:,} rows in {args.shards:,} shard files ({size / 2**20:,.0f} MiB; made in {made:.0f} s), "
        f"{args.repeats} runs each in a fresh process, kept ids written to a .txt"
    )
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs | pyarrow {pa.__version__} | "
        f"python {platform.python_version()}"
    )
    header = ["way", "rows kept", "s (median)", "min..max s", "peak RSS MiB", "M rows/s", "time / baseline"]
    print(table(rows, header))


if __name__ == "__main__":
    main()
