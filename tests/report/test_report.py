"""`aebench report` on a real small grid: files, non-blank plots, tables, filters, and clear refusals."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread
from typer.testing import CliRunner

from aebench import data
from aebench.cli.app import app
from aebench.columns import config_label as label
from aebench.config import GridSpec, ModelSpec, RunConfig
from aebench.errors import BadInput
from aebench.grid.runner import run_grid
from aebench.grid.store import DB_NAME, open_store
from aebench.report import build as report
from aebench.report import pictures
from aebench.report.plots import Skipped, plot_mse_by_depth, plot_stride_vs_pool
from aebench.report.tables import pareto_front, varying_axes
from aebench.train.display import to_images

runner = CliRunner()
# fc and conv at latent 2 and 16: every picture has something to show (2-d latents, conv feature maps)
GRID = GridSpec(
    archs=("fc", "conv"),
    depths=("shallow",),
    latent_dims=(2, 16),
    base=RunConfig(model=ModelSpec(arch="fc"), epochs=2, train_size=2000),
)
ALWAYS_DRAWN = {
    "learning_curves",
    "mse_vs_latent",
    "pareto_params",
    "pareto_flops",
    "throughput",
    "reconstructions",
    "latent_space",
    "latent_grid",
    "interpolation",
    "latent_arithmetic",
    "feature_maps",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the 4 runs of GRID, trained once for the module (the autouse env fixture is per test)."""
    folder = tmp_path_factory.mktemp("report") / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        mp.delenv("AEBENCH_DATA", raising=False)
        outcomes = run_grid(GRID.expand(), folder, device="cpu", allow_download=False)
    assert [o.status for o in outcomes] == ["done"] * 4
    return folder


@pytest.fixture(scope="module")
def full(results: Path) -> tuple[Path, str]:
    """The default report of the whole store, written once through the CLI."""
    res = runner.invoke(app, ["report", "--results", str(results)])
    assert res.exit_code == 0, res.output
    return results / "report", res.stdout


def _copy(results: Path, dest: Path) -> Path:
    shutil.copytree(results, dest, ignore=shutil.ignore_patterns("report"))
    return dest


def test_report_writes_csv_pages_and_plots(results: Path, full: tuple[Path, str]) -> None:
    out, stdout = full
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and set(runs["status"]) == {"done"}
    assert {"arch", "latent_dim", "seed", "test_mse", "params", "flops_per_sample", "config"} <= set(runs.columns)
    epochs = pd.read_csv(out / "epochs.csv")
    assert len(epochs) == 8 and set(epochs["run_id"]) == set(runs["run_id"])

    pngs = sorted(out.glob("*.png"))
    assert {p.stem for p in pngs} == ALWAYS_DRAWN
    for png in pngs:
        assert png.with_suffix(".svg").stat().st_size > 1000
        pixels = imread(png)[..., :3]
        assert pixels.shape[0] > 150 and pixels.shape[1] > 300, png.name
        assert pixels.std() > 0.05, f"{png.name} looks blank"

    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)
    assert "<table>" in page and "test MSE" in page and "Best config per question" in page
    assert "conv L16" in page and "fc L2" in page
    md = (out / "report.md").read_text()
    assert all(f"]({p.name})" in md for p in pngs) and "| arch |" in md
    # One depth and no stride runs: those plots are left out, with the reason, everywhere.
    for text in (stdout, md, page):
        assert "mse_by_depth" in text and "only one depth (shallow)" in text
        assert "stride_vs_pool" in text
    assert (
        "stride_vs_pool: only pool in the selected conv runs; draw it with aebench compare --archs conv "
        "--downsample pool,stride" in stdout
    )
    assert "test MSE" in stdout and "wrote" in stdout
    # Where and when, from the runs' own records: what a published study must state.
    assert f"| device | {runs['device_name'][0]} |" in md and f"| torch | {runs['torch_version'][0]} |" in md
    assert "| study wall time |" in md and "over 4 runs" in md and 'id="environment"' in page


def test_best_config_is_marked(full: tuple[Path, str]) -> None:
    out, _ = full
    runs = pd.read_csv(out / "runs.csv")
    best = runs.loc[runs["test_mse"].idxmin(), "config"]
    md = (out / "report.md").read_text()
    assert f"| Which config reconstructs best (lowest test MSE)? | {best} |" in md
    assert f"**{runs['test_mse'].min():.5f}**" in md


