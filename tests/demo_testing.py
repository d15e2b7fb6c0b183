"""Helpers for the demo page's tests (tests/test_demo.py) and its README screenshot (docs/make_demo_screenshot.py):
a free port, awkward files, a small video clip, and a headless Chromium driven by Playwright."""

from __future__ import annotations

import importlib.util
import socket
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import temu_testing

#: Debian's Chromium (`apt-get install chromium`); Playwright's own browser download needs the network.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: True in the page once an image's score is shown.
SCORE_SHOWN = "() => /score [0-9]/.test(document.querySelector('#temu-score')?.innerText ?? '')"
#: True in the page once the quality map (element id ``temu-quality-map``) is decoded.
MAP_SHOWN = (
    "() => { const img = document.querySelector('#temu-quality-map img');"
    " return !!img && img.complete && img.naturalWidth > 0; }"
)


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_huge_png(path: Path, side: int = 40_000) -> Path:
    """A small file whose PNG header claims ``side`` x ``side`` pixels: Pillow's decompression-bomb guard refuses it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    pixels = zlib.compress(b"\0" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


def write_clip(path: Path, pictures: Sequence[Any], *, seconds: float = 2.0, rate: int = 10) -> Path:
    """A ``seconds``-long H.264 clip at ``rate`` frames per second showing ``pictures`` (``[H, W, 3]`` uint8
    arrays with even sides) in turn, a tenth of a second each (written with PyAV)."""
    return temu_testing.write_clip(path, pictures, [i / rate for i in range(round(seconds * rate))], rate=rate)


def browser_missing() -> str | None:
    """Why a browser test cannot run here (no playwright, no Chromium), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright; it is in the test extra)"
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
    return None


@contextmanager
def chromium_page(
    profile: Path, base_url: str, *, width: int = 1280, height: int = 900
) -> Iterator[tuple[Any, list[str]]]:
    """A page of a fresh headless Chromium (its profile in ``profile``), and the list of the URLs it
    requests outside ``base_url`` (fonts, CDNs, analytics: a page that runs offline requests none)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
        )
        try:
            outside: list[str] = []
            context.on(
                "request",
                lambda r: None if r.url.startswith((base_url, "data:", "blob:")) else outside.append(r.url),
            )
            page = context.pages[0] if context.pages else context.new_page()
            yield page, outside
        finally:
            context.close()


def upload_and_wait(page: Any, paths: Sequence[Path], *, timeout_s: float = 60) -> str:
    """Drop ``paths`` on the page's image input, wait until a score and its quality map are shown;
    returns the score's text (``"coffee.jpg: score 0.6108 ..."``)."""
    page.set_input_files("#temu-files input[type=file]", [str(p) for p in paths])
    page.wait_for_function(SCORE_SHOWN, timeout=timeout_s * 1000)
    page.wait_for_function(MAP_SHOWN, timeout=timeout_s * 1000)
    return page.inner_text("#temu-score")
