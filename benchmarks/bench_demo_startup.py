"""Seconds from starting ``temu demo`` until its page answers, and until it can score, with the tests' tiny backbone.

    python benchmarks/bench_demo_startup.py --runs 5

Each run starts ``python -m temu.cli demo --model HEAD --device cpu --port P`` (what the ``temu``
console script runs) in a fresh interpreter, offline (``HF_HUB_OFFLINE=1``, gradio's analytics
off), and polls ``http://127.0.0.1:P/`` every 50 ms until it answers 200 (the page is served
before torch is imported). Then it calls the page's ``describe`` API with gradio_client, which
answers once the model has loaded, the moment the page can score; then it stops the server with
SIGINT. HEAD is a head folder on the tiny random backbone (tests/assets/tiny-clip.json, 64 px),
so the time is the page's own start-up (imports, one tiny model, the server), not a model's
download. For scale, the same table times the two imports every start pays: the scoring core's
(torch, open_clip) and gradio's, each in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "assets" / "tiny-clip.json"


def tiny_head(folder: Path) -> Path:
    """A head folder on the tiny backbone with seeded random weights (as the tests' fixtures)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    from temu import TeMuIQA

    open_clip.add_model_config(TINY)
    torch.manual_seed(1234)
    clip = open_clip.create_model("tiny-clip", pretrained=None)
    checkpoint = folder / "tiny-clip.safetensors"
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(checkpoint))
    return TeMuIQA(backbone=str(TINY), pretrained=str(checkpoint), image_size=64).save_pretrained(folder / "head")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def page_start(head: Path, timeout: float) -> tuple[float, float]:
    """Seconds from starting ``temu demo`` to the first 200 answer of its page, and to its model being loaded."""
    from gradio_client import Client

    port = free_port()
    command = [sys.executable, "-m", "temu.cli", "demo", "--model", str(head), "--device", "cpu", "--port", str(port)]
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while time.perf_counter() - start < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"temu demo exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as answer:
                    if answer.status == 200:
                        page = time.perf_counter() - start
                        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(str(head), api_name="/describe")
                        return page, time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the page did not answer within {timeout} s")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def import_time(module: str) -> float:
    """Seconds of a fresh interpreter that imports ``module`` and exits."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], env=environment(), check=True)
    return time.perf_counter() - start


def main() -> None:
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # this process's gradio_client too
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on a run after this many seconds")
    args = parser.parse_args()
    rows: dict[str, list[float]] = {
        "temu demo: page answers": [],
        "temu demo: model loaded (describe API answers)": [],
        "python -c 'import torch, open_clip'": [],
        "python -c 'import gradio'": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        head = tiny_head(Path(tmp))
        for _ in range(args.runs):  # interleaved, so a busy moment of the machine touches every row
            page, model = page_start(head, args.timeout)
            rows["temu demo: page answers"].append(page)
            rows["temu demo: model loaded (describe API answers)"].append(model)
            rows["python -c 'import torch, open_clip'"].append(import_time("torch, open_clip"))
            rows["python -c 'import gradio'"].append(import_time("gradio"))
    print(f"# temu demo start-up, tiny backbone, {args.runs} runs each, interleaved; python {sys.version.split()[0]}")
    print("| what | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, times in rows.items():
        print(f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} |")


if __name__ == "__main__":
    main()