def test_where_filters_runs_and_refuses_unknown_columns(results: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "report",
            "--results",
            str(results),
            "--out",
            str(tmp_path / "r"),
            "--where",
            "latent_dim=16",
            "--only",
            "throughput",
            "--json",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["runs"] == 2 and summary["where"] == {"latent_dim": ["16"]}
    assert set(pd.read_csv(tmp_path / "r" / "runs.csv")["latent_dim"]) == {16}

    either = runner.invoke(
        app,
        [
            "report",
            "--results",
            str(results),
            "--out",
            str(tmp_path / "e"),
            "--where",
            "arch=fc|conv,latent_dim=2",
            "--only",
            "throughput",
        ],  # fmt: skip
    )
    assert either.exit_code == 0, either.output
    assert len(pd.read_csv(tmp_path / "e" / "runs.csv")) == 2

    bad = runner.invoke(app, ["report", "--results", str(results), "--where", "colour=red"])
    assert bad.exit_code == 2
    assert bad.stderr.startswith("aebench: error: --where: unknown column 'colour'") and bad.stderr.count("\n") == 1


def test_figures_png_alone_for_a_report_kept_in_git(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "png"
    res = runner.invoke(app, ["report", "--results", str(results), "--out", str(out), "--format", "md",
                              "--figures", "png", "--only", "mse_vs_latent,throughput"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert {p.suffix for p in out.iterdir() if p.suffix in (".png", ".svg")} == {".png"}
    md = (out / "report.md").read_text()
    assert "](throughput.png)" in md and ".svg" not in md and "2 plots as PNG" in res.stdout
    svg = runner.invoke(app, ["report", "--results", str(results), "--out", str(tmp_path / "svg"),
                              "--figures", "svg", "--only", "throughput"])  # fmt: skip
    assert svg.exit_code == 2 and svg.stderr.count("\n") == 1 and "index.html shows the PNGs inline" in svg.stderr
    assert not (tmp_path / "svg").exists()
    bad = runner.invoke(app, ["report", "--results", str(results), "--figures", "gif"])
    assert bad.exit_code == 2 and "--figures: unknown value 'gif'; choose from: png, svg" in bad.stderr


def test_where_values_are_parameters_not_sql(results: Path, tmp_path: Path) -> None:
    before = (results / DB_NAME).read_bytes()
    for attack in ("depth=shallow' OR 1=1 --", 'arch=fc" OR "1"="1', "arch=fc); DROP TABLE runs; --"):
        res = runner.invoke(app, ["report", "--results", str(results), "--out", str(tmp_path), "--where", attack])
        assert res.exit_code == 2 and "match --where" in res.stderr, res.output
    with open_store(results, create=False) as store:
        assert len(store.runs()) == 4
    assert (results / DB_NAME).read_bytes() == before


def test_only_and_format_restrict_what_is_written(results: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        [
            "report",
            "--results",
            str(results),
            "--out",
            str(tmp_path),
            "--only",
            "reconstructions,pareto_params",
            "--format",
            "md",
        ],  # fmt: skip
    )
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".aebench-report.json",  # what this report wrote: the next one here removes those, and only those
        "epochs.csv",
        "pareto_params.png",
        "pareto_params.svg",
        "reconstructions.png",
        "reconstructions.svg",
        "report.md",
        "runs.csv",
    ]
    for args in (["--only", "histogram"], ["--format", "pdf"], ["--format", ""]):
        bad = runner.invoke(app, ["report", "--results", str(results), "--out", str(tmp_path), *args])
        assert bad.exit_code == 2 and bad.stderr.startswith("aebench: error: --"), bad.output


def test_left_out_runs_are_counted_and_strings_are_escaped(results: Path, tmp_path: Path) -> None:
    copy = _copy(results, tmp_path / "results")
    with sqlite3.connect(copy / DB_NAME) as db:
        first, second = [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY run_id LIMIT 2")]
        db.execute("UPDATE runs SET status = 'failed', error = '<b>out of memory</b>' WHERE run_id = ?", (first,))
        db.execute("UPDATE runs SET lr_schedule = '<script>alert(1)</script>' WHERE run_id = ?", (second,))
    res = runner.invoke(app, ["report", "--results", str(copy), "--only", "throughput"])
    assert res.exit_code == 0, res.output
    assert "Left out (not done): 1 failed" in res.stdout
    out = copy / "report-throughput"  # a partial report (--only) goes beside the full one
    assert len(pd.read_csv(out / "runs.csv")) == 3
    for page in ((out / "index.html").read_text(), (out / "report.md").read_text()):
        assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<b>out" not in page and "&lt;b&gt;out of memory" in page


def test_a_partial_report_never_replaces_the_full_one(results: Path, full: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = full
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # mse_by_depth cannot be drawn (one depth): the report says why and how to draw it, beside the full one
    res = runner.invoke(app, ["report", "--results", str(results), "--only", "mse_by_depth"])
    assert res.exit_code == 0, res.output
    assert f"wrote 4 files to {results / 'report-mse_by_depth'}" in res.stdout
    assert (
        "not drawn: mse_by_depth: only one depth (shallow) in the selected runs; draw it with aebench compare "
        "--depths shallow,medium,deep" in res.stdout
    )
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # the full report: untouched
    # --where too: its own folder, named by what it selects
    res = runner.invoke(app, ["report", "--results", str(results), "--where", "arch=conv", "--only", "throughput"])
    assert res.exit_code == 0 and (results / "report-arch=conv-throughput" / "throughput.png").is_file(), res.output
    # asked into the full report's folder, a partial report is refused before anything is drawn
    res = runner.invoke(app, ["report", "--results", str(results), "--out", str(out), "--only", "throughput"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1, res.output
    assert res.stderr.startswith(f"aebench: error: --out {out} holds a full report")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    # in a folder of its own, the next report replaces the files the last one listed, and only those
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("my notes")
    (mine / "learning_curves.png").write_bytes(b"a picture no report wrote")
    first = runner.invoke(app, ["report", "--results", str(results), "--out", str(mine), "--only", "throughput"])
    assert first.exit_code == 0 and (mine / "throughput.png").is_file(), first.output
    second = runner.invoke(app, ["report", "--results", str(results), "--out", str(mine), "--only", "pareto_params"])
    assert second.exit_code == 0, second.output
    assert not (mine / "throughput.png").exists() and (mine / "pareto_params.png").is_file()
    assert (mine / "notes.md").read_text() == "my notes"
    assert (mine / "learning_curves.png").read_bytes() == b"a picture no report wrote"


def test_pictures_are_skipped_with_a_reason_without_the_dataset(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "search_roots", lambda data_dir=None: [tmp_path / "nowhere"])
    rep = report.build_report(results, tmp_path / "out", only=("reconstructions", "feature_maps", "throughput"))
    assert [d.name for d in rep.drawn] == ["throughput"]
    assert set(rep.skipped) == {"reconstructions", "feature_maps"}
    assert all("not on this machine" in reason for reason in rep.skipped.values())


def test_pictures_draw_from_plain_arrays() -> None:
    """Drawing needs no checkpoint and no model: made-up [0, 1] arrays in, a Figure and its caption out."""
    rng = np.random.default_rng(0)

    def images(n: int) -> np.ndarray:
        return rng.random((n, 28, 28))

    z = np.linspace(-1.0, 1.0, 3)
    codes = ("fc L2", rng.random((10, 2)), np.arange(10) % 2, (0.0, 1.0, 0.0, 1.0))
    drawn = [
        pictures.reconstructions(pictures.Reconstructions(["a", "b"], images(2), [("fc L2", 0.01, images(2))])),
        pictures.latent_space(pictures.LatentSpace(["a", "b"], [codes])),
        pictures.latent_grid(pictures.LatentGrid([("fc L2", images(9), z, z[::-1])])),
        pictures.interpolation(pictures.Interpolation(z, [("fc L2", "a", "b", images(2), images(3))], " (a note)")),
        pictures.latent_arithmetic(pictures.Arithmetic([("fc L2", ("a", "b", "c"), images(3), images(4))])),
        pictures.feature_maps(pictures.FeatureMaps([("conv L2", images(1)[0], rng.random((12, 14, 14)))])),
    ]
    assert all(fig.axes and caption.endswith(".") for fig, caption in drawn)
    assert "all 10 test images" in drawn[1][1] and "a 3×3 grid" in drawn[2][1] and drawn[3][1].endswith(" (a note).")
    rows = [t.get_text() for t in drawn[5][0].axes[0].get_yticklabels()]
    assert rows == ["conv L2\n14×14 maps, ch 0-7", "14×14 maps, ch 8-11"]  # eight maps a row, the input first


def test_model_outputs_are_shown_on_the_unit_scale() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 2, 2)
    assert to_images(x, "tanh").tolist() == [[[0.0, 0.5], [1.0, 1.0]]]
    assert to_images(x, "sigmoid").tolist() == [[[0.0, 0.0], [1.0, 1.0]]]


def test_empty_and_missing_stores_are_one_clear_line(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["report", "--results", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no results store at" in missing.stderr
    open_store(tmp_path / "empty").close()
    empty = runner.invoke(app, ["report", "--results", str(tmp_path / "empty")])
    assert empty.exit_code == 2
    assert empty.stderr.strip().endswith(
        "no runs in " + str(tmp_path / "empty" / DB_NAME) + "; run aebench compare first"
    )
    assert not (tmp_path / "empty" / "report").exists()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("depth=deep", {"depth": ("deep",)}),
        ("depth=deep,latent_dim=16|32", {"depth": ("deep",), "latent_dim": ("16", "32")}),
        ("hidden=512,256,arch=fc", {"hidden": ("512,256",), "arch": ("fc",)}),
        (" arch = conv ", {"arch": ("conv",)}),
    ],
)
def test_parse_where(text: str, parsed: dict[str, tuple[str, ...]]) -> None:
    assert report.parse_where(text) == parsed


@pytest.mark.parametrize("text", ["", "deep", "=deep", "depth=", "depth=deep|", ",depth=deep"])
def test_parse_where_refuses_what_is_not_key_value(text: str) -> None:
    with pytest.raises(BadInput, match="--where"):
        report.parse_where(text)


def _configs(rows: list[dict[str, object]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    df["params"] = df.get("params", 1000)
    df["label"] = [f"cfg{i}" for i in range(len(df))]
    return df


def test_pareto_front_keeps_only_undominated_configs() -> None:
    df = pd.DataFrame({"params": [10, 20, 30, 40, 15], "test_mse": [0.05, 0.03, 0.04, 0.01, 0.06]})
    assert list(pareto_front(df, "params").index) == [0, 1, 3]


def test_plots_with_one_value_on_their_axis_are_skipped_not_empty() -> None:
    one_depth = _configs([{"arch": "fc", "depth": "deep", "latent_dim": 32, "test_mse": 0.02}] * 2)
    with pytest.raises(Skipped, match="only one depth"):
        plot_mse_by_depth(one_depth)
    pool_only = _configs([{"arch": "conv", "depth": "shallow", "downsample": "pool", "test_mse": 0.02}])
    with pytest.raises(Skipped, match="only pool"):
        plot_stride_vs_pool(pool_only)
    # a reason is a sentence with the command that draws the plot, never the store's column names
    fc_only = _configs([{"arch": "fc", "depth": "shallow", "downsample": None, "test_mse": 0.02}])
    with pytest.raises(Skipped) as why:
        plot_stride_vs_pool(fc_only)
    assert str(why.value) == (
        "no selected run is a conv model, the one with pool or stride; "
        "draw it with aebench compare --archs conv --downsample pool,stride"
    )


def test_depth_and_stride_plots_draw_from_a_table() -> None:
    depths = _configs(
        [
            {"arch": a, "depth": d, "latent_dim": 32, "test_mse": m, "params": p}
            for a, d, m, p in [
                ("fc", "shallow", 0.03, 2e5),
                ("fc", "medium", 0.02, 1e6),
                ("fc", "deep", 0.025, 1.5e6),
                ("conv", "shallow", 0.02, 1e5),
                ("conv", "medium", 0.018, 2e5),
            ]
        ]
    )
    fig = plot_mse_by_depth(depths)
    heights = [p.get_height() for ax in fig.axes for p in ax.patches]
    assert sorted(h for h in heights if np.isfinite(h)) == [0.018, 0.02, 0.02, 0.025, 0.03]  # conv has no deep
    assert fig.axes[0].get_ylabel().startswith("test MSE")
    pairs = _configs(
        [
            {"arch": "conv", "depth": d, "downsample": k, "test_mse": m, "params": p}
            for d, k, m, p in [
                ("shallow", "pool", 0.02, 1e5),
                ("shallow", "stride", 0.025, 1e5),
                ("medium", "pool", 0.015, 2e5),
                ("medium", "stride", 0.017, 2e5),
            ]
        ]
    )
    fig = plot_stride_vs_pool(pairs)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["conv shallow", "conv medium"]
    assert np.isclose(fig.axes[0].patches[0].get_height(), 0.02)


def test_labels_name_what_tells_configs_apart() -> None:
    configs = pd.DataFrame(
        {
            "arch": ["fc", "fc", "conv"],
            "depth": ["shallow", "shallow", "shallow"],
            "downsample": [None, None, "pool"],  # only conv has it: not worth repeating in every label
            "grad_clip": [None, 1.0, None],  # set for one fc run only: it is what sets that run apart
            "latent_dim": [16.0, 16.0, 16.0],  # floats, as SQLite NULLs make them
        }
    )
    axes = varying_axes(configs)
    assert axes == ["arch", "grad_clip"]
    assert [label(r, axes) for _, r in configs.iterrows()] == ["fc", "fc clip=1", "conv"]
