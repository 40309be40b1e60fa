"""The `aebench` command line: parse, call one library function, print. The only exit point."""

from __future__ import annotations

import json
import math
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer._click.exceptions import ClickException  # typer vendors click since 0.25
from typer.core import TyperGroup
from typer.exceptions import Abort

from aebench import config as cfgmod
from aebench.errors import AebenchError, failure_reason

T = TypeVar("T")


class _OneLineErrors(TyperGroup):
    """Usage errors as one stderr line with exit code 2, instead of click's usage panel."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except ClickException as exc:
            if not exc.format_message().strip():  # no arguments: the help was printed, nothing went wrong
                sys.exit(0)
            _fail(exc.format_message(), exc.exit_code)
        except Abort:
            _fail("aborted", 1)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    help="Benchmark autoencoder architectures on real data: train, compare grids, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped output (CI logs, files) has no terminal width: give tables room instead of rich's 80.
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def _fail(message: str, code: int) -> None:
    err.print(f"aebench: error: {message}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


@contextmanager
def _errors(debug: bool, as_json: bool = False) -> Iterator[None]:
    """Library errors become one line and an exit code; tracebacks only with --debug."""
    from aebench.grid.executors import GridInterrupted

    try:
        yield
    except GridInterrupted as exc:
        _print_outcomes(exc.outcomes, as_json)
        done = sum(o.status == "done" for o in exc.outcomes)
        err.print(
            f"interrupted: {len(exc.outcomes)} of {exc.total} runs passed ({done} done and stored); "
            "runs in flight were dropped; rerun the same command to train the rest",
            highlight=False,
        )
        sys.exit(130)
    except AebenchError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        _fail(f"internal error: {failure_reason(exc)} (rerun with --debug for the traceback)", 1)


def _opt(value: str | None, parse: Callable[[str], T]) -> T | None:
    return None if value is None else parse(value)


# ---- option sets, defined once and shared by `train` and `compare` ----

Arch = Annotated[
    str, typer.Option(help="Model to train: a seed model (seed-ae, ...) or a family (fc, conv); see `aebench models`.")
]
Depth = Annotated[str | None, typer.Option(help="fc/conv depth preset: shallow, medium (default), deep.")]
Hidden = Annotated[
    str | None, typer.Option(help="fc only: hidden widths instead of --depth, e.g. 512,256 (decoder mirrored).")
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
Dataset = Annotated[str, typer.Option(help="Dataset: fashion-mnist (default), mnist, kmnist.")]
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
Device = Annotated[str, typer.Option(help="auto (cuda, then mps, then cpu), cpu, cuda or mps.")]
Results = Annotated[
    Path, typer.Option(help="Results folder; the store is <results>/aebench.db, checkpoints <results>/runs/.")
]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout (progress stays on stderr).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")]
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


def _hidden(text: str | None) -> tuple[int, ...] | None:
    return _opt(text, lambda t: cfgmod.parse_ints("--hidden", t))


def _base(
    model: cfgmod.ModelSpec, dataset: str, train_size: int | None, loss: str, lr: float, batch_size: int,
    epochs: int, seed: int, weight_decay: float, grad_clip: float | None, lr_schedule: str, precision: str,
) -> cfgmod.RunConfig:  # fmt: skip
    return cfgmod.RunConfig(
        model=model, dataset=dataset, train_size=train_size, loss=loss, lr=lr, batch_size=batch_size,
        epochs=epochs, seed=seed, weight_decay=weight_decay, grad_clip=grad_clip, lr_schedule=lr_schedule,
        precision=precision,
    )  # fmt: skip


@app.command()
def train(
    arch: Arch = "fc",
    depth: Depth = None,
    hidden: Hidden = None,
    latent_dim: LatentDim = None,
    downsample: Downsample = None,
    upsample: Upsample = None,
    activation: Activation = None,
    output: Output = None,
    batchnorm: BatchNorm = None,
    dropout: Dropout = None,
    pretrain: Pretrain = None,
    pretrain_epochs: PretrainEpochs = None,
    dataset: Dataset = "fashion-mnist",
    data_dir: DataDir = None,
    download: Download = True,
    train_size: TrainSize = None,
    lr: Lr = 1e-3,
    batch_size: BatchSize = 128,
    epochs: Epochs = 10,
    seed: Seed = 0,
    loss: Loss = "mse",
    grad_clip: GradClip = None,
    lr_schedule: LrSchedule = "none",
    weight_decay: WeightDecay = 0.0,
    precision: Precision = "fp32",
    device: Device = "auto",
    results: Results = Path("results"),
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Train one config, record it in the results store and print its measurements.

    A config already in the store is not trained again: its stored result is shown.
    """
    from aebench.cli.progress import RichEvents
    from aebench.grid.runner import run_grid

    with _errors(debug, as_json):
        spec = cfgmod.model_spec(
            arch, depth=depth, hidden=_hidden(hidden), latent_dim=latent_dim, downsample=downsample,
            upsample=upsample, activation=activation, output=output, batchnorm=batchnorm, dropout=dropout,
            pretrain=pretrain, pretrain_epochs=pretrain_epochs,
        )  # fmt: skip
        cfg = _base(
            spec,
            dataset,
            train_size,
            loss,
            lr,
            batch_size,
            epochs,
            seed,
            weight_decay,
            grad_clip,
            lr_schedule,
            precision,
        )
        with RichEvents(err) as events:
            [outcome] = run_grid(
                [cfg], results, device=device, data_dir=data_dir, allow_download=download, events=events
            )
        from aebench.cli.render import outcome_record, run_table

        if as_json:
            from aebench.grid.store import open_store

            with open_store(results, create=False) as store:
                epochs_rows = store.epochs(cfg.run_id).drop(columns="run_id").to_dict("records")
            print(json.dumps({**outcome_record(outcome), "epochs": epochs_rows}, default=str))
        else:
            out.print(run_table([outcome], single=True))
        if outcome.status != "done":
            raise typer.Exit(1)


