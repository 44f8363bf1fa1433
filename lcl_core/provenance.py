"""What a result was made from: the commit of the code and the machine that ran it.

Its own module because the reproductions, the tutorial's runner and the benchmarks all record both, and a time
means little without the CPU it was measured on (the same step differs by 1.3× between two x86 CPUs, with and
without AMX).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

from .paths import repo_root

DIRTY = " (with uncommitted changes)"


def current_commit() -> str:
    """``HEAD`` of the checkout, with :data:`DIRTY` appended when tracked files have uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_root(),
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (DIRTY if dirty else "")


def cpu_model() -> str:
    """The CPU's marketing name from ``/proc/cpuinfo`` (Linux), else what :mod:`platform` knows."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def has_amx() -> bool | None:
    """Whether the CPU has AMX tiles (fast bf16/int8 matrix products on recent Xeons); None when unknown."""
    info = Path("/proc/cpuinfo")
    return "amx_tile" in info.read_text() if info.is_file() else None


def machine() -> dict:
    """The machine a result was made on: ``cpus`` is the compute threads torch uses, ``cores`` the CPUs the
    system has."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(), "amx": has_amx(), "capability": torch.backends.cpu.get_cpu_capability(),
            "cores": os.cpu_count(), "cpus": torch.get_num_threads(), "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
