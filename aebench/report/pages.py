"""The report as pages: report.md (PNG files beside it), a self-contained index.html, and the terminal's lines.

The terminal's table of the report is the CLI's (`aebench.cli.render.report_table`): it fits the terminal.

Every string that comes from the store (config values, labels, errors, paths) is escaped
for the page it goes into, `html.escape` for index.html and `_md` for report.md: a config value
is data, never markup.
"""

from __future__ import annotations

import base64
import html
import re
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from aebench.columns import config_label, missing, plain
from aebench.report.baseline import FLOOR
from aebench.report.contents import Drawn, Report

TITLES = {
    "learning_curves": "Learning curves",
    "mse_vs_latent": "Exercise 1: quality against latent dim",
    "mse_by_depth": "Exercise 5: is deeper better?",
    "stride_vs_pool": "Exercise 4: stride against pool",
    "pareto_params": "Quality against parameters (Pareto front)",
    "pareto_flops": "Quality against FLOPs (Pareto front)",
    "throughput": "Throughput",
    "reconstructions": "Reconstructions",
    "latent_space": "Exercise 2: the 2-d latent space",
    "latent_grid": "Exercise 2: decoding the latent plane",
    "interpolation": "Exercise 3: interpolation",
    "latent_arithmetic": "Exercise 2: latent arithmetic",
    "feature_maps": "First conv layer's feature maps",
}
FILES = {
    "runs.csv": "one row per reported run: every config axis, every metric, the run's record",
    "epochs.csv": "one row per run and epoch: train and test loss, seconds, learning rate",
}
_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 1em 2em 4em; color: #1d1d1f; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; margin: 0.2em 0; }
nav { columns: 3; font-size: 14px; margin: 1em 0; } nav a { display: block; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 3px 6px; white-space: nowrap; }
th { background: #f3f3f5; white-space: normal; vertical-align: bottom; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; } td.best { background: #e3f4e1 !important; font-weight: 600; }
figure { margin: 1.2em 0 2.2em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #333; margin-top: 0.4em; } li { margin: 0.2em 0; } code { background: #f3f3f5; padding: 0 3px; }
"""


def generated_at() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _md(value: object) -> str:
    """Text for Markdown, escaped for Markdown only: `<` and `>` as entities (renderers pass raw HTML through), `&`
    where it would start one; quotes stay as they are (no `&#x27;` to read in the file); pipes, brackets, stars and
    backticks backslash-escaped so a value cannot end a table cell, a link or start emphasis."""
    text = re.sub(r"&(?=#?\w+;)", "&amp;", str(value)).replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    for char in "\\|[]*`_":
        text = text.replace(char, "\\" + char)
    return text


def _numeric(column: pd.Series) -> bool:
    return all(str(v)[:1].isdigit() or str(v) == "-" for v in column)


# Training settings the header states when every run shares them (those that vary are table columns).
SHARED_SETTINGS = ("dataset", "train_size", "epochs", "batch_size", "lr", "loss", "precision", "step")


def _context_lines(report: Report) -> list[str]:
    """Plain-text lines saying what the report covers: store, filter, runs left out, where it was measured."""
    sel = report.selection
    runs = sel.runs
    lines = [f"Store {sel.results / 'aebench.db'}: {len(runs)} runs in {len(report.configs)} configs."]
    if sel.where:
        lines.append("Filter: --where " + ",".join(f"{k}={'|'.join(v)}" for k, v in sel.where.items()) + ".")
    if not sel.left_out.empty:
        counts = ", ".join(f"{n} {s}" for s, n in sel.left_out["status"].value_counts().items())
        lines.append(f"Left out (not done): {counts}; listed under Runs left out.")
    shared = []
    for col in SHARED_SETTINGS:
        seen = {None if missing(v) else plain(v) for v in runs.get(col, pd.Series(dtype=object))}
        if len(seen) == 1:
            (value,) = seen
            shared.append(f"{col.replace('_', ' ')} {value if value is not None else 'all'}")
    if shared:  # what a reader must know to read any number below; settings that vary are columns instead
        lines.append("Every run: " + ", ".join(shared) + ".")
    conv = report.convergence()
    if conv["judged"]:
        lines.append(f"Converged: {conv['converged']} of {conv['judged']} trained configs ({conv['rule']}).")
    for col, what in (("device_name", "Measured on"), ("torch_version", "torch"), ("git_commit", "aebench commit")):
        values = sorted({str(v) for v in runs.get(col, pd.Series(dtype=object)).dropna()})
        if values:
            lines.append(f"{what}: {', '.join(values)}.")
    return lines


def _left_out_rows(report: Report) -> pd.DataFrame:
    left = report.selection.left_out
    axes = report.configs.attrs.get("axes", ["arch"])
    return pd.DataFrame(
        {
            "run": [str(r)[:8] for r in left["run_id"]],
            "config": [config_label(r, [a for a in axes if a in left.columns]) for _, r in left.iterrows()],
            "status": left["status"],
            "error": [("" if missing(e) else str(e)) for e in left.get("error", pd.Series([None] * len(left)))],
        }
    )


# ---- Markdown ----


def _md_table(df: pd.DataFrame, best: pd.DataFrame | None = None) -> str:
    head = "| " + " | ".join(_md(c) for c in df.columns) + " |"
    rule = "| " + " | ".join("---:" if _numeric(df[c]) else "---" for c in df.columns) + " |"
    rows = []
    for i in df.index:
        cells = []
        for c in df.columns:
            text = _md(df.at[i, c])
            cells.append(f"**{text}**" if best is not None and bool(best.at[i, c]) else text)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *rows])


BASELINE_NOTE = (
    "Each config's mean test MSE over its seeds against the baseline's mean ± 95% CI; limit is the most it may be: "
    "the upper end of a prediction interval for the mean of this many seeds, from the baseline's spread, and never "
    f"less than {FLOOR:.0%} above the baseline's mean. Below the interval's lower end (at least {FLOOR:.0%} below "
    "the mean) a config is improved: shown, not failed. A seed the baseline also ran repeats one of its samples."
)


def _baseline_rows(table: pd.DataFrame) -> pd.DataFrame:
    def num(v: object) -> str:
        return "-" if missing(v) else f"{float(v):.5f}"  # type: ignore[arg-type]

    return pd.DataFrame({
        "config": table["config"],
        "seeds": [f"{n} ({k} also in the baseline)" if k else str(n)
                  for n, k in zip(table["seeds"], table["shared_seeds"], strict=True)],
        "test MSE": [num(v) for v in table["test_mse"]],
        "baseline": [f"{num(m)} ± {num(c)} ({n} seeds)" for m, c, n in
                     zip(table["baseline_mean"], table["baseline_ci95"], table["baseline_seeds"], strict=True)],
        "limit": [num(v) for v in table["limit"]], "improved below": [num(v) for v in table["improved_below"]],
        "verdict": table["verdict"],
    })  # fmt: skip


def _has(drawn: Drawn, suffix: str) -> bool:
    return any(p.suffix == suffix for p in drawn.files)


def _shown(drawn: Drawn) -> str:
    """The file a page shows: the PNG, or the SVG where the report wrote no PNG (`--figures svg`)."""
    return f"{drawn.name}.png" if _has(drawn, ".png") else f"{drawn.name}.svg"


def _environment_rows(report: Report) -> pd.DataFrame:
    return pd.DataFrame(report.environment, columns=["what", "value"])


def markdown(report: Report) -> str:
    parts = [
        "# aebench report",
        "",
        *[_md(line) + "  " for line in _context_lines(report)],
        f"Generated {generated_at()}.",
        "",
    ]
    if report.findings:
        parts += ["## At a glance", "", *[f"- {_md(f.sentence())}" for f in report.findings], ""]
    if not report.answers.empty:
        parts += ["## Best config per question", "", _md_table(report.answers), ""]
    if report.baseline is not None:
        parts += ["## Against the baseline", "", BASELINE_NOTE, "", _md_table(_baseline_rows(report.baseline)), ""]
    parts += [
        "## Results by config",
        "",
        "Mean ± 95% CI over seeds (Student's t; none with one seed); **bold**: the best in its column"
        + (f" ({report.not_ranked})." if report.not_ranked else "."),
        "",
        _md_table(report.summary, report.best),
        "",
    ]
    if report.drawn:
        parts += ["## Plots", ""]
        for d in report.drawn:
            parts += [
                f"### {TITLES[d.name]}",
                "",
                f"![{_md(d.caption)}]({_shown(d)})",
                "",
                f"*{_md(d.caption)}*" + (f" ([SVG]({d.name}.svg))" if _has(d, ".svg") and _has(d, ".png") else ""),
                "",
            ]
    if report.environment:
        parts += ["## Environment", "", _md_table(_environment_rows(report)), ""]
    if report.skipped:
        parts += ["## Not drawn", "", *[f"- `{n}`: {_md(r)}" for n, r in report.skipped.items()], ""]
    if not report.selection.left_out.empty:
        parts += ["## Runs left out", "", _md_table(_left_out_rows(report)), ""]
    parts += ["## Files", "", *[f"- [{n}]({n}): {w}" for n, w in FILES.items()], ""]
    return "\n".join(parts)


# ---- HTML ----


def _html_table(df: pd.DataFrame, best: pd.DataFrame | None = None) -> str:
    numeric = {c: _numeric(df[c]) for c in df.columns}
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = []
    for i in df.index:
        cells = []
        for c in df.columns:
            classes = " ".join(
                k for k, on in (("num", numeric[c]), ("best", best is not None and bool(best.at[i, c]))) if on
            )
            cells.append(f'<td class="{classes}">{_e(df.at[i, c])}</td>' if classes else f"<td>{_e(df.at[i, c])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html_page(report: Report) -> str:
    """One file that opens from disk: CSS inline, every PNG inline as a data URI."""
    body = [
        "<h1>aebench report</h1>",
        *[f'<p class="meta">{_e(line)}</p>' for line in _context_lines(report)],
        f'<p class="meta">Generated {_e(generated_at())}.</p>',
    ]
    toc = [
        ("glance", "At a glance", bool(report.findings)),
        ("best", "Best config per question", True),
        ("baseline", "Against the baseline", report.baseline is not None),
        ("table", "Results by config", True),
        *[(d.name, TITLES[d.name], True) for d in report.drawn],
        ("environment", "Environment", bool(report.environment)),
        ("skipped", "Not drawn", bool(report.skipped)),
        ("left", "Runs left out", not report.selection.left_out.empty),
        ("files", "Files", True),
    ]
    body.append("<nav>" + "".join(f'<a href="#{_e(k)}">{_e(t)}</a>' for k, t, on in toc if on) + "</nav>")
    if report.findings:
        items = "".join(f"<li>{_e(f.sentence())}</li>" for f in report.findings)
        body.append(f'<h2 id="glance">At a glance</h2><ul>{items}</ul>')
    body.append(f'<h2 id="best">Best config per question</h2>{_html_table(report.answers)}')
    if report.baseline is not None:
        body.append(
            f'<h2 id="baseline">Against the baseline</h2><p>{_e(BASELINE_NOTE)}</p>'
            f"{_html_table(_baseline_rows(report.baseline))}"
        )
    body.append(
        '<h2 id="table">Results by config</h2><p>Mean ± 95% CI over seeds (Student\'s t; none with one seed); '
        "highlighted: the best in its column"
        + (f" ({_e(report.not_ranked)})." if report.not_ranked else ".")
        + f"</p>{_html_table(report.summary, report.best)}"
    )
    if report.drawn:
        body.append("<h2>Plots</h2>")
    for d in report.drawn:
        png = next(p for p in d.files if p.suffix == ".png")
        body.append(
            f'<figure id="{_e(d.name)}"><h3>{_e(TITLES[d.name])}</h3>'
            f'<img src="{_data_uri(png)}" alt="{_e(d.caption)}">'
            f"<figcaption>{_e(d.caption)}"
            + (f' <a href="{_e(d.name)}.svg">SVG</a>' if _has(d, ".svg") else "")
            + "</figcaption></figure>"
        )
    if report.environment:
        body.append(f'<h2 id="environment">Environment</h2>{_html_table(_environment_rows(report))}')
    if report.skipped:
        items = "".join(f"<li><code>{_e(n)}</code>: {_e(r)}</li>" for n, r in report.skipped.items())
        body.append(f'<h2 id="skipped">Not drawn</h2><ul>{items}</ul>')
    if not report.selection.left_out.empty:
        body.append(f'<h2 id="left">Runs left out</h2>{_html_table(_left_out_rows(report))}')
    items = "".join(f'<li><a href="{_e(n)}">{_e(n)}</a>: {_e(w)}</li>' for n, w in FILES.items())
    body.append(f'<h2 id="files">Files</h2><ul>{items}</ul>')
    title = f"aebench report: {report.selection.results}"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
        f"<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# ---- terminal ----


def summary_lines(report: Report) -> list[str]:
    """What was written and what was not, for the terminal after the table."""
    lines = [*(f.sentence() for f in report.findings), *_context_lines(report)[1:]]
    pages = [p.name for p in report.files if p.suffix in (".md", ".html")]
    kinds = " and ".join(sorted({p.suffix[1:].upper() for d in report.drawn for p in d.files})) or "PNG"
    lines.append(
        f"wrote {len(report.files)} files to {report.out}: {', '.join([*pages, 'runs.csv', 'epochs.csv'])} "
        f"and {len(report.drawn)} plots as {kinds}"
    )
    lines += [f"not drawn: {name}: {reason}" for name, reason in report.skipped.items()]
    if "index.html" in pages:
        lines.append(f"open {report.out / 'index.html'} in a browser (no server needed)")
    return lines
