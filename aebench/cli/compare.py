"""`aebench compare`: a grid from flags, a preset or a grid file, trained (or planned with --dry-run), its table
and its own speed printed.

Apart from `app` so that each front door stays small; every library import is deferred into the command, as in
`app`, so `aebench --help` imports neither torch nor pandas.
"""

from __future__ import annotations

import inspect
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from aebench.cli import options as opts
from aebench.cli.console import errors, print_json, print_outcomes, stderr, stdout
from aebench.cli.fit import print_fitted
from aebench.errors import BadInput

if TYPE_CHECKING:  # annotations only: importing the grid at start-up would import torch
    from aebench.api import GridSpeed
    from aebench.config import GridSpec, RunConfig
    from aebench.grid.cells import Outcome


def compare(
    archs: opts.Archs = None,
    preset: opts.Preset = None,
    grid_file: opts.GridFileOption = None,
    list_presets: opts.ListPresets = False,
    depths: opts.Depths = None,
    latent_dims: opts.LatentDims = None,
    downsample: opts.Downsamples = None,
    upsample: opts.Upsamples = None,
    activations: opts.Activations = None,
    outputs: opts.Outputs = None,
    pretrain: opts.Pretrains = None,
    losses: opts.Losses = "mse",
    lrs: opts.Lrs = "0.001",
    batch_sizes: opts.BatchSizes = "128",
    datasets: opts.Datasets = "fashion-mnist",
    seeds: opts.Seeds = 1,
    hidden: opts.Hidden = None,
    option: opts.UserOptions = None,
    batchnorm: opts.BatchNorm = None,
    dropout: opts.Dropout = None,
    pretrain_epochs: opts.PretrainEpochs = None,
    train_size: opts.TrainSize = None,
    epochs: opts.Epochs = 10,
    val_fraction: opts.ValFraction = 0.1,
    patience: opts.Patience = None,
    min_delta: opts.MinDelta = 0.001,
    equal_steps: opts.EqualSteps = False,
    baselines: opts.Baselines = True,
    seed: opts.Seed = 0,
    grad_clip: opts.GradClip = None,
    lr_schedule: opts.LrSchedule = "none",
    weight_decay: opts.WeightDecay = 0.0,
    precision: opts.Precision = "fp32",
    step: opts.Step = "auto",
    data_dir: opts.DataDir = None,
    download: opts.Download = True,
    device: opts.Device = "auto",
    results: opts.Results = Path("results"),
    stack: opts.Stack = None,
    dry_run: opts.DryRun = False,
    workers: opts.Workers = None,
    executor: opts.Executor = "local",
    ray_address: opts.RayAddress = None,
    cpus_per_run: opts.CpusPerRun = None,
    gpus_per_run: opts.GpusPerRun = None,
    here: opts.Here = False,
    mlflow: opts.Mlflow = False,
    mlflow_uri: opts.MlflowUri = None,
    experiment: opts.Experiment = None,
    as_json: opts.Json = False,
    wide: opts.Wide = False,
    debug: opts.Debug = False,
) -> None:
    """Train every cell of a grid over archs, depths, latent dims, ...; resume what is done.

    Axes that do not apply to an arch (--downsample for fc) are collapsed for it, not
    run twice. Cells already done in the store are skipped and said so.
    """
    from aebench import api, config, data  # deferred, as in every command: they import torch and pandas
    from aebench.cli import progress, render  # deferred: they import the config types, and torch with them
    from aebench.grid import gridfile, presets  # deferred, as above

    with errors(debug, as_json, wide):
        if list_presets:
            rows = presets.listing()
            print_json(rows) if as_json else stdout().print(render.presets_table(rows))
            return
        grid = config.GridSpec(
            archs=tuple(dict.fromkeys(config.split_list("--archs", archs or "fc"))),
            depths=opts.choices("--depths", depths, config.DEPTHS),
            latent_dims=opts.ints("--latent-dims", latent_dims),
            downsample=opts.choices("--downsample", downsample, config.DOWNSAMPLES),
            upsample=opts.choices("--upsample", upsample, config.UPSAMPLES),
            activations=opts.choices("--activations", activations, config.ACTIVATIONS),
            outputs=opts.choices("--outputs", outputs, config.OUTPUTS),
            pretrain=opts.choices("--pretrain", pretrain, config.PRETRAINS),
            losses=config.parse_choices("--losses", losses, config.LOSSES),
            lrs=config.parse_floats("--lrs", lrs),
            batch_sizes=config.parse_ints("--batch-sizes", batch_sizes),
            datasets=tuple(data.check_name(d) for d in config.split_list("--datasets", datasets)),
            seeds=seeds,
            base=config.RunConfig(
                model=config.ModelSpec(arch="fc"), train_size=train_size, epochs=epochs, seed=seed,
                weight_decay=weight_decay, grad_clip=grad_clip, lr_schedule=lr_schedule, precision=precision,
                step=step, val_fraction=val_fraction, patience=patience, min_delta=min_delta,
            ),
            fixed={"hidden": opts.ints("--hidden", hidden), "batchnorm": batchnorm, "dropout": dropout,
                   "pretrain_epochs": pretrain_epochs},
            equal_steps=equal_steps,
            options=config.option_axes(config.split_list("--archs", archs or "fc"), option or []),
        )  # fmt: skip
        axes = {
            "--archs": archs,
            "--depths": depths,
            "--latent-dims": latent_dims,
            "--downsample": downsample,
            "--upsample": upsample,
            "--activations": activations,
            "--outputs": outputs,
            "--pretrain": pretrain,
        }
        if grid_file is not None and preset is not None:
            raise BadInput("--grid and --preset both given; a preset is a grid file too, so give one of them")
        if grid_file is not None:
            # the options the command line changed from their defaults: one the file sets too is refused
            values, defaults = dict(locals()), inspect.signature(compare).parameters
            given = {k for k in gridfile.KEYS if k in values and values[k] != defaults[k].default}
            cells: GridSpec | list[RunConfig] = gridfile.cells(gridfile.read(grid_file), grid, given)
        else:
            cells = presets.cells(preset, grid, axes)
        request = api.MlflowRequest(enabled=mlflow, uri=mlflow_uri, experiment=experiment)
        if dry_run:
            plan = api.compare_plan(cells, results, executor=executor, request=request, baselines=baselines)
            if as_json:
                print_json(plan.to_dict("records"))
            else:
                out = stdout()
                title = f"grid of {len(plan)} cells (dry run: nothing trained)"
                print_fitted(out, render.plan_table(plan, title, out.width, wide), render.PLAN_HOW)
            return
        err = stderr()
        with ExitStack() as bars:
            events = bars.enter_context(progress.RichEvents(err))

            def show(outcomes: list[Outcome], speed: GridSpeed) -> None:
                bars.close()  # the grid is done: its bars stop before its table and any MLflow export
                if as_json:  # the runs as `train --json` gives each, and the grid's own speed
                    print_json({"runs": [render.outcome_record(o) for o in outcomes], "grid": speed.to_dict()})
                else:
                    print_outcomes(outcomes, False, wide=wide)
                    err.print(render.speed_line(speed), highlight=False, soft_wrap=True)

            result = api.compare(
                cells, results, executor=executor, request=request, stack=stack, device=device, data_dir=data_dir,
                allow_download=download, events=events, on_trained=show, here=here, baselines=baselines,
                workers=workers,
                executor_options={"address": ray_address, "cpus_per_run": cpus_per_run, "gpus_per_run": gpus_per_run},
            )  # fmt: skip
        if result.elsewhere:
            err.print(render.elsewhere_line(result.elsewhere, result.here), highlight=False, soft_wrap=True)
        if result.exported is not None:
            err.print(result.exported.summary(), highlight=False, soft_wrap=True)
        if result.unfinished:
            err.print(render.unfinished_line(result.failed, result.diverged, len(result.outcomes)))
        err.print(render.next_line(results), highlight=False, soft_wrap=True)
        if result.unfinished:
            raise typer.Exit(1)
