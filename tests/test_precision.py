"""precision="auto": how it detects a CPU that computes bf16 natively, and that every entry point follows it.

The detection is tested with faked CPU descriptions (a /proc/cpuinfo file, torch's probes);
whether bf16 is faster is a benchmark (benchmarks/bench_cpu_precision.py), not a test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import temu
from temu import precision as P

CPU = torch.device("cpu")

X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu vme sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni
bugs\t\t: sysret_ss_attrs

processor\t: 1
flags\t\t: fpu vme sse2 avx2
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes sve bf16 i8mm
CPU implementer\t: 0x41
"""


def test_read_cpu_flags_reads_the_first_cpu_of_x86_and_arm_files(tmp_path):
    x86, arm = tmp_path / "x86", tmp_path / "arm"
    x86.write_text(X86_CPUINFO)
    arm.write_text(ARM_CPUINFO)
    flags = P.read_cpu_flags(x86)
    assert {"avx512_bf16", "avx2", "avx512f"} <= flags and "sysret_ss_attrs" not in flags
    assert {"bf16", "sve"} <= P.read_cpu_flags(arm)
    assert P.read_cpu_flags(tmp_path / "missing") == frozenset()  # not Linux: no flags from here


@pytest.mark.parametrize(
    ("flags", "onednn", "native"),
    [
        ({"avx2", "fma"}, True, False),  # Zen 3, Skylake client: bf16 would be emulated
        ({"avx512f", "avx512bw", "avx512vl", "avx512dq"}, True, False),  # Skylake-X: AVX-512 without BF16
        ({"avx512f", "avx512_bf16"}, True, True),  # Zen 4, Cooper Lake
        ({"avx512_bf16", "amx_tile", "amx_bf16"}, True, True),  # Sapphire Rapids
        ({"amx_bf16"}, True, True),
        ({"avx512_bf16"}, False, False),  # torch without oneDNN has no fast bf16 matmul
        ({"asimd", "bf16", "sve"}, True, False),  # Arm bf16: not measured faster yet, so fp32
        (set(), True, False),
    ],
)
def test_native_bf16_needs_a_native_flag_and_onednn(flags, onednn, native):
    assert P.cpu_has_native_bf16(flags, onednn=onednn) is native


def test_torch_probes_answer_with_the_same_flag_names(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert P.torch_cpu_flags() == {"avx512_bf16"}
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the probe: no flag, no error
    assert P.torch_cpu_flags() == frozenset()


def test_either_source_is_enough(monkeypatch):
    """/proc/cpuinfo misses on macOS and Windows; torch's probes may miss in other torch versions."""
    for from_file, from_torch, native in (
        ({"amx_bf16"}, set(), True),
        (set(), {"avx512_bf16"}, True),
        (set(), set(), False),
    ):
        monkeypatch.setattr(P, "read_cpu_flags", lambda f=frozenset(from_file): f)
        monkeypatch.setattr(P, "torch_cpu_flags", lambda f=frozenset(from_torch): f)
        assert P.cpu_has_native_bf16(onednn=True) is native


def test_auto_is_bf16_on_cpu_only_with_native_bf16_and_fp32_always_turns_it_off(monkeypatch):
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    assert P.autocast_dtype(CPU, "auto") == torch.bfloat16
    assert P.autocast_dtype(CPU, "fp32") is None
    assert isinstance(P.autocast_context(CPU, "auto"), torch.autocast)
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    assert P.autocast_dtype(CPU, "auto") is None
    assert P.autocast_dtype(CPU, "bf16") == torch.bfloat16  # asked for explicitly: given, even if slow
    for supported, dtype in ((True, torch.bfloat16), (False, torch.float16)):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert P.autocast_dtype(torch.device("cuda"), "auto") == dtype
    assert "AVX512-BF16" in P.AUTO_RULE and "CUDA" in P.AUTO_RULE


@pytest.fixture(scope="module")
def model(tiny_head_dir):
    return temu.load(tiny_head_dir)


def test_score_with_auto_follows_the_rule(model, photo_crops, monkeypatch):
    crops = photo_crops[:12]
    fp32 = np.array(temu.score(crops, model=model, precision="fp32"))
    bf16 = np.array(temu.score(crops, model=model, precision="bf16"))
    assert np.abs(fp32 - bf16).max() > 0  # the two paths differ, so the equalities below tell them apart
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
    np.testing.assert_array_equal(temu.score(crops, model=model), bf16)
    monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
    np.testing.assert_array_equal(temu.score(crops, model=model), fp32)


def test_pyiqa_metric_defaults_to_auto_and_takes_fp32(tiny_head_dir, photo_crops, monkeypatch):
    from temu.pyiqa_plugin import TeMuIQAMetric

    pixels = torch.from_numpy(np.stack(photo_crops[:6])).permute(0, 3, 1, 2)
    x = pixels.float() / 255  # what pyiqa reads from 8-bit files: the metric resizes them as uint8, as temu.score does
    auto, full = TeMuIQAMetric(head=str(tiny_head_dir)), TeMuIQAMetric(head=str(tiny_head_dir), precision="fp32")
    assert auto.precision == "auto"
    with torch.inference_mode():
        expected_fp32 = full.model(pixels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            expected_bf16 = full.model(pixels)
        monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: True)
        assert torch.equal(auto(x)[:, 0], expected_bf16) and torch.equal(full(x)[:, 0], expected_fp32)
        monkeypatch.setattr(P, "cpu_has_native_bf16", lambda: False)
        assert torch.equal(auto(x)[:, 0], expected_fp32)
    assert not torch.equal(expected_bf16, expected_fp32)
    with pytest.raises(ValueError, match="precision must be one of"):
        TeMuIQAMetric(head=str(tiny_head_dir), precision="fp8")
