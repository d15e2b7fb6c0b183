"""What temu's pyiqa start-up hook adds to ``python -c pass``.

Two throwaway venvs, identical except that one has ``temu-pyiqa-hook.pth`` and
``_temu_pyiqa_hook.py`` in its site-packages; ``python -c pass`` runs in each, interleaved,
``--runs`` times. Also checks that the hook imports neither torch nor pyiqa nor temu at start-up.

    python benchmarks/bench_startup.py --runs 200
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_venv(root: Path, with_hook: bool, compiled: bool = True) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if with_hook:
        for name in ("temu-pyiqa-hook.pth", "_temu_pyiqa_hook.py"):
            (Path(purelib) / name).write_bytes((REPO / name).read_bytes())
        if compiled:  # as pip does at install time (py_compile writes even under PYTHONDONTWRITEBYTECODE)
            subprocess.run([str(python), "-m", "py_compile", str(Path(purelib) / "_temu_pyiqa_hook.py")], check=True)
    return python


def timed(python: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(python), "-c", "pass"], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = make_venv(Path(tmp) / "plain", with_hook=False)
        hooked = make_venv(Path(tmp) / "hooked", with_hook=True)
        source_only = make_venv(Path(tmp) / "source-only", with_hook=True, compiled=False)
        loaded = subprocess.run(
            [
                str(hooked),
                "-c",
                "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pyiqa', 'temu', 'numpy', '_temu_pyiqa_hook')))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        for python in (plain, hooked, source_only):  # warm the OS caches
            timed(python)
        a, b, c = [], [], []
        for _ in range(args.runs):
            a.append(timed(plain))
            b.append(timed(hooked))
            c.append(timed(source_only))
    print(
        f"# python {sys.version.split()[0]} ({sysconfig.get_platform()}), {args.runs} interleaved runs of `python -c pass`"
    )
    print(f"modules loaded at start-up with the hook: {loaded}")
    print(f"median without hook: {statistics.median(a) * 1000:.2f} ms")
    for label, runs in (("with hook (byte-compiled, as pip installs it)", b), ("with hook (source only, no .pyc)", c)):
        diffs = sorted(y - x for x, y in zip(a, runs))
        q = len(diffs) // 4
        print(
            f"{label}: median {statistics.median(runs) * 1000:.2f} ms; added (median of paired differences) "
            f"{statistics.median(diffs) * 1000:+.2f} ms, interquartile range {diffs[q] * 1000:+.2f} .. {diffs[-q - 1] * 1000:+.2f} ms"
        )


if __name__ == "__main__":
    main()
