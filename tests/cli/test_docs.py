"""Every command has help and is in the README; the README's test command is what CI runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from aebench.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_commands_are_the_expected_ones() -> None:
    assert {"train", "compare", "models", "datasets"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_and_is_documented(name: str) -> None:
    res = CliRunner().invoke(app, [name, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output
    assert f"aebench {name}" in README


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name: str) -> None:
    command = get_command(app).commands[name]  # type: ignore[attr-defined]
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert getattr(param, "help", None), f"{name} {param.opts} has no help"


def test_readme_commands_are_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = re.findall(r"^    (apt-get .*)$", README, re.M)
    assert len(commands) >= 2
    assert "aebench compare --depths shallow,medium,deep" in commands[0]
    assert commands[1].endswith("python -m pytest") and commands[1] in ci
    # Each setup activates the environment before its first bare command, so the README's examples (a bare
    # `aebench`, `pytest`, `ray`, `mlflow`) run as written in the shell the setup ran in.
    for command in commands[:2]:
        steps = [step.strip() for step in command.split("&&")]
        activate = steps.index(". .venv/bin/activate")
        assert steps[activate - 1] == "python3 -m venv .venv"
        assert all(step.split()[0] in ("apt-get", "python3") for step in steps[:activate])


def _readme_aebench_commands() -> list[str]:
    """Every `aebench ...` command in the README's indented code lines (`a && b` counts as two), comments cut."""
    found = []
    for line in re.findall(r"^    (\S.*)$", README, re.M):
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] in ("aebench", ".venv/bin/aebench"):
                found.append(shlex.join(words))
    return found


README_COMMANDS = _readme_aebench_commands()


def test_the_readme_shows_the_commands() -> None:
    assert len(README_COMMANDS) >= 15
    assert {c.split()[1] for c in README_COMMANDS} >= {"compare", "train", "report", "bench", "export"}


@pytest.mark.parametrize("command", README_COMMANDS)
def test_every_readme_command_parses(command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each example's arguments are parsed as written, nothing trained: `compare` as a dry run (its whole grid is
    checked), every other command with `--help` (an unknown option still fails)."""
    monkeypatch.chdir(tmp_path)  # a dry run reads ./results if there is one: here there is none
    _the_readme_s_own_files(command, tmp_path, monkeypatch)
    before = sorted(tmp_path.rglob("*"))
    args = shlex.split(command)[1:]
    args.append("--dry-run" if args[0] == "compare" and "--dry-run" not in args else "--help")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, f"{command}: {res.output}"
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def _the_readme_s_own_files(command: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an example says the reader saved first: the "Your own model" code as mymodels.py, a digits.npz, a
    photos/ folder of images (small real ones: a crop of scikit-learn's sample photograph)."""
    if "mymodels:" in command:
        code = README.split("## Your own model", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
        (folder / "mymodels.py").write_text(code)
        monkeypatch.syspath_prepend(str(folder))
        monkeypatch.delitem(sys.modules, "mymodels", raising=False)
    if "npz:digits.npz" in command:
        from sklearn.datasets import load_digits

        x = (load_digits().images / 16.0).astype(np.float32)
        np.savez(folder / "digits.npz", x_train=x[:100], x_test=x[100:150])
    if "images:photos" in command:
        from PIL import Image
        from sklearn.datasets import load_sample_images

        photo = load_sample_images().images[0]
        for split in ("train", "test"):
            (folder / "photos" / split / "china").mkdir(parents=True)
            Image.fromarray(photo[:32, :32]).save(folder / "photos" / split / "china" / "0.png")


def test_help_starts_without_torch_and_both_entry_points_work() -> None:
    """`aebench --help` imports no torch or pandas (it starts at once); the script and `python -m` agree."""
    code = (
        "import sys\n"
        "from aebench.cli.app import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    script = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    module = subprocess.run(
        [sys.executable, "-m", "aebench", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "Usage: python -m aebench" in module.stdout and "compare" in module.stdout
    assert module.stdout.splitlines()[2:] == script.stdout.splitlines()[2:]  # all but the program's name
