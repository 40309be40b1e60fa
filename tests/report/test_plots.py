"""The report's charts read right on their own: one colour per config, speeds per device, losses on the [0, 1]
scale, numbered Pareto points that do not overlap, titled pictures; drawn from small made-up tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from aebench.report import build, pictures
from aebench.report.contents import Selection
from aebench.report.pages import _md
from aebench.report.pareto import place_numbers, plot_pareto
from aebench.report.plots import Skipped, plot_learning_curves, plot_stride_vs_pool, plot_throughput, to_unit_scale
from aebench.report.style import config_colors, palette

LABELS = ["conv shallow L2", "conv shallow L16", "fc shallow L2", "fc shallow L16"]
DEVICES = ("NVIDIA H200", "x86_64 CPU (2 threads)")


def _configs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "arch": ["conv", "conv", "fc", "fc"],
            "depth": ["shallow"] * 4,
            "latent_dim": [2, 16, 2, 16],
            "label": LABELS,
            "test_mse": [0.030, 0.015, 0.050, 0.040],
            "params": [20e3, 60e3, 200e3, 210e3],
            "flops_per_sample": [1e6, 3e6, 4e5, 4.2e5],
        }
    )


def _curves(order: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "label": name,
                "epoch": e,
                "train_loss": 0.05 / e,
                "test_loss": 0.06 / e,
                "output": "sigmoid",
                "loss": "mse",
            }
            for name in order
            for e in (1, 2, 3)
        ]
    )


def _speeds(devices: tuple[str, ...] = DEVICES) -> pd.DataFrame:
    """One row per (config, device): the GPU 10x the CPU, so a bar of both would be plain to see."""
    rows = []
    for k, device in enumerate(devices):
        for i, name in enumerate(LABELS):
            speed = (1000.0 + 100 * i) * (10 if k == 0 else 1)
            rows.append({"label": name, "device_name": device, "train_samples_per_s": speed,
                         "infer_samples_per_s": 3 * speed})  # fmt: skip
    return pd.DataFrame(rows)


def _hex(color: object) -> str:
    return to_hex(color)  # type: ignore[arg-type]


def _bar_colors(fig: Figure) -> dict[str, str]:
    """Config label -> bar colour, read back from the horizontal bars and their y tick labels."""
    found: dict[str, str] = {}
    for ax in fig.axes[::2]:  # the training panels carry the labels
        names = [t.get_text() for t in ax.get_yticklabels()]
        for patch in ax.patches:
            y = round(patch.get_y() + patch.get_height() / 2)  # type: ignore[attr-defined]
            found.setdefault(names[y], _hex(patch.get_facecolor()))
    return found


def test_one_config_keeps_one_colour_across_plots() -> None:
    colors = config_colors(LABELS)
    # The curves come best first, the speeds in the table's order: the colours must not follow either order.
    curves = plot_learning_curves(_curves(list(reversed(LABELS))), colors=colors)
    line_colors = {line.get_label(): _hex(line.get_color()) for line in curves.axes[0].get_lines()}
    bars = _bar_colors(plot_throughput(_speeds(DEVICES[:1]).iloc[::-1], colors))
    assert set(line_colors) == set(bars) == set(LABELS)
    assert line_colors == bars
    assert len(set(bars.values())) == len(LABELS)
    # Legends list configs in the one order of the colour map.
    legend = curves.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == LABELS
    # The Pareto chart's points too.
    pareto = plot_pareto(_configs(), "params", colors)
    legend_texts = [t.get_text() for t in pareto.legends[0].get_texts()][1:]
    handles = pareto.legends[0].legend_handles[1:]
    point_colors = {text.split("  ", 1)[1]: _hex(h.get_color()) for text, h in zip(legend_texts, handles, strict=True)}
    assert point_colors == line_colors


def test_speed_plots_never_mix_devices_in_one_series() -> None:
    speeds = _speeds()
    fig = plot_throughput(speeds, config_colors(LABELS))
    assert len(fig.axes) == 4  # a row of (training, inference) per device
    for ax in fig.axes:
        title = ax.get_title()
        (device,) = [d for d in DEVICES if d in title]  # each panel names one device
        metric = "train_samples_per_s" if title.startswith("training") else "infer_samples_per_s"
        expected = sorted(speeds.loc[speeds["device_name"] == device, metric])
        widths = sorted(p.get_x() + p.get_width() for p in ax.patches)  # type: ignore[attr-defined]
        assert np.allclose(widths, expected)

    configs = pd.DataFrame(
        {
            "arch": ["conv"] * 4,
            "depth": ["shallow", "shallow", "medium", "medium"],
            "downsample": ["pool", "stride"] * 2,
            "test_mse": [0.02, 0.025, 0.015, 0.017],
            "params": [1e5, 1e5, 2e5, 2e5],
            "flops_per_sample": [3.8e6, 2.3e6, 7e6, 4e6],
        }
    )
    configs["label"] = [f"conv {d} {k}" for d, k in zip(configs["depth"], configs["downsample"], strict=True)]
    per_device = pd.concat(
        [configs.assign(device_name=d, train_samples_per_s=s * np.array([4845.0, 6440, 3000, 4000])) for d, s in
         zip(DEVICES, (10, 1), strict=True)],
        ignore_index=True,
    )  # fmt: skip
    fig = plot_stride_vs_pool(configs, per_device)
    assert fig.get_suptitle().startswith("Exercise 4: stride or pooling?")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:2] == ["reconstruction error", "forward pass cost"]
    assert titles[2:] == [f"training speed on {d}" for d in DEVICES]
    for ax, device in zip(fig.axes[2:], DEVICES, strict=True):
        heights = sorted(p.get_height() for p in ax.patches)  # type: ignore[attr-defined]
        assert np.allclose(heights, sorted(per_device.loc[per_device["device_name"] == device, "train_samples_per_s"]))
    assert sorted(p.get_height() for p in fig.axes[1].patches) == [2.3e6, 3.8e6, 4e6, 7e6]  # type: ignore[attr-defined]


def test_one_device_is_named_in_the_title() -> None:
    fig = plot_throughput(_speeds(DEVICES[1:]))
    assert fig.get_suptitle() == f"Throughput on {DEVICES[1]}"


def test_by_device_averages_each_machine_apart() -> None:
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "arch": ["fc"] * 4,
            "latent_dim": [16, 16, 32, 32],
            "seed": [0, 1, 0, 1],
            "device": ["cuda", "cpu", "cuda", "cpu"],
            "device_name": [DEVICES[0], DEVICES[1], DEVICES[0], DEVICES[1]],
            "test_mse": [0.02, 0.021, 0.018, 0.019],
            "train_samples_per_s": [50_000.0, 2_000.0, 40_000.0, 1_500.0],
        }
    )
    selection = Selection(Path("."), runs, pd.DataFrame(), runs.iloc[:0], {})
    configs = build.by_config(runs)
    assert len(configs) == 2 and configs["device_name"].iloc[0] == ", ".join(sorted(DEVICES))
    speeds = build.by_device(selection, configs)
    assert len(speeds) == 4 and set(speeds["label"]) == set(configs["label"])
    by = speeds.set_index(["label", "device_name"])["train_samples_per_s"]
    assert by[("fc L16", DEVICES[0])] == 50_000.0 and by[("fc L16", DEVICES[1])] == 2_000.0


@pytest.mark.parametrize(
    ("output", "loss", "factor"), [("tanh", "mse", 4.0), ("tanh", "l1", 2.0), ("sigmoid", "mse", 1.0)]
)
def test_tanh_curves_are_put_on_the_unit_scale(output: str, loss: str, factor: float) -> None:
    unit = _curves(["fc L16"])
    logged = unit.assign(train_loss=unit["train_loss"] * factor, test_loss=unit["test_loss"] * factor,
                         output=output, loss=loss)  # fmt: skip
    assert np.allclose(to_unit_scale(logged)["test_loss"], unit["test_loss"])
    fig = plot_learning_curves(logged, loss)
    train, test = (ax.get_lines()[0].get_ydata() for ax in fig.axes[:2])
    assert np.allclose(train, unit["train_loss"]) and np.allclose(test, unit["test_loss"])  # type: ignore[arg-type]
    assert "[0, 1] pixel scale" in fig.axes[0].get_ylabel()


def test_learning_curves_carry_each_configs_output() -> None:
    runs = pd.DataFrame(
        {"run_id": ["a", "b"], "arch": ["fc", "fc"], "output": ["tanh", "sigmoid"], "loss": ["mse", "mse"],
         "seed": [0, 0], "device": ["cpu"] * 2, "device_name": ["cpu"] * 2, "test_mse": [0.02, 0.03]}
    )  # fmt: skip
    epochs = pd.DataFrame({"run_id": ["a", "a", "b", "b"], "epoch": [1, 2, 1, 2],
                           "train_loss": [0.4, 0.2, 0.1, 0.05], "test_loss": [0.4, 0.2, 0.1, 0.05]})  # fmt: skip
    selection = Selection(Path("."), runs, epochs, runs.iloc[:0], {})
    curves, cut = build.learning_curves(selection, build.by_config(runs))
    assert cut == 0
    tanh = to_unit_scale(curves).query("output == 'tanh'")
    assert np.allclose(tanh["train_loss"], [0.1, 0.05])


def test_pareto_numbers_do_not_overlap_and_an_outlier_sits_on_the_edge() -> None:
    df = _configs()
    # Two configs of one size and about one MSE (pool and stride), and one far worse (a seed model, 1 epoch).
    extra = pd.DataFrame(
        {"arch": ["conv", "seed-ae"], "depth": ["shallow", None], "latent_dim": [16, 32],
         "label": ["conv shallow L16 stride", "seed-ae 1ep"], "test_mse": [0.0152, 0.4],
         "params": [60e3, 400e3], "flops_per_sample": [2e6, 8e5]}
    )  # fmt: skip
    df = pd.concat([df, extra], ignore_index=True)
    fig = plot_pareto(df, "params")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    low, high = ax.get_ylim()
    assert high < 0.2  # the outlier does not set the axis: the front fills it
    fig.canvas.draw()  # type: ignore[attr-defined]
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    notes = [t for t in ax.texts if isinstance(t, Annotation)]
    assert sorted(int(t.get_text()) for t in notes) == list(range(1, len(df) + 1))
    boxes = [t.get_window_extent(renderer) for t in notes]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), "two numbers overlap"
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("seed-ae 1ep" in t and "off the top" in t for t in texts)


def test_place_numbers_keeps_texts_apart() -> None:
    points = np.array([[100.0, 100.0]] * 4 + [[103.0, 101.0]])
    offsets = place_numbers(points, ["1", "2", "3", "4", "15"], (0.0, 0.0, 400.0, 300.0))
    assert len(set(offsets)) == 5


def test_pictures_say_what_they_show_and_feature_maps_have_a_scale() -> None:
    rng = np.random.default_rng(0)
    images = rng.random((3, 28, 28))
    z1, z2 = np.linspace(-0.213, 12.7, 15), np.linspace(8.38, -3.1, 15)
    grid = pictures.latent_grid(
        pictures.LatentGrid([("fc L2", rng.random((225, 28, 28)), z1, z2)], "", "fashion-mnist")
    )
    for tick in (*grid[0].axes[0].get_xticks(), *grid[0].axes[0].get_yticks()):
        assert float(tick) == round(float(tick) * 4) / 4  # round values, not -0.213 or 8.38
    drawn = {
        "reconstructions": pictures.reconstructions(
            pictures.Reconstructions(["a", "b", "c"], images, [("fc L2", 0.01, images)], "", "fashion-mnist")
        ),
        "interpolation": pictures.interpolation(
            pictures.Interpolation(np.linspace(0, 1, 3), [("fc L2", "a", "b", images[:2], images)], "", "fashion-mnist")
        ),
        "latent_arithmetic": pictures.latent_arithmetic(
            pictures.Arithmetic([("fc L2", ("a", "b", "c"), images, rng.random((4, 28, 28)))], "", "fashion-mnist")
        ),
        "feature_maps": pictures.feature_maps(
            pictures.FeatureMaps([("conv L2", images[0], rng.random((16, 14, 14)))], "", "fashion-mnist")
        ),
    }
    for name, (fig, _) in drawn.items():
        assert "Fashion-MNIST" in fig.get_suptitle(), name
    maps = drawn["feature_maps"][0]
    assert len(maps.axes) == 2 and "scaled to its own range" in maps.axes[1].get_ylabel()  # the colorbar


def test_markdown_escapes_for_markdown_and_html_for_html() -> None:
    caption = "First conv layer's maps <b>x</b> a|b & c"
    md = _md(caption)
    assert "&#x27;" not in md and "layer's" in md and "&lt;b&gt;" in md and "a\\|b" in md and "& c" in md
    assert "on each bar its test MSE, then its parameter count" in build.CAPTIONS["mse_by_depth"]


def test_every_config_of_a_large_study_gets_its_own_colour() -> None:
    """The reference study has 44 configs: a palette that repeats after 20 drew two of them alike."""
    for n in (5, 20, 44, 60, 100):
        assert len({tuple(round(c, 6) for c in colour) for colour in palette(n)}) == n, n
    colours = config_colors([f"config {i}" for i in range(44)])
    assert len(set(colours.values())) == 44
    assert palette(20)[:10] == palette(44)[:10]  # the first, most distinct colours do not move as configs are added


def test_a_picture_without_a_loadable_checkpoint_says_so(tmp_path: Path, fashion_mnist: object) -> None:
    """A study whose checkpoints are gone (a report folder put back with `aebench import`) is told that, not that it
    has no conv model."""
    from aebench.report.arrays import PictureArrays

    configs = pd.DataFrame({"label": ["conv medium L32"], "arch": ["conv"], "dataset": ["fashion-mnist"],
                            "checkpoint": ["runs/gone/checkpoint.pt"], "test_mse": [0.01],
                            "latent_size": [32]})  # fmt: skip
    with pytest.raises(Skipped, match="no checkpoint of the selected runs could be loaded"):
        PictureArrays(tmp_path, configs).feature_maps()
