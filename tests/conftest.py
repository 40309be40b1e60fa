"""Real data for the tests: Fashion-MNIST from Debian's package, the MNIST test split from tests/data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from aebench import data
from aebench.train.accel import onednn

MNIST_DIR = Path(__file__).parent / "data" / "mnist"


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
