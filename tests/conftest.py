"""Real data for the tests: Fashion-MNIST from Debian's package, the MNIST test split from tests/data, and the
whole MNIST from ../shared/data/mnist where it is there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from aebench import data
from aebench.train.accel import onednn

MNIST_DIR = Path(__file__).parent / "data" / "mnist"
ROOT = Path(__file__).resolve().parent.parent
# The real MNIST, both splits, beside the checkout (its README lists each file's content MD5 and the label counts)
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture
def shared_mnist() -> Path:
    """The real MNIST's folder, `../shared/data/mnist` from the checkout; the test is skipped where it is absent."""
    if not all((SHARED_MNIST / f"{stem}.gz").is_file() for pair in data.SPLIT_FILES.values() for stem in pair):
        pytest.skip(f"the real MNIST (both splits) is not in {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # A test never reads or writes the user's own cache or $AEBENCH_DATA.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("AEBENCH_DATA", raising=False)


@pytest.fixture(scope="session")
def fashion_mnist() -> data.Dataset:
    folder = data.find("fashion-mnist")
    if folder is None:
        pytest.fail("Fashion-MNIST not found: `apt-get install dataset-fashion-mnist` (.ci/run does this)")
    return data.load("fashion-mnist", allow_download=False)


@pytest.fixture
def onednn_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many oneDNN products ran since the test began (`onednn.matmul` goes through `onednn.linear`)."""
    calls = [0]
    real = onednn.linear

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(onednn, "linear", counted)
    return calls


@pytest.fixture
def tmp_results(tmp_path: Path) -> Path:
    return tmp_path / "results"
