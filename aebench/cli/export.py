"""`aebench export` (a results store's runs sent to the tools a team already uses, MLflow) and `aebench import`
(a published study's report folder back into a store).

Apart from `app` so that each front door stays small; every library import is deferred into the command, as
in `app`, so `aebench --help` imports neither torch nor MLflow.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aebench.cli import options as opts
from aebench.cli.console import errors, print_json, stdout

export_app = typer.Typer(help="Send a results store's runs to the tools a team already uses.", no_args_is_help=True)


@export_app.command(name="mlflow")
def export_mlflow(
    results: opts.Results = Path("results"),
    mlflow_uri: opts.MlflowUri = None,
    experiment: opts.Experiment = None,
    data_dir: opts.DataDir = None,
    as_json: opts.Json = False,
    debug: opts.Debug = False,
) -> None:
    """Log every run of a results store to MLflow: config, curves, metrics, checkpoint, reconstructions.

    The store's runs become one parent run with a child per run. Runs already logged are
    left alone, or replaced where the store has a newer result; the store is only read.
    """
    from aebench.integrations import mlflow as mlflow_export  # deferred: it imports torch and matplotlib

    with errors(debug):
        exported = mlflow_export.export(results, mlflow_uri, experiment, data_dir=data_dir)
        if as_json:
            print_json(exported.to_json())
        else:
            stdout().print(exported.summary(), highlight=False, soft_wrap=True)


def import_cmd(
    folder: opts.StudyFolder,
    results: opts.Results = Path("results"),
    as_json: opts.Json = False,
    debug: opts.Debug = False,
) -> None:
    """Put a study's runs (the runs.csv and epochs.csv its report wrote) back into a results store.

    Then `aebench report` reports it again with this aebench, and `aebench compare` trains beside it (PCA, more
    seeds) and skips what it holds. Each row's config must give the row's own run id; checkpoints are not in a
    report folder, so pictures that need them are not drawn.
    """
    from aebench.grid.restore import import_study  # deferred: the store imports torch through the config

    with errors(debug, as_json):
        done = import_study(folder, results)
        if as_json:
            print_json({"written": done.written, "kept": done.kept, "epochs": done.epochs})
        else:
            stdout().print(done.summary(results), highlight=False, soft_wrap=True)
