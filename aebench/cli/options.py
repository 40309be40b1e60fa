"""The commands' options, each defined once as an `Annotated` alias with its help, and the parsing helpers.

Apart from `app` so that an option shared by several commands (`--epochs`, `--results`, `--json`)
has one help text, and so that `app` holds only the commands. Nothing here imports torch: typer
reads these aliases to build `aebench --help`, which must start at once; the helpers defer the
config import to the moment they parse.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

# ---- shared by `train` and `compare` (and some by `bench`, `report`, `export`) ----

Arch = Annotated[
    str, typer.Option(help="Model to train: a seed model (seed-ae, ...) or a family (fc, conv); see `aebench models`.")
]
Depth = Annotated[str | None, typer.Option(help="fc/conv depth preset: shallow, medium (default), deep.")]
Hidden = Annotated[
    str | None, typer.Option(help="fc only: hidden widths instead of --depth, e.g. 512,256 (decoder mirrored).")
]
UserOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        help="Your own model's option (a keyword of its factory, --archs module:factory), as NAME=VALUE; on "
        "compare NAME=V1,V2 is a grid axis. Repeatable. Refused for a model whose factory does not take it.",
        show_default=False,
    ),
]
LatentDim = Annotated[
    int | None, typer.Option(help="Latent size for fc, conv (default 32) and seed-flexible (default 64).")
]
Downsample = Annotated[str | None, typer.Option(help="conv only: pool (default) or stride (Exercise 4).")]
Upsample = Annotated[str | None, typer.Option(help="conv only: transpose (default) or bilinear (no checkerboard).")]
Activation = Annotated[
    str | None, typer.Option(help="fc/conv hidden activation: relu (default), leakyrelu, elu, gelu.")
]
Output = Annotated[
    str | None, typer.Option(help="fc/conv output: sigmoid (default, data in [0,1]), tanh (data in [-1,1]), none.")
]
BatchNorm = Annotated[
    bool | None, typer.Option("--batchnorm/--no-batchnorm", help="fc/conv: BatchNorm after each hidden activation.")
]
Dropout = Annotated[float | None, typer.Option(help="fc/conv: dropout probability after each hidden layer (0 to <1).")]
Pretrain = Annotated[str | None, typer.Option(help="fc only: none (default) or greedy layer-wise pretraining first.")]
PretrainEpochs = Annotated[int | None, typer.Option(help="Epochs per layer of greedy pretraining (default 1).")]
_YOURS = (
    "or your own: idx:FOLDER (the four IDX files), npz:FILE (x_train, x_test, optional y_train, y_test; uint8 or "
    "floats in [0, 1]; N x H x W or N x C x H x W), images:FOLDER (train/ and test/, a subfolder per class, PNG "
    "or JPEG)"
)
Dataset = Annotated[str, typer.Option(help=f"Dataset: fashion-mnist (default), mnist, kmnist, {_YOURS}.")]
DataDir = Annotated[
    Path | None,
    typer.Option(
        help="Folder with the dataset's IDX files; searched before $AEBENCH_DATA, the cache, /usr/share/datasets."
    ),
]
Download = Annotated[
    bool, typer.Option("--download/--no-download", help="Let torchvision download a dataset not found on disk.")
]
TrainSize = Annotated[int | None, typer.Option(help="Use only the first N training images (quick checks).")]
Lr = Annotated[float, typer.Option(help="Adam learning rate.")]
BatchSize = Annotated[int, typer.Option(help="Training batch size.")]
Epochs = Annotated[int, typer.Option(help="Training epochs (after any pretraining).")]
ValFraction = Annotated[
    float,
    typer.Option(
        help="Share of the training images held out for validation (the last ones, the same for every seed): "
        "its loss is recorded each epoch and --patience watches it; 0: none. The test split never chooses anything."
    ),
]
Patience = Annotated[
    int | None,
    typer.Option(
        help="Stop when the validation loss has not improved by --min-delta for this many epochs (--epochs is then "
        "the cap) and keep the best epoch's weights; default: train every epoch."
    ),
]
MinDelta = Annotated[
    float, typer.Option(help="With --patience: the relative fall in validation loss that counts as improving.")
]
EqualSteps = Annotated[
    bool,
    typer.Option(
        "--equal-steps",
        help="With --pretrain greedy: count pretraining's optimizer steps inside --epochs (fine-tuning gets the "
        "rest), so pretrained and plain runs take the same number of steps and are ranked together.",
    ),
]
Baselines = Annotated[
    bool,
    typer.Option(
        "--baselines/--no-baselines",
        help="Also fit PCA (the optimal linear autoencoder, seconds) at each code size of the grid, and show "
        "every run's test MSE against it.",
    ),
]
Seed = Annotated[int, typer.Option(help="Random seed (initialisation and shuffle order); compare counts up from it.")]
Loss = Annotated[str, typer.Option(help="Training loss: mse, bce (needs sigmoid output), l1.")]
GradClip = Annotated[float | None, typer.Option(help="Clip the gradient norm to this value (off by default).")]
LrSchedule = Annotated[
    str, typer.Option(help="Learning-rate schedule per epoch: none, cosine, step (/10 every third).")
]
WeightDecay = Annotated[float, typer.Option(help="Adam weight decay.")]
Precision = Annotated[
    str, typer.Option(help="fp32, or bf16 (autocast forward, fp32 weights and loss) on CPU and CUDA.")
]
Step = Annotated[
    str,
    typer.Option(
        help="The training step: auto (on a CPU, plain MLPs take the chain rule written out, others autograd) or "
        "autograd (every model through autograd: one engine path when comparing architectures' speed)."
    ),
]
Device = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda or mps.")]
Results = Annotated[
    Path, typer.Option(help="Results folder; the store is <results>/aebench.db, checkpoints <results>/runs/.")
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout (progress stays on stderr).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
Wide = Annotated[
    bool,
    typer.Option(
        "--wide",
        help="Show every column of the table, wider than the terminal if need be (it wraps the lines); "
        "without it, the columns that fit whole are shown and the others named.",
    ),
]
MlflowUri = Annotated[
    str | None,
    typer.Option(
        help="MLflow tracking URI: any MLflow takes (sqlite:///path/mlflow.db, http://host:5000); "
        "default sqlite:///<results>/mlflow.db, artifacts in <results>/mlartifacts."
    ),
]
Experiment = Annotated[
    str | None, typer.Option(help="MLflow experiment to log the grid to (default aebench); created if missing.")
]

# ---- `compare`: the grid's axes (comma lists) and where and how it runs ----

Archs = Annotated[
    str | None, typer.Option(help="Comma list of archs: fc, conv, seed-ae, ... (see `aebench models`); default fc.")
]
Preset = Annotated[
    str | None,
    typer.Option(
        help="A named grid kept in aebench instead of the axis options: exercise-1 ... exercise-5, part-3, "
        "seed-models, reference (see --list-presets); the training options (--epochs, --seeds, --datasets, ...) "
        "still apply."
    ),
]
Baseline = Annotated[
    Path | None,
    typer.Option(
        help="A folder a report of a study wrote (e.g. results/reference): each config's test MSE is shown "
        "against the same config there (every axis but the seed) and judged by a prediction interval."
    ),
]
FailOnRegression = Annotated[
    bool,
    typer.Option(
        "--fail-on-regression",
        help="With --baseline: exit 1 when a config's test MSE is worse than the baseline's seeds allow (for CI).",
    ),
]
GridFileOption = Annotated[
    Path | None,
    typer.Option(
        "--grid",
        help="A TOML grid file instead of the axis options: lists form a product, [[grid]] blocks a union, every "
        "key a compare option without its dashes (latent_dims = [2, 32]); options the file does not set come from "
        "the command line, and one set in both is refused. --dry-run shows its cells.",
    ),
]
ListPresets = Annotated[bool, typer.Option("--list-presets", help="List the named grids (--preset) and exit.")]
Depths = Annotated[str | None, typer.Option(help="Comma list of depth presets for fc/conv (default medium).")]
LatentDims = Annotated[
    str | None, typer.Option(help="Comma list of latent sizes for fc/conv/seed-flexible (default 32).")
]
Downsamples = Annotated[str | None, typer.Option(help="conv: comma list of pool, stride.")]
Upsamples = Annotated[str | None, typer.Option(help="conv: comma list of transpose, bilinear.")]
Activations = Annotated[str | None, typer.Option(help="fc/conv: comma list of relu, leakyrelu, elu, gelu.")]
Outputs = Annotated[str | None, typer.Option(help="fc/conv: comma list of sigmoid, tanh, none.")]
Pretrains = Annotated[str | None, typer.Option(help="fc: comma list of none, greedy (pretrained beside plain).")]
Losses = Annotated[str, typer.Option(help="Comma list of mse, bce, l1 (bce cells only with sigmoid output).")]
Lrs = Annotated[str, typer.Option(help="Comma list of learning rates.")]
BatchSizes = Annotated[str, typer.Option(help="Comma list of batch sizes.")]
Datasets = Annotated[
    str,
    typer.Option("--datasets", "--dataset", help=f"Comma list of datasets: fashion-mnist, mnist, kmnist, {_YOURS}."),
]
Seeds = Annotated[int, typer.Option(help="Seeds per cell (seed, seed+1, ...), for error bars.")]
Stack = Annotated[
    bool | None,
    typer.Option(
        "--stack/--no-stack",
        help="Train cells that differ only in seed, learning rate or loss as one stacked model, up to 32 a stack "
        "(the same results up to float rounding, fewer kernel launches). Cells with BatchNorm, dropout, "
        "--grad-clip, --lr-schedule or greedy pretraining train alone. Default: on CUDA only, where it is "
        "faster; on a CPU it is slower.",
        show_default=False,
    ),
]
Here = Annotated[
    bool,
    typer.Option(
        "--here",
        help="Also train, on this machine, the cells another device already trained (stored beside them, "
        "labelled with this machine), so its speed is measured too; without it they are skipped and counted.",
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List the grid's cells and what is done; train nothing.")]
Workers = Annotated[
    int | None,
    typer.Option(
        help="Worker processes training the grid on one store, each with its share of the cores as torch "
        "threads (--executor local). Default on a CPU: one per core, at most one per cell left and 8, once the "
        "grid has a million images to see; 1 on a GPU and for small grids. Measured on 2 cores: an fc epoch on one "
        "thread beside another worker takes 1.2-1.5x its two-thread time, a conv epoch about 1.7x, so fc grids "
        "gain (1.14x over 2 epochs, more over longer runs) and conv-heavy grids about nothing.",
        show_default=False,
        min=1,
    ),
]
Executor = Annotated[
    str, typer.Option(help="Where the cells train: local (here, one after another) or ray (a Ray cluster).")
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="ray: cluster to use, auto (the one this machine joined) or ray://host:10001 (default: "
        "start Ray on this machine)."
    ),
]
CpusPerRun = Annotated[
    float | None, typer.Option(help="ray: CPUs each run reserves, also its torch threads (default 1).")
]
GpusPerRun = Annotated[
    float | None,
    typer.Option(help="ray: GPU share each run reserves; 0.25 puts four runs on one GPU (default 0: CPU)."),
]
Mlflow = Annotated[
    bool, typer.Option("--mlflow/--no-mlflow", help="Also log the grid to MLflow: a parent run, a child per cell.")
]

# ---- `models`, `report`, `bench` ----

StudyFolder = Annotated[
    Path, typer.Argument(help="A folder `aebench report --out` wrote (runs.csv, epochs.csv), e.g. results/reference.")
]
Pattern = Annotated[str, typer.Argument(help="Glob over model names, e.g. 'seed-*'.")]
SizedFor = Annotated[str, typer.Option(help="Size the models for this dataset's images.")]
ReportOut = Annotated[
    Path | None, typer.Option("--out", help="Folder to write the report to (default <results>/report).")
]
Formats = Annotated[
    str, typer.Option("--format", help="Comma list of pages to write: md (report.md), html (index.html).")
]
Figures = Annotated[
    str,
    typer.Option(help="Comma list of figure files per plot: png (pages; index.html needs it), svg (print)."),
]
Only = Annotated[
    str | None,
    typer.Option(help="Comma list of plots to draw (default all), e.g. reconstructions,pareto_params."),
]
Where = Annotated[
    str | None,
    typer.Option(
        help="Report only runs whose store columns match, e.g. depth=deep,latent_dim=16; a key given twice "
        "matches either value."
    ),
]
# the seed's models, written out here: taking them from aebench.bench.run would import torch for --help
BenchModels = Annotated[
    str | None,
    typer.Option(
        help="Comma list of models to bench (default: every seed model, seed-ae to seed-flexible): any registered "
        "arch (`aebench models`), "
        "with options as arch:option=value, e.g. conv:downsample=stride:latent_dim=16 or fc:depth=deep."
    ),
]
BenchEpochs = Annotated[
    int, typer.Option(help="Epochs per mode; the first is warm-up and not timed when there are more.")
]
ClockCheck = Annotated[
    bool,
    typer.Option("--clock-check/--no-clock-check", help="Also check reported throughput against the wall clock."),
]
BenchStack = Annotated[
    int,
    typer.Option(
        help="Also train this many seeds of each stackable model (no BatchNorm or dropout) as one stack, "
        "in fp32; 0 or 1: no stack row. Its speed-up and efficiency count per model-epoch."
    ),
]


# ---- parsing: text as typed, into the typed values the library takes ----


def choices(flag: str, text: str | None, allowed: Iterable[str]) -> tuple[str, ...] | None:
    """A comma list of `allowed` values, each once; None where the option was not given."""
    from aebench.config import parse_choices  # deferred: aebench.config imports torch, which --help must not

    return None if text is None else parse_choices(flag, text, allowed)


def ints(flag: str, text: str | None) -> tuple[int, ...] | None:
    """A comma list of whole numbers >= 1 (`--hidden 512,256`, `--latent-dims 2,16`); None where not given."""
    from aebench.config import parse_ints  # deferred: aebench.config imports torch, which --help must not

    return None if text is None else parse_ints(flag, text)
