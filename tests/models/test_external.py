"""A user's own model, outside the package: named by an import string or an installed entry point, trained beside
the zoo and PCA, reported, retrained when its source changes; its mistakes refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aebench.cli.app import app
from aebench.grid.store import open_store

runner = CliRunner()

TINY = '''
"""A one-hidden-layer MLP autoencoder with its own width."""
import math
from torch import nn


class TinyAE(nn.Module):
    def __init__(self, input_shape, latent_dim, width):
        super().__init__()
        d = math.prod(input_shape)
        self.shape = input_shape
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(d, width), nn.ReLU(), nn.Linear(width, latent_dim))
        self.dec = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU(), nn.Linear(width, d), nn.Sigmoid())

    def encode(self, x):
        return self.enc(x)

    def decode(self, z):
        return self.dec(z).view(-1, *self.shape)

    def forward(self, x):
        return self.decode(self.encode(x))


def tiny_ae(input_shape, latent_dim=16, width=64):
    """A one-hidden-layer MLP autoencoder with its own width."""
    return TinyAE(input_shape, latent_dim, width)


class NoCodes(nn.Module):
    def __init__(self, input_shape):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(input_shape[0], 4, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(4, input_shape[0], 3, padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.net(x)


def no_codes(input_shape, latent_dim=8):
    return NoCodes(input_shape)


def not_a_module(input_shape, latent_dim=8):
    return "a string"


def wrong_shape(input_shape, latent_dim=8):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 10))


class Blows(nn.Module):
    def forward(self, x):
        return x * float("nan")


def not_finite(input_shape, latent_dim=8):
    return Blows()
'''
COMMON = ["--depths", "shallow", "--latent-dims", "8", "--epochs", "1", "--train-size", "2000", "--device", "cpu"]


def _package(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tinyae.py").write_text(TINY)
    (root / "broken.py").write_text("import not_a_real_module_anywhere\n")
    return root


def _aebench(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "aebench", *args], capture_output=True, text=True, env=env,
                          timeout=600)  # fmt: skip


@pytest.mark.slow
def test_a_users_module_trains_beside_fc_and_pca_reports_and_retrains_when_edited(tmp_path: Path) -> None:
    pkg = _package(tmp_path / "mine")
    results = tmp_path / "r"
    grid = ["compare", "--archs", "fc,tinyae:tiny_ae", "--option", "width=16,32", *COMMON, "--results", str(results)]
    first = _aebench(pkg, *grid, "--json")
    assert first.returncode == 0, first.stderr
    runs = json.loads(first.stdout)["runs"]
    assert [(r["arch"], r["options"]) for r in runs] == [("fc", None), ("tinyae:tiny_ae", "width=16"),
                                                         ("tinyae:tiny_ae", "width=32"), ("pca", None)]  # fmt: skip
    assert all(r["status"] == "done" for r in runs)
    tiny = [r for r in runs if r["arch"] == "tinyae:tiny_ae"]
    assert tiny[0]["params"] < tiny[1]["params"] and tiny[0]["latent_size"] == 8 and tiny[0]["probe_acc"] > 0.2
    assert len({r["source"] for r in tiny}) == 1 and len(tiny[0]["source"]) == 32  # the module's MD5
    rep = _aebench(pkg, "report", "--results", str(results), "--out", str(tmp_path / "rep"), "--format", "md",
                   "--figures", "png")  # fmt: skip
    assert rep.returncode == 0, rep.stderr
    page = (tmp_path / "rep" / "report.md").read_text()
    assert "tinyae:tiny\\_ae width=16" in page and (tmp_path / "rep" / "reconstructions.png").is_file()

    (pkg / "tinyae.py").write_text(TINY.replace("nn.ReLU(), nn.Linear(width, latent_dim)",
                                                "nn.ELU(), nn.Linear(width, latent_dim)"))  # fmt: skip
    again = _aebench(pkg, *grid, "--json")
    assert again.returncode == 0, again.stderr
    redone = {(r["arch"], r["options"]): r for r in json.loads(again.stdout)["runs"]}
    assert redone[("fc", None)]["skipped"] and redone[("pca", None)]["skipped"]  # the zoo's runs stand
    assert not redone[("tinyae:tiny_ae", "width=16")]["skipped"]  # the edited model is trained again
    assert redone[("tinyae:tiny_ae", "width=16")]["source"] != tiny[0]["source"]
    with open_store(results, create=False) as store:
        assert len(store.runs()) == 6  # the two edited cells beside the old ones, which stay as they were


@pytest.mark.slow
def test_an_installed_entry_point_appears_in_models_and_trains(tmp_path: Path) -> None:
    site = _package(tmp_path / "site")
    info = site / "tiny_models-0.1.dist-info"  # a real installed distribution's metadata, as pip writes it
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-models\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[aebench.models]\ntiny = tinyae:tiny_ae\n")
    listed = _aebench(site, "models", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert "tiny" in rows and rows["tiny"]["latent_size"] == 16 and "width" in rows["tiny"]["options"]
    assert rows["tiny"]["description"] == "A one-hidden-layer MLP autoencoder with its own width."
    trained = _aebench(site, "train", "--arch", "tiny", "--option", "width=8", "--epochs", "1", "--train-size",
                       "1000", "--device", "cpu", "--results", str(tmp_path / "r"), "--json")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["options"] == "width=8"


MISTAKES = {
    "does not import": ("broken:anything", "module 'broken' does not import (ModuleNotFoundError: No module named"),
    "missing attribute": ("tinyae:nothing_here", "module 'tinyae' has no attribute 'nothing_here'"),
    "not a module": ("tinyae:not_a_module", "returned str, not a torch nn.Module"),
    "wrong shape": ("tinyae:wrong_shape", "reconstructs (10,) from inputs of shape (1, 28, 28)"),
    "not finite": ("tinyae:not_finite", "not finite"),
    "unknown option": ("tinyae:tiny_ae --option depth=3", "--option depth does not apply"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_models_mistake_is_one_line_exit_2_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.syspath_prepend(str(_package(tmp_path / f"mine_{case.replace(' ', '_')}")))
    for name in ("tinyae", "broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    arch, says = MISTAKES[case]
    results = tmp_path / "r"
    name, *extra = arch.split()
    res = runner.invoke(app, ["compare", "--archs", f"fc,{name}", *extra, *COMMON, "--results", str(results)])
    assert res.exit_code == 2, res.output
    assert res.stderr.count("\n") == 1 and says in res.stderr and "Traceback" not in res.stderr
    assert not results.exists()


@pytest.mark.slow
def test_a_model_without_encode_trains_and_says_why_its_codes_are_not_drawn(tmp_path: Path) -> None:
    pkg = _package(tmp_path / "mine")
    results = tmp_path / "r"
    res = _aebench(pkg, "compare", "--archs", "tinyae:no_codes", *COMMON[2:], "--no-baselines", "--results",
                   str(results), "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr
    [run] = json.loads(res.stdout)["runs"]
    assert run["status"] == "done" and run["test_mse"] > 0 and run["probe_acc"] is None
    rep = _aebench(pkg, "report", "--results", str(results), "--out", str(tmp_path / "rep"), "--format", "md",
                   "--figures", "png", "--only", "reconstructions,interpolation")  # fmt: skip
    assert rep.returncode == 0, rep.stderr
    assert "interpolation: tinyae:no_codes has no encode/decode" in rep.stdout
    assert (tmp_path / "rep" / "reconstructions.png").is_file()


def test_the_readme_example_is_a_model_aebench_takes(tmp_path: Path) -> None:
    """The README's "Your own model" code, saved as it says, is planned beside fc and PCA by its own command."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Your own model", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    command = next(line.strip() for line in section.splitlines() if line.strip().startswith("aebench compare"))
    (tmp_path / "mymodels.py").write_text(code)
    args = command.split()[1:]
    res = subprocess.run([sys.executable, "-m", "aebench", *args, "--dry-run", "--json", "--results",
                          str(tmp_path / "r")], capture_output=True, text=True, cwd=tmp_path, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    cells = json.loads(res.stdout)
    assert {(c["arch"], c.get("options"), c["latent_dim"]) for c in cells} >= {
        ("mymodels:tiny_ae", "width=32", 8),
        ("mymodels:tiny_ae", "width=64", 32),
        ("fc", None, 8),
    }


def test_a_grid_file_takes_a_users_options_as_axes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(_package(tmp_path / "mine")))
    monkeypatch.delitem(sys.modules, "tinyae", raising=False)
    path = tmp_path / "mine.toml"
    path.write_text(
        textwrap.dedent("""
        epochs = 1
        [[grid]]
        archs = ["tinyae:tiny_ae"]
        latent_dims = [8]
        option = { width = [16, 32] }
    """)
    )
    res = runner.invoke(app, ["compare", "--grid", str(path), "--no-baselines", "--dry-run", "--json", "--results",
                              str(tmp_path / "r")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [c["options"] for c in json.loads(res.stdout)] == ["width=16", "width=32"]
    path.write_text(path.read_text().replace("width", "depth"))
    bad = runner.invoke(app, ["compare", "--grid", str(path), "--dry-run", "--results", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "--option depth does not apply" in bad.stderr
