"""The base install of two source trees side by side: its size on disk and the import time of scoring.

Each git ref is exported (``git archive``) and installed with plain ``pip install`` (no extras) into
its own fresh venv, with the same torch/torchvision pins; then the venvs' sizes are compared (per
distribution) and ``python -c "import temu.api"`` is timed in each, interleaved, ``--runs`` times.

    python benchmarks/bench_install.py --before 5335035 --after HEAD --runs 20

Needs a few GB of disk per venv (torch) and a few minutes; offline where pip can install torch from
a local wheel cache.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PINS = ["torch==2.14.1", "torchvision==0.29.1"]


def install(ref: str, root: Path) -> Path:
    src = root / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", *PINS, str(src)], check=True)
    return python


def distributions(python: Path) -> dict[str, int]:
    """Installed distribution -> bytes of its files."""
    code = (
        "import importlib.metadata as m, os, json\n"
        "out = {}\n"
        "for d in m.distributions():\n"
        "    total = 0\n"
        "    for f in d.files or []:\n"
        "        p = d.locate_file(f)\n"
        "        total += os.path.getsize(p) if os.path.isfile(p) else 0\n"
        "    out[d.metadata['Name'].lower()] = total\n"
        "print(json.dumps(out))\n"
    )
    import json

    return json.loads(subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout)


def import_time(python: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(python), "-c", "import temu.api"], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="HEAD~1")
    parser.add_argument("--after", default="HEAD")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pythons = {ref: install(ref, Path(tmp) / ref.replace("/", "_")) for ref in (args.before, args.after)}
        sizes = {ref: distributions(py) for ref, py in pythons.items()}
        for py in pythons.values():  # warm the file cache
            import_time(py)
        times: dict[str, list[float]] = {ref: [] for ref in pythons}
        for _ in range(args.runs):
            for ref, py in pythons.items():
                times[ref].append(import_time(py))
    before, after = sizes[args.before], sizes[args.after]
    mib = 1024 * 1024
    print(f"# base install (`pip install {' '.join(PINS)} .`), {args.before} vs {args.after}")
    print("| | before | after |\n|---|---|---|")
    print(f"| distributions | {len(before)} | {len(after)} |")
    print(f"| size of all distributions (MiB) | {sum(before.values()) / mib:,.0f} | {sum(after.values()) / mib:,.0f} |")
    print(
        f"| without torch, torchvision and NVIDIA's CUDA wheels (MiB) | "
        f"{sum(v for k, v in before.items() if not _cuda(k)) / mib:,.1f} | "
        f"{sum(v for k, v in after.items() if not _cuda(k)) / mib:,.1f} |"
    )
    print(
        f"| `python -c 'import temu.api'`, median of {args.runs} interleaved (s) | "
        f"{statistics.median(times[args.before]):.2f} | {statistics.median(times[args.after]):.2f} |"
    )
    gone = sorted(set(before) - set(after))
    added = sorted(set(after) - set(before))
    print(f"\nno longer installed: {', '.join(f'{k} ({before[k] / mib:.1f} MiB)' for k in gone) or 'none'}")
    print(f"newly installed: {', '.join(f'{k} ({after[k] / mib:.1f} MiB)' for k in added) or 'none'}")


def _cuda(name: str) -> bool:
    return name in ("torch", "torchvision", "triton") or name.startswith(("nvidia-", "cuda-"))


if __name__ == "__main__":
    main()
