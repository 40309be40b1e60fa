"""The `aebench` command line: each command parses, calls one library function, and prints what it returns.

Here: the Typer app, the commands and `main`. The options live in `options`, the consoles, exit codes
and the one-line-error group in `console`, the tables and lines in `render`, the bars in `progress`;
what a command does lives in the library (`aebench.api` and the layers below), so a notebook or a
script can do the same without this module. Every library import is deferred into the commands:
`aebench --help` must not import torch or pandas.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aebench.cli import options as opts
from aebench.cli.compare import compare
from aebench.cli.console import OneLineErrors, errors, print_json, stderr, stdout
from aebench.cli.export import export_app, import_cmd
from aebench.cli.fit import print_fitted
from aebench.errors import BadInput

if TYPE_CHECKING:  # annotations only: importing the grid at start-up would import torch
    pass


app = typer.Typer(
    cls=OneLineErrors,
    help="Benchmark autoencoder architectures on real data: train, compare grids, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def train(
    arch: opts.Arch = "fc",
    depth: opts.Depth = None,
    hidden: opts.Hidden = None,
    option: opts.UserOptions = None,
    latent_dim: opts.LatentDim = None,
    downsample: opts.Downsample = None,
    upsample: opts.Upsample = None,
    activation: opts.Activation = None,
    output: opts.Output = None,
    batchnorm: opts.BatchNorm = None,
    dropout: opts.Dropout = None,
    pretrain: opts.Pretrain = None,
    pretrain_epochs: opts.PretrainEpochs = None,
    dataset: opts.Dataset = "fashion-mnist",
    data_dir: opts.DataDir = None,
    download: opts.Download = True,
    train_size: opts.TrainSize = None,
    lr: opts.Lr = 1e-3,
    batch_size: opts.BatchSize = 128,
    epochs: opts.Epochs = 10,
    val_fraction: opts.ValFraction = 0.1,
    patience: opts.Patience = None,
    min_delta: opts.MinDelta = 0.001,
    equal_steps: opts.EqualSteps = False,
    seed: opts.Seed = 0,
    loss: opts.Loss = "mse",
    grad_clip: opts.GradClip = None,
    lr_schedule: opts.LrSchedule = "none",
    weight_decay: opts.WeightDecay = 0.0,
    precision: opts.Precision = "fp32",
    step: opts.Step = "auto",
    device: opts.Device = "auto",
    results: opts.Results = Path("results"),
    as_json: opts.Json = False,
    debug: opts.Debug = False,
) -> None:
    """Train one config, record it in the results store and print its measurements.

    A config already in the store is not trained again: its stored result is shown.
    """
    from aebench import api, config  # deferred, as in every command: they import torch and pandas
    from aebench.cli import progress, render  # deferred: they import the config types, and torch with them

    with errors(debug, as_json):
        run = config.RunConfig(
            model=config.model_spec(
                arch, depth=depth, hidden=opts.ints("--hidden", hidden), latent_dim=latent_dim, downsample=downsample,
                upsample=upsample, activation=activation, output=output, batchnorm=batchnorm, dropout=dropout,
                pretrain=pretrain, pretrain_epochs=pretrain_epochs,
                options={k: v[0] for k, v in config.option_axes([arch], option or []).items()},
            ),
            dataset=dataset, train_size=train_size, loss=loss, lr=lr, batch_size=batch_size, epochs=epochs,
            seed=seed, weight_decay=weight_decay, grad_clip=grad_clip, lr_schedule=lr_schedule, precision=precision,
            step=step, val_fraction=val_fraction, patience=patience, min_delta=min_delta, equal_steps=equal_steps,
        )  # fmt: skip
        with progress.RichEvents(stderr()) as events:
            trained = api.train(run, results, device=device, data_dir=data_dir, allow_download=download, events=events)
        if as_json:  # `epochs` is the config's count, as in runs.csv; the per-epoch losses are the `curve`
            print_json({**render.outcome_record(trained.outcome), "curve": trained.curve})
        else:
            stdout().print(render.run_table(trained.outcome))
        if trained.outcome.status != "done":
            raise typer.Exit(1)


app.command()(compare)


@app.command()
def models(
    pattern: opts.Pattern = "*",
    dataset: opts.SizedFor = "fashion-mnist",
    as_json: opts.Json = False,
    debug: opts.Debug = False,
) -> None:
    """List the model zoo with parameter counts (for the dataset's image shape) and options."""
    from aebench.cli.render import models_table  # deferred: render imports torch via the config
    from aebench.models.catalog import model_rows  # deferred: building the models imports torch

    with errors(debug):
        rows = model_rows(pattern, dataset)
        if as_json:
            print_json(rows)
            return
        stdout().print(models_table(rows, dataset))


@app.command(name="datasets")
def datasets_cmd(
    data_dir: opts.DataDir = None,
    as_json: opts.Json = False,
    debug: opts.Debug = False,
) -> None:
    """Show where each dataset is found (or where aebench looked)."""
    from aebench.cli.render import datasets_lines, datasets_table  # deferred: render imports torch via the config
    from aebench.data import locate  # deferred: aebench.data imports torch

    with errors(debug):
        places = locate(data_dir)
        if as_json:
            print_json(places.to_json())
            return
        stdout().print(datasets_table(places))
        err = stderr()
        for line in datasets_lines(places):
            err.print(line, highlight=False)


@app.command()
def report(
    results: opts.Results = Path("results"),
    out_dir: opts.ReportOut = None,
    formats: opts.Formats = "md,html",
    figures: opts.Figures = "png,svg",
    only: opts.Only = None,
    where: opts.Where = None,
    data_dir: opts.DataDir = None,
    baseline: opts.Baseline = None,
    fail_on_regression: opts.FailOnRegression = False,
    as_json: opts.Json = False,
    wide: opts.Wide = False,
    debug: opts.Debug = False,
) -> None:
    """Write CSVs, tables, plots, report.md and index.html for the finished runs in a results store.

    Plots the runs cannot fill (an axis with one value) are left out and said so. The store is only read.
    """
    from aebench.cli.render import report_how, report_table  # deferred: render imports torch via the config
    from aebench.report import build as reportmod  # deferred: the report imports pandas and matplotlib
    from aebench.report.baseline import regressions  # deferred, as above
    from aebench.report.pages import summary_lines  # deferred, as above

    with errors(debug):
        if fail_on_regression and baseline is None:
            raise BadInput("--fail-on-regression needs --baseline FOLDER (a report of the study to hold runs to)")
        rep = reportmod.build_report(
            results, out_dir, formats=reportmod.parse_formats(formats), only=reportmod.parse_only(only),
            where=where, data_dir=data_dir, baseline=baseline, figures=reportmod.parse_figures(figures),
        )  # fmt: skip
        if as_json:
            print_json(rep.to_json())
        else:
            out = stdout()
            print_fitted(out, report_table(rep, out.width, wide), report_how(rep))
            for line in summary_lines(rep):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
        worse = [] if rep.baseline is None else regressions(rep.baseline)
        if rep.baseline is not None:
            judged = int(rep.baseline["verdict"].isin(["ok", "regressed", "improved"]).sum())
            stderr().print(f"baseline {baseline}: {judged} configs judged, {len(worse)} worse than it allows"
                           + (f": {', '.join(worse)}" if worse else ""), highlight=False, soft_wrap=True)  # fmt: skip
        if worse and fail_on_regression:
            raise typer.Exit(1)


app.add_typer(export_app, name="export")
app.command(name="import")(import_cmd)


@app.command()
def bench(
    models: opts.BenchModels = None,
    dataset: opts.Dataset = "fashion-mnist",
    data_dir: opts.DataDir = None,
    epochs: opts.BenchEpochs = 3,
    batch_size: opts.BatchSize = 128,
    train_size: opts.TrainSize = None,
    device: opts.Device = "auto",
    clock_check: opts.ClockCheck = True,
    stack: opts.BenchStack = 0,
    results: opts.Results = Path("results"),
    as_json: opts.Json = False,
    wide: opts.Wide = False,
    debug: opts.Debug = False,
) -> None:
    """Time the seed's loop, aebench's engine (fp32, bf16; on CUDA also without its CUDA graph; on a CPU, for
    plain MLPs, also with autograd's step instead of the written-out one; with --stack also a stack of seeds)
    and each model's floor, in one process.

    Prints speed-up over the seed loop, efficiency (floor / achieved) and test MSE after the same epochs;
    saves the JSON under <results>/benchmarks/.
    """
    from aebench.bench.run import EFFICIENCY_NOTE, BenchSpec, bench_and_save  # deferred: the bench imports torch
    from aebench.cli.render import BENCH_HOW, bench_table, clock_line  # deferred: render imports torch (config)
    from aebench.config import split_list  # deferred: aebench.config imports torch
    from aebench.models.zoo import SEED_MODELS  # deferred, as above

    with errors(debug, as_json):
        spec = BenchSpec(
            models=tuple(split_list("--models", models)) if models is not None else SEED_MODELS, dataset=dataset,
            epochs=epochs, batch_size=batch_size,
            train_size=train_size, device=device, stack=stack, data_dir=None if data_dir is None else str(data_dir),
        )  # fmt: skip
        err = stderr()
        with err.status("benching") as status:
            done = bench_and_save(
                spec, results, report=lambda msg: status.update(f"benching {msg}"), check_clock=clock_check
            )
        if as_json:
            print_json({**done.result, "saved": str(done.saved)})
            return
        out = stdout()
        print_fitted(out, bench_table(done.result, EFFICIENCY_NOTE, out.width, wide), BENCH_HOW)
        for line in done.drifted:
            err.print(f"warning: {line}", highlight=False)
        if "clock_check" in done.result:
            out.print(clock_line(done.result["clock_check"]), highlight=False)
        err.print(f"saved {done.saved}", highlight=False)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (a CI timeout, `kill`) stops like Ctrl-C: the run in flight is dropped, not half-stored.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    """The `aebench` script and `python -m aebench`: stop cleanly on SIGTERM and SIGINT, then run the app."""
    signal.signal(signal.SIGTERM, _terminate)
    # A shell starts background jobs with SIGINT ignored, and Python then leaves it ignored;
    # an explicit SIGINT (Ctrl-C, `kill -INT`, a CI runner) must still stop a grid cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    app(args=argv)


if __name__ == "__main__":
    main()