@app.command()
def compare(
    archs: Annotated[
        str, typer.Option(help="Comma list of archs: fc, conv, seed-ae, ... (see `aebench models`).")
    ] = "fc",
    depths: Annotated[
        str | None, typer.Option(help="Comma list of depth presets for fc/conv (default medium).")
    ] = None,
    latent_dims: Annotated[
        str | None, typer.Option(help="Comma list of latent sizes for fc/conv/seed-flexible (default 32).")
    ] = None,
    downsample: Annotated[str | None, typer.Option(help="conv: comma list of pool, stride.")] = None,
    upsample: Annotated[str | None, typer.Option(help="conv: comma list of transpose, bilinear.")] = None,
    activations: Annotated[str | None, typer.Option(help="fc/conv: comma list of relu, leakyrelu, elu, gelu.")] = None,
    outputs: Annotated[str | None, typer.Option(help="fc/conv: comma list of sigmoid, tanh, none.")] = None,
    pretrain: Annotated[
        str | None, typer.Option(help="fc: comma list of none, greedy (pretrained beside plain).")
    ] = None,
    losses: Annotated[
        str, typer.Option(help="Comma list of mse, bce, l1 (bce cells only with sigmoid output).")
    ] = "mse",
    lrs: Annotated[str, typer.Option(help="Comma list of learning rates.")] = "0.001",
    batch_sizes: Annotated[str, typer.Option(help="Comma list of batch sizes.")] = "128",
    datasets: Annotated[
        str, typer.Option("--datasets", "--dataset", help="Comma list of datasets: fashion-mnist, mnist, kmnist.")
    ] = "fashion-mnist",
    seeds: Annotated[int, typer.Option(help="Seeds per cell (seed, seed+1, ...), for error bars.")] = 1,
    hidden: Hidden = None,
    batchnorm: BatchNorm = None,
    dropout: Dropout = None,
    pretrain_epochs: PretrainEpochs = None,
    train_size: TrainSize = None,
    epochs: Epochs = 10,
    seed: Seed = 0,
    grad_clip: GradClip = None,
    lr_schedule: LrSchedule = "none",
    weight_decay: WeightDecay = 0.0,
    precision: Precision = "fp32",
    data_dir: DataDir = None,
    download: Download = True,
    device: Device = "auto",
    results: Results = Path("results"),
    stack: Annotated[
        bool | None,
        typer.Option(
            "--stack/--no-stack",
            help="Train cells that differ only in seed, learning rate or loss as one stacked model, up to 32 a stack "
            "(the same results up to float rounding, fewer kernel launches). Cells with BatchNorm, dropout, "
            "--grad-clip, --lr-schedule or greedy pretraining train alone. Default: on CUDA only, where it is "
            "faster; on a CPU it is slower.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the grid's cells and what is done; train nothing.")
    ] = False,
    executor: Annotated[
        str, typer.Option(help="Where the cells train: local (here, one after another) or ray (a Ray cluster).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="ray: cluster to use, auto (the one this machine joined) or ray://host:10001 (default: "
            "start Ray on this machine)."
        ),
    ] = None,
    cpus_per_run: Annotated[
        float | None, typer.Option(help="ray: CPUs each run reserves, also its torch threads (default 1).")
    ] = None,
    gpus_per_run: Annotated[
        float | None,
        typer.Option(help="ray: GPU share each run reserves; 0.25 puts four runs on one GPU (default 0: CPU)."),
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow/--no-mlflow", help="Also log the grid to MLflow: a parent run, a child per cell.")
    ] = False,
    mlflow_uri: MlflowUri = None,
    experiment: Experiment = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Train every cell of a grid over archs, depths, latent dims, ...; resume what is done.

    Axes that do not apply to an arch (--downsample for fc) are collapsed for it, not
    run twice. Cells already done in the store are skipped and said so.
    """
    from aebench.cli.progress import RichEvents
    from aebench.grid.runner import run_grid

    with _errors(debug, as_json):
        arch_list = cfgmod.split_list("--archs", archs)
        grid = cfgmod.GridSpec(
            archs=tuple(dict.fromkeys(arch_list)),
            depths=_opt(depths, lambda t: cfgmod.parse_choices("--depths", t, cfgmod.DEPTHS)),
            latent_dims=_opt(latent_dims, lambda t: cfgmod.parse_ints("--latent-dims", t)),
            downsample=_opt(downsample, lambda t: cfgmod.parse_choices("--downsample", t, cfgmod.DOWNSAMPLES)),
            upsample=_opt(upsample, lambda t: cfgmod.parse_choices("--upsample", t, cfgmod.UPSAMPLES)),
            activations=_opt(activations, lambda t: cfgmod.parse_choices("--activations", t, cfgmod.ACTIVATIONS)),
            outputs=_opt(outputs, lambda t: cfgmod.parse_choices("--outputs", t, cfgmod.OUTPUTS)),
            pretrain=_opt(pretrain, lambda t: cfgmod.parse_choices("--pretrain", t, cfgmod.PRETRAINS)),
            losses=cfgmod.parse_choices("--losses", losses, cfgmod.LOSSES),
            lrs=cfgmod.parse_floats("--lrs", lrs),
            batch_sizes=cfgmod.parse_ints("--batch-sizes", batch_sizes),
            datasets=cfgmod.parse_choices("--datasets", datasets, cfgmod.DATASETS),
            seeds=seeds,
            base=_base(
                cfgmod.ModelSpec(arch="fc"),
                "fashion-mnist",
                train_size,
                "mse",
                1e-3,
                128,
                epochs,
                seed,
                weight_decay,
                grad_clip,
                lr_schedule,
                precision,
            ),
            fixed={
                "hidden": _hidden(hidden),
                "batchnorm": batchnorm,
                "dropout": dropout,
                "pretrain_epochs": pretrain_epochs,
            },
        )
        configs = grid.expand()
        from aebench.grid import executors
        from aebench.integrations import mlflow as mlflow_export

        executors.check_executor(executor)
        mlflow_export.check_request(mlflow, mlflow_uri, experiment)
        if dry_run:
            from aebench.cli.render import plan_table

            plan = plan_table(configs, results)
            if as_json:
                print(json.dumps(plan.to_dict("records"), default=str))
            else:
                out.print(_df_table(plan, f"grid of {len(configs)} cells (dry run: nothing trained)"))
            return
        with RichEvents(err) as events:
            outcomes = run_grid(
                configs, results, device=device, data_dir=data_dir, allow_download=download, events=events,
                executor=executor,
                executor_options={"address": ray_address, "cpus_per_run": cpus_per_run, "gpus_per_run": gpus_per_run},
                stack=stack,
            )  # fmt: skip
        _print_outcomes(outcomes, as_json)
        if mlflow:
            exported = mlflow_export.export(results, mlflow_uri, experiment, [c.run_id for c in configs], data_dir)
            err.print(exported.summary(), highlight=False, soft_wrap=True)
        bad = [o for o in outcomes if o.status in ("failed", "diverged")]
        if bad:
            err.print(
                f"{len(bad)} of {len(outcomes)} runs did not finish: "
                f"{sum(o.status == 'failed' for o in bad)} failed, {sum(o.status == 'diverged' for o in bad)} diverged"
            )
            raise typer.Exit(1)


def _print_outcomes(outcomes: Sequence[Any], as_json: bool) -> None:
    from aebench.cli.render import outcome_record, run_table

    if as_json:
        print(json.dumps([outcome_record(o) for o in outcomes], default=str))
    elif outcomes:
        out.print(run_table(outcomes))


def _df_table(df: Any, title: str) -> Table:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col))
    for row in df.itertuples(index=False):
        table.add_row(*["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in row])
    return table


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="Glob over model names, e.g. 'seed-*'.")] = "*",
    dataset: Annotated[str, typer.Option(help="Size the models for this dataset's images.")] = "fashion-mnist",
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """List the model zoo with parameter counts (for the dataset's image shape) and options."""
    from aebench.cli.render import model_rows

    with _errors(debug):
        rows = model_rows(pattern, dataset)
        if as_json:
            print(json.dumps(rows))
            return
        table = Table(title=f"aebench models (sized for {dataset})")
        for col in ("name", "params", "latent", "options", "description"):
            table.add_column(col, justify="right" if col in ("params", "latent") else "left")
        for r in rows:
            table.add_row(
                r["name"], f"{r['params']:,}", str(r["latent_size"]), ", ".join(r["options"]), r["description"]
            )
        out.print(table)


@app.command(name="datasets")
def datasets_cmd(
    data_dir: DataDir = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Show where each dataset is found (or where aebench looked)."""
    from aebench import data

    with _errors(debug):
        rows = [
            {"name": name, "folder": str(folder) if (folder := data.find(name, data_dir)) else None}
            for name in data.DATASETS
        ]
        if as_json:
            print(json.dumps({"searched": [str(p) for p in data.search_roots(data_dir)], "datasets": rows}))
            return
        table = Table(title="datasets")
        table.add_column("name")
        table.add_column("found in")
        for r in rows:
            table.add_row(r["name"], r["folder"] or "[red]not found[/red]")
        out.print(table)
        err.print("looked in: " + ", ".join(str(p) for p in data.search_roots(data_dir)), highlight=False)
        for name in (r["name"] for r in rows if not r["folder"]):
            err.print(f"{name}: {data.how_to_get(str(name))}", highlight=False)


@app.command()
def report(
    results: Results = Path("results"),
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder to write the report to (default <results>/report).")
    ] = None,
    formats: Annotated[
        str, typer.Option("--format", help="Comma list of pages to write: md (report.md), html (index.html).")
    ] = "md,html",
    only: Annotated[
        str | None,
        typer.Option(help="Comma list of plots to draw (default all), e.g. reconstructions,pareto_params."),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            help="Report only runs whose store columns match, e.g. depth=deep,latent_dim=16; a key given twice "
            "matches either value."
        ),
    ] = None,
    data_dir: DataDir = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Write CSVs, tables, plots, report.md and index.html for the finished runs in a results store.

    Plots the runs cannot fill (an axis with one value) are left out and said so. The store is only read.
    """
    from aebench.report import build as reportmod
    from aebench.report.pages import rich_table, summary_lines

    with _errors(debug):
        rep = reportmod.build_report(
            results, out_dir, formats=reportmod.parse_formats(formats), only=reportmod.parse_only(only),
            where=where, data_dir=data_dir,
        )  # fmt: skip
        if as_json:
            print(json.dumps(rep.to_json()))
            return
        out.print(rich_table(rep))
        for line in summary_lines(rep):
            out.print(line, markup=False, highlight=False, soft_wrap=True)


export_app = typer.Typer(help="Send a results store's runs to the tools a team already uses.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command(name="mlflow")
def export_mlflow(
    results: Results = Path("results"),
    mlflow_uri: MlflowUri = None,
    experiment: Experiment = None,
    data_dir: DataDir = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Log every run of a results store to MLflow: config, curves, metrics, checkpoint, reconstructions.

    The store's runs become one parent run with a child per run. Runs already logged are
    left alone, or replaced where the store has a newer result; the store is only read.
    """
    from aebench.integrations import mlflow as mlflow_export

    with _errors(debug):
        exported = mlflow_export.export(results, mlflow_uri, experiment, data_dir=data_dir)
        if as_json:
            print(json.dumps(exported.to_json()))
        else:
            out.print(exported.summary(), highlight=False, soft_wrap=True)


@app.command()
def bench(
    models: Annotated[str, typer.Option(help="Comma list of models to bench (default: every seed model).")] = ",".join(
        ("seed-ae", "seed-simple", "seed-deep", "seed-conv", "seed-deepconv", "seed-flexible")
    ),
    dataset: Dataset = "fashion-mnist",
    data_dir: DataDir = None,
    epochs: Annotated[
        int, typer.Option(help="Epochs per mode; the first is warm-up and not timed when there are more.")
    ] = 2,
    batch_size: BatchSize = 128,
    train_size: TrainSize = None,
    device: Device = "auto",
    clock_check: Annotated[
        bool,
        typer.Option("--clock-check/--no-clock-check", help="Also check reported throughput against the wall clock."),
    ] = True,
    stack: Annotated[
        int,
        typer.Option(
            help="Also train this many seeds of each stackable model (no BatchNorm or dropout) as one stack, "
            "in fp32; 0 or 1: no stack row. Its speed-up and efficiency count per model-epoch."
        ),
    ] = 0,
    results: Results = Path("results"),
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Time the seed's loop, aebench's engine (fp32, bf16; on CUDA also without its CUDA graph; on a CPU, for
    plain MLPs, also with autograd's step instead of the written-out one; with --stack also a stack of seeds)
    and each model's floor, in one process.

    Prints speed-up over the seed loop, efficiency (floor / achieved) and test MSE after the same epochs;
    saves the JSON under <results>/benchmarks/.
    """
    from aebench.bench.run import BenchSpec, drifted_floors, run_bench, save_bench

    with _errors(debug, as_json):
        cfgmod.check_number("--epochs", epochs, low=1)
        cfgmod.check_number("--batch-size", batch_size, low=1)
        cfgmod.check_number("--stack", stack, low=0)
        if train_size is not None:
            cfgmod.check_number("--train-size", train_size, low=1)
        spec = BenchSpec(
            models=tuple(cfgmod.split_list("--models", models)),
            dataset=cfgmod.check_choice("--dataset", dataset, cfgmod.DATASETS),
            epochs=epochs, batch_size=batch_size, train_size=train_size, device=device, stack=stack,
            data_dir=None if data_dir is None else str(data_dir),
        )  # fmt: skip
        with err.status("benching") as status:
            result = run_bench(spec, report=lambda msg: status.update(f"benching {msg}"), check_clock=clock_check)
        path = save_bench(result, results)
        if as_json:
            print(json.dumps({**result, "saved": str(path)}))
            return
        out.print(_bench_table(result))
        for line in drifted_floors(result["rows"]):
            err.print(f"warning: {line}", highlight=False)
        if "clock_check" in result:
            c = result["clock_check"]
            out.print(
                f"clock check ({c['model']}): epochs 2-3 took {c['measured_s']:.2f} s, reported throughput predicts "
                f"{c['predicted_s']:.2f} s (ratio {c['ratio']:.2f})",
                highlight=False,
            )
        err.print(f"saved {path}", highlight=False)


def _bench_table(result: dict[str, Any]) -> Table:
    table = Table(
        title=f"aebench bench on {result['device_name']} (torch {result['torch_version']}), {result['dataset']}, "
        f"{result['train_size']:,} images, batch {result['batch_size']}, {result['epochs']} epochs"
    )
    columns = ("model", "mode", "s/epoch", "range", "img/s", "vs seed loop", "efficiency", "test MSE", "MSE vs ref")
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "mode") else "right", no_wrap=True)

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else fmt.format(value)

    for r in result["rows"]:
        spread = (r["epoch_s_max"] - r["epoch_s_min"]) / r["epoch_s"] if "epoch_s_max" in r else None
        table.add_row(
            r["model"], r["mode"], f"{r['epoch_s']:.3f}", num(spread, "{:.0%}"), f"{r['samples_per_s']:,.0f}",
            f"{r['speedup_vs_seed_loop']:.2f}x", num(r.get("efficiency"), "{:.2f}"),
            num(r.get("test_mse"), "{:.5f}"), num(r.get("mse_vs_reference"), "{:.3f}"),
        )  # fmt: skip
    table.caption = (
        "efficiency = floor / achieved, floor = the step's GEMMs (im2col GEMMs for convolutions, which a direct "
        "convolution can beat), each (on a CPU) through the faster of torch and oneDNN, + one fused Adam update "
        "in the same precision, timed before and after the model's training and the faster kept; "
        "a stack's s/epoch and img/s are the whole stack's, its speed-up and efficiency per model-epoch; "
        "MSE vs ref: fp32 modes against the seed loop, bf16 modes against engine-fp32; "
        "range = (max - min) / median of the timed epochs (of a floor: of its samples), a measure of the noise"
    )
    return table


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (a CI timeout, `kill`) stops like Ctrl-C: the run in flight is dropped, not half-stored.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    # A shell starts background jobs with SIGINT ignored, and Python then leaves it ignored;
    # an explicit SIGINT (Ctrl-C, `kill -INT`, a CI runner) must still stop a grid cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    app(args=argv)


if __name__ == "__main__":
    main()
