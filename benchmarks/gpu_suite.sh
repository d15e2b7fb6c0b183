#!/usr/bin/env bash
# The GPU suite on a bare GPU machine: a venv, the packages, then benchmarks/gpu_suite.py into OUTDIR.
#
#   bash benchmarks/gpu_suite.sh OUTDIR [gpu_suite.py options, e.g. --sections overhead pyiqa]
#
# Offline machines: wheels found in .whl/ at the repository root (benchmarks/gpu_wheels.sh fetches
# them where pip works) are installed first. torch==2.14.1 / torchvision==0.29.1 are installed
# where pip can get them; where it cannot, the machine's own torch is used and this is said on
# stderr and in the log (every table's environment line names the torch version). The venv sees
# the packages of the python that made it (PYTHON, default python3), so a torch already there
# needs no download. Writes OUTDIR/gpu_suite.log beside the suite's results.md and summary.md.
set -euo pipefail
OUT=${1:?usage: bash benchmarks/gpu_suite.sh OUTDIR [gpu_suite.py options]}
shift
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV=${TEMU_SUITE_VENV:-/tmp/temu-suite-venv}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_suite.log") 2>&1
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
start=$SECONDS
say() { echo "gpu_suite.sh [$((SECONDS - start)) s]: $*" >&2; }

PY="$VENV/bin/python"
if "$PYTHON" -m venv "$VENV"; then
    PIP=("$PY" -m pip install -q --retries 0 --timeout 10)
else  # a python without ensurepip: a venv without pip, filled by the parent's pip
    say "NOTE: '$PYTHON -m venv' failed; making the venv without pip and installing with $PYTHON's pip"
    "$PYTHON" -m venv --without-pip "$VENV"
    PIP=("$PYTHON" -m pip --python "$PY" install -q --retries 0 --timeout 10)
fi
# the venv sees the packages of the python that made it (a venv's --system-site-packages would not)
"$PYTHON" -c 'import sysconfig; print(*sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")}), sep="\n")' \
    >"$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_temu_suite_parent.pth"
WHEELS=()
if compgen -G "$REPO/.whl/*.whl" >/dev/null; then  # wheels brought along: the machine is offline, use only them
    WHEELS=(--no-index --find-links "$REPO/.whl")
    "${PIP[@]}" --no-index --no-deps "$REPO"/.whl/*.whl || { say "FAILED to install the wheels in $REPO/.whl"; exit 1; }
fi
if ! "${PIP[@]}" "${WHEELS[@]}" torch==2.14.1 torchvision==0.29.1; then
    say "NOTE: torch==2.14.1 torchvision==0.29.1 cannot be installed here; using this machine's torch $("$PY" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '(none)')"
fi
if ! "${PIP[@]}" "${WHEELS[@]}" --no-build-isolation -e "$REPO[bench]"; then
    say "NOTE: temu's dependencies cannot all be resolved here; installing temu alone (--no-deps) on what is present"
    "${PIP[@]}" --no-deps --no-build-isolation -e "$REPO" || { say "FAILED to install temu from $REPO"; exit 1; }
fi
"$PY" - <<'PY' || { say "FAILED: a package the suite needs is missing (above); add its wheel to .whl/ (benchmarks/gpu_wheels.sh)"; exit 1; }
import importlib, sys
missing = []
for name in ("torch", "torchvision", "open_clip", "pyiqa", "skimage", "temu", "pkg_resources"):
    try:
        importlib.import_module(name)
    except Exception as err:
        missing.append(f"{name} ({type(err).__name__}: {err})")
if missing:
    sys.exit("cannot import: " + "; ".join(missing))
import torch, open_clip, pyiqa, temu
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, available: {torch.cuda.is_available()}), "
      f"open_clip {open_clip.__version__}, pyiqa {pyiqa.__version__}, temu {temu.__version__} from {temu.__file__}")
PY
say "installed; running the suite"
cd "$REPO"
status=0
"$PY" benchmarks/gpu_suite.py "$OUT" "$@" || status=$?
say "done (exit $status)"
exit $status
