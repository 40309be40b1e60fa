"""Which device a run trains on, how to wait for it, and what to call it in a record.

Separate from the loop because bench, metrics and the grid's executors need these without the
training machinery.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import torch

from aebench.errors import BadInput


def resolve_device(name: str = "auto") -> torch.device:
    """auto: cuda, then mps, then cpu; an explicit device that is not there is refused."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda or name == "mps" and not mps:
        raise BadInput(f"--device {name}: not available on this machine; choose from: auto, cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise BadInput(f"--device: unknown value {name!r}; choose from: auto, cpu, cuda, mps")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a clock read after it measures the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def cpu_model() -> str:
    """The CPU's model name ('AMD EPYC', 'Intel(R) Xeon(R) Platinum 8480+'), which speed depends on; the
    architecture where the system does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """What a run's speed was measured on: the GPU's name, or the CPU's model and the threads torch used."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"{cpu_model()} CPU ({torch.get_num_threads()} threads)"


def git_commit() -> str | None:
    """The project's commit (with -dirty for local changes), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def torch_threads() -> int:
    """The threads torch's CPU kernels use in this process (a grid's workers each set theirs)."""
    return torch.get_num_threads()
