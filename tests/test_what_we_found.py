"""Every number in the README's "What we found" comes from the checked-in study: its runs.csv (means, 95% CIs, ratios
to PCA, sizes, FLOPs), its epochs.csv (how fast each config was still improving) and its report.md (Welch's and
Holm's p). A number a section states that the files do not hold fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from aebench.columns import config_label
from aebench.report.stats import ALPHA, ci95
from aebench.train.convergence import still_improving

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "results" / "reference"
NUMBER = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e-?\d+)?")
CONFIG = ["arch", "depth", "latent_dim", "downsample", "upsample", "activation", "pretrain", "hidden"]


def _section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme[readme.index("## What we found") : readme.index("## Commands")]


def _formats(value: float) -> set[str]:
    return {f"{value:.4f}", f"{value:.5f}", f"{value:.4g}", f"{value:.3g}", f"{value:.2g}"}


def _known() -> tuple[set[str], set[str]]:
    """(the decimals the files give, the whole numbers they give), as the README would write them."""
    runs = pd.read_csv(STUDY / "runs.csv")
    runs = runs[runs["status"] == "done"]
    epochs = pd.read_csv(STUDY / "epochs.csv")
    rate = {rid: still_improving(list(part.sort_values("epoch")["test_loss"]))
            for rid, part in epochs.groupby("run_id")}  # fmt: skip
    runs = runs.assign(rate=runs["run_id"].map(rate), key=[config_label(r, CONFIG) for _, r in runs.iterrows()])
    pca = runs[runs["arch"] == "pca"].set_index("latent_size")["test_mse"]
    decimals: set[str] = set()
    # Exercises 1, 4, 5, Part 3, a 2-core CPU, the [0, 1] pixel scale, the 95% CI
    whole = {str(n) for n in (0, 1, 2, 3, 4, 5)} | {f"{100 * (1 - ALPHA):.0f}"}
    trained = runs[runs["arch"] != "pca"]
    worse = 0
    for _, part in runs.groupby("key"):
        mse = part["test_mse"].tolist()
        mean = sum(mse) / len(mse)
        decimals |= _formats(mean) | (_formats(ci95(mse)) if len(mse) > 1 else set())
        latent = part["latent_size"].iloc[0]
        if part["arch"].iloc[0] != "pca" and latent in pca.index:
            decimals.add(f"{mean / pca[latent]:.2f}")
            worse += mean > pca[latent]
        decimals |= {f"{part['rate'].mean():.1f}", f"{part['flops_per_sample'].iloc[0] / 1e6:.2f}"}
        whole |= {f"{int(part['params'].iloc[0]):,}", f"{int(latent):,}"}
    configs = trained.groupby("key")
    seeds, n_epochs = configs.size(), trained["epochs"].iloc[0]
    conv = trained[trained["arch"] == "conv"]
    stride_pool = conv[(conv["latent_dim"] == 32) & (conv["upsample"] == "transpose")]
    flops = stride_pool.groupby("downsample")["flops_per_sample"].first()
    whole |= {
        str(len(configs)),
        str(seeds.max()),
        str(n_epochs),
        "60,000",
        "10,000",
        str(trained["batch_size"].iloc[0]),
        "784",
        str(worse),
        str(len(configs) - (trained.groupby("key")["compression_ratio"].first() <= 1).sum()),
        f"{100 * (1 - flops['stride'] / flops['pool']):.0f}",
        str(n_epochs + 5),
        "5",  # greedy: 5 layer pairs of fc deep, 1 pretraining epoch each, then the epochs
    }
    rates = trained.groupby("key")["rate"].mean()
    decimals |= {f"{rates.min():.1f}", f"{rates.max():.1f}"}
    report = (STUDY / "report.md").read_text()
    for p, holm, m in re.findall(r"p = ([\d.e-]+), Holm-adjusted ([\d.e-]+) over (\d+) comparisons", report):
        decimals |= {p, holm}
        whole |= {p, holm, m}
    decimals.add("1e-3")  # the learning rate, as the section writes it
    return decimals, whole


def test_every_number_in_what_we_found_is_in_the_study_files() -> None:
    decimals, whole = _known()
    stated = NUMBER.findall(_section())
    assert len(stated) > 100  # the section is made of numbers: this test reads them all
    unknown = [n for n in stated if n not in (decimals if ("." in n or "e" in n) else whole)]
    assert not unknown, f"numbers in README 'What we found' that the study's files do not give: {unknown}"


def test_the_section_names_the_budget_and_the_baseline() -> None:
    text = " ".join(_section().split())
    assert "None of the 44 configs had converged" in text and "PCA" in text and "Holm" in text
    assert "withdrawn" in text and "not settled" in text and "not compared" in text


def _config(runs: pd.DataFrame, **axes: object) -> pd.DataFrame:
    part = runs
    for axis, value in axes.items():
        part = part[part[axis].isna()] if value is None else part[part[axis] == value]
    assert 1 <= len(part) <= 3, axes
    return part


def test_each_claim_names_its_own_configs_numbers() -> None:
    """The claims, config by config: a number moved to the wrong config fails here, not only a made-up one."""
    runs = pd.read_csv(STUDY / "runs.csv")
    runs = runs[runs["status"] == "done"]
    text = " ".join(_section().split())

    def mse(digits: int, **axes: object) -> tuple[float, str]:
        values = _config(runs, **axes)["test_mse"].tolist()
        mean = sum(values) / len(values)
        return mean, f"{mean:.{digits}f} ± {ci95(values):.{digits}f}"

    pca = {int(r["latent_dim"]): float(r["test_mse"]) for _, r in runs[runs["arch"] == "pca"].iterrows()}
    for latent in (2, 4, 8, 16, 32, 64, 128):
        assert f"{pca[latent]:.3g} at {latent}" in text
    medium = {"arch": "fc", "depth": "medium", "activation": "relu", "pretrain": "none"}
    for latent in (2, 8, 16, 32, 64, 128):
        assert f"{mse(4, **medium, latent_dim=latent)[1]} at L{latent}" in text
    assert f"{mse(4, **medium, latent_dim=2)[0] / pca[2]:.2f}× PCA at L2" in text
    assert f"{mse(4, **medium, latent_dim=128)[0] / pca[128]:.2f}× at L128" in text
    for name, act in (("ELU", "elu"), ("LeakyReLU", "leakyrelu"), ("ReLU", "relu")):
        assert f"{name} {mse(5, **{**medium, 'activation': act}, latent_dim=32)[1]}" in text
    at32 = {"arch": "fc", "latent_dim": 32, "activation": "relu", "pretrain": "none"}
    assert f"medium {mse(4, **at32, depth='medium')[1]} beats shallow {mse(4, **at32, depth='shallow')[1]}" in text
    deep, deep_text = mse(4, **at32, depth="deep")
    assert f"Deep, {deep_text}, is **worse than PCA** ({deep / pca[32]:.2f}×)" in text
    conv = {"arch": "conv", "latent_dim": 128, "upsample": "transpose"}
    stride, pool = mse(4, **conv, downsample="stride")[1], mse(4, **conv, downsample="pool")[1]
    assert f"({stride} against {pool}, p = " in text
    deep32 = {"arch": "fc", "depth": "deep", "latent_dim": 32}
    assert f"{mse(4, **deep32, pretrain='greedy')[1]} with it against {mse(4, **deep32, pretrain='none')[1]}" in text
    deepconv = mse(5, arch="seed-deepconv")
    assert f"({deepconv[1]}) but {deepconv[0] / pca[576]:.2f}× PCA at its 576-number code" in text
