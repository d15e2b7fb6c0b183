#!/usr/bin/env bash
# Fetch, where pip works, the wheels benchmarks/gpu_suite.sh needs on an offline GPU machine whose
# python (3.12) already has torch, numpy, scipy, scikit-image, timm, huggingface_hub and the like:
# open_clip_torch, ftfy, wcwidth, pyiqa (without its long list of tools), openai-clip (built here
# from its sdist) and a setuptools that still has pkg_resources (pyiqa's CLIP imports it).
#
#   bash benchmarks/gpu_wheels.sh [DIR]      # default DIR: .whl at the repository root (about 12 MB)
#
# Keep DIR out of git (e.g. `echo /.whl/ >> .git/info/exclude`) and let it travel with the repository.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$REPO/.whl}
PY=${PYTHON:-python3}
mkdir -p "$DIR"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DIR" \
    open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 pyiqa==0.1.16 setuptools==80.10.2
"$PY" -m pip wheel -q --no-deps -w "$DIR" openai-clip==1.0.1
ls -l "$DIR"
