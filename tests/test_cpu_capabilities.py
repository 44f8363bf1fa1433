"""The numerics tests again, under a second CPU kernel path.

PyTorch picks its CPU kernels by the instruction sets it finds (``ATEN_CPU_CAPABILITY``: default, avx2,
avx512), and the summation order, so the last bits of a result, follow the kernels. A test that only passes
on one path — an exact comparison of an argmax over near-tied logits, say — fails on a user's CPU and
not here. The tests marked ``numerics`` (the official-code equivalence, the model, the objectives, the
fused loss, accumulation, compile) run here a second time in a fresh interpreter, under the path below
this machine's own: avx2 on an AVX-512 machine, default elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent


def second_capability(native: str) -> str:
    """The kernel path the numerics tests run under a second time (``native``: what torch picked)."""
    return "avx2" if native.upper().startswith("AVX512") else "default"


def test_second_capability_is_another_path_than_the_machines_own():
    assert second_capability("AVX512") == "avx2"
    assert second_capability("AVX2") == "default"
    assert second_capability("DEFAULT") == "default"


def test_the_numerics_tests_pass_under_a_second_cpu_kernel_path():
    capability = second_capability(torch.backends.cpu.get_cpu_capability())
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    picked = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                            env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert picked.lower() == capability, f"torch picked {picked} under ATEN_CPU_CAPABILITY={capability}"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "numerics", "-p", "no:cacheprovider",
                             "-W", "ignore", str(TESTS)], env=env, capture_output=True, text=True, cwd=TESTS.parent)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, f"under ATEN_CPU_CAPABILITY={capability}: {summary}\n{result.stdout[-6000:]}"
    assert " passed" in summary and "deselected" in summary, summary  # the marker selected a subset, and it ran
