"""Compare experiments: several searches side by side, or the stages of a staged search.

    python -m analysis EXP1 EXP2 ...   # into comparison-<time> beside EXP1
    python -m analysis RUN             # a staged search's stages, into RUN/analysis

One row per experiment (its trials, the trial-epochs it spent, its best and baseline scores), the
keys in which the experiments' best configurations differ, and the best score so far against the
trial-epochs spent. Data first (the functions returning DataFrames), drawing second (``plots``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd

from analysis import plots
from analysis.formats import FORMATS, PLOTS_DIR, TABLES_DIR, write_table
from analysis.html import write_html
from analysis.load import Experiment, load_experiment
from search_spaces.base import SIGNIFICANT_DIGITS, rounded
from trainable.config import flatten
from trainable.errors import UserError
from trainable.layout import EXPERIMENT_FILE, STAGES_FILE, stage_dir_name, trial_dirs
from trainable.metrics import search_metric

__all__ = ["COMPARISON_FILE", "CURVE_FILE", "best_so_far", "comparison_table", "config_differences", "default_out",
           "load_experiments", "stage_dirs", "write_comparison"]

COMPARISON_FILE, CURVE_FILE = "comparison.md", "best_so_far.png"
_HERE = "<experiment>"  # stands for an experiment's own folder in a path-valued config key


def stage_dirs(run: Path) -> list[Path] | None:
    """The stage experiments of the staged search ``run`` that have started (a folder with its record
    and a trial), in stage order; None when ``run`` holds no ``stages.json`` (or is an experiment itself)."""
    file = run / STAGES_FILE
    if not file.is_file() or (run / EXPERIMENT_FILE).is_file():
        return None
    try:
        spaces = json.loads(file.read_text())["spaces"]
        if not isinstance(spaces, list) or not all(isinstance(s, str) for s in spaces):
            raise ValueError("'spaces' is not a list of names")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{file}: unreadable as a staged search's stages ({e})") from None
    planned = [run / stage_dir_name(i, space) for i, space in enumerate(spaces, 1)]
    started = [d for d in planned if (d / EXPERIMENT_FILE).is_file() and trial_dirs(d)]
    if not started:
        raise UserError(f"{run}: no stage of the staged search ({', '.join(d.name for d in planned)}) has a trial "
                        f"yet; run or resume it first")
    return started


def load_experiments(paths: list[Path]) -> list[Experiment]:
    """Load ``paths`` to compare them; experiments ranked by different metrics, a path given twice and a
    staged search's folder among others are refused with one line."""
    for path in paths:
        if (path / STAGES_FILE).is_file() and not (path / EXPERIMENT_FILE).is_file():
            raise UserError(f"{path}: a staged search, not one experiment; compare its stages alone (python -m "
                            f"analysis {path}) or name its stage folders")
    seen: dict[Path, Path] = {}
    for path in paths:
        if path.resolve() in seen:
            raise UserError(f"{path}: given twice; name each experiment once")
        seen[path.resolve()] = path
    exps = [load_experiment(p) for p in paths]
    first = exps[0]
    for exp in exps[1:]:
        if exp.record.metric != first.record.metric:
            raise UserError(f"{first.path} ranks by {first.record.metric_name} and {exp.path} by "
                            f"{exp.record.metric_name}: only experiments with the same metric compare")
    return exps


def default_out(first: Path) -> Path:
    """``comparison-<YYYYmmdd-HHMMSS>`` beside the experiment ``first``."""
    return first.resolve().parent / f"comparison-{time.strftime('%Y%m%d-%H%M%S')}"


def _names(exps: list[Experiment]) -> list[str]:
    """Each experiment's folder name; ``parent/name`` where two folders share a name."""
    names = [e.path.name for e in exps]
    return [f"{e.path.resolve().parent.name}/{n}" if names.count(n) > 1 else n for e, n in zip(exps, names)]


def _best_and_baseline(exp: Experiment) -> tuple[pd.Series | None, float]:
    """The best ranked trial's summary row (None when no trial ranks) and the baseline's score (NaN
    without a ranked baseline; the mean over an ablation's baseline seeds)."""
    summary = exp.summary()
    ranked = summary.dropna(subset=["rank"])
    best = ranked.loc[ranked["rank"].idxmin()] if not ranked.empty else None
    base = ranked.loc[ranked["is_baseline"], "score"]
    return best, float(base.mean()) if len(base) else math.nan


def comparison_table(exps: list[Experiment]) -> pd.DataFrame:
    """One row per experiment: name, space, trials, trial-epochs (every reported epoch counts one), best
    and baseline score (headed by the metric's name), gain, data, challenge, and "from" (the parent
    experiment and trial) when any experiment started from another's trial."""
    name = exps[0].record.metric_name
    rows = []
    for label, exp in zip(_names(exps), exps):
        r = exp.record
        best, base = _best_and_baseline(exp)
        score = float(best["score"]) if best is not None else math.nan
        rows.append({"experiment": label, "space": r.space, "trials": len(exp.trials), "trial-epochs": len(exp.epochs),
                     f"best {name}": rounded(score), f"baseline {name}": rounded(base), "gain": rounded(score - base),
                     "data": r.config.data.root or "synthetic", "challenge": r.challenge or "-",
                     "from": f"{Path(r.parent).name}/{r.parent_trial}" if r.parent else "-"})
    table = pd.DataFrame(rows)
    return table if (table["from"] != "-").any() else table.drop(columns="from")


def _comparable(value: object, exp: Experiment) -> object:
    """``value`` with the experiment's own folder replaced by a placeholder when it is a path inside it,
    so that keys such as ``data.holdout`` that differ only by folder compare equal."""
    if not isinstance(value, str) or not value:
        return value
    parts = Path(value).parts
    for folder in (exp.path.name, exp.record.name):
        if folder in parts[:-1]:
            return str(Path(_HERE, *parts[parts.index(folder) + 1:]))
    return value


def config_differences(exps: list[Experiment]) -> pd.DataFrame:
    """The config keys (dotted, one row each) in which the experiments' best trials differ, one column per
    experiment; a key missing from a config shows "-". Paths inside each experiment's own folder that
    differ only by that folder are left out."""
    configs = {}
    for label, exp in zip(_names(exps), exps):
        best, _ = _best_and_baseline(exp)
        if best is not None:
            configs[label] = (exp, flatten(exp.params(best["trial"])))
    keys = sorted({k for _, c in configs.values() for k in c})
    rows = {}
    for key in keys:
        seen = [_comparable(c.get(key, "-"), exp) for exp, c in configs.values()]
        if any(v != seen[0] for v in seen[1:]):
            rows[key] = [_shown(c.get(key, "-")) for _, c in configs.values()]
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(configs)).rename_axis("key")


def _shown(v: object) -> object:
    return ",".join(map(str, v)) if isinstance(v, list) else rounded(v)


def best_so_far(exps: list[Experiment], staged: bool = False) -> pd.DataFrame:
    """One row per reported epoch of every experiment, in the order the results came (their timestamps):
    ``trial_epochs`` spent when it came (every reported epoch is one; for a staged search counted over the
    whole run, so stage k starts where stage k-1 ended: ``start`` is what was spent before the
    experiment), the metric's ``value`` and the experiment's ``best`` so far (the running max, or min for
    mode "min", of the values reported)."""
    frames, start = [], 0
    for label, exp in zip(_names(exps), exps):
        r = exp.record
        e = exp.epochs.sort_values(["timestamp", "epoch", "trial"], na_position="last", kind="stable")
        values = e[r.metric].astype(float).reset_index(drop=True)
        best = (values.cummax() if r.mode == "max" else values.cummin()).ffill()
        frames.append(pd.DataFrame({
            "experiment": label, "label": label if r.space in label else f"{label} ({r.space})",
            "trial": e["trial"].to_numpy(), "epoch": e["epoch"].to_numpy(), "timestamp": e["timestamp"].to_numpy(),
            "start": start, "trial_epochs": range(start + 1, start + len(e) + 1), "value": values, "best": best}))
        if staged:
            start += len(e)
    return pd.concat(frames, ignore_index=True)


def _display(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with its numbers as text of ``SIGNIFICANT_DIGITS`` significant digits (a missing one as "-")."""
    def cell(v: object) -> object:
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.{SIGNIFICANT_DIGITS}g}"
        return v
    return df.map(cell)


def write_comparison(exps: list[Experiment], out: Path, formats: tuple[str, ...] = FORMATS,
                     staged: bool = False) -> Path:
    """Write the comparison of ``exps`` (the stages of one search when ``staged``) into ``out``: the
    tables, ``best_so_far.png``, ``comparison.md`` and ``comparison.html``; returns the path of comparison.md."""
    r = exps[0].record
    metric = search_metric(r.metric)
    table, differences, curves = comparison_table(exps), config_differences(exps), best_so_far(exps, staged)
    out.mkdir(parents=True, exist_ok=True)
    (out / PLOTS_DIR).mkdir(exist_ok=True)
    plots.plot_best_so_far(curves, out / PLOTS_DIR / CURVE_FILE, r.metric, staged)
    if "csv" in formats:
        (out / TABLES_DIR).mkdir(exist_ok=True)
        curves.to_csv(out / TABLES_DIR / "best_so_far.csv", index=False)

    what = (f"the {len(exps)} stages of the staged search `{exps[0].path.resolve().parent.name}`" if staged
            else f"{len(exps)} experiments")
    md = [f"# Comparison of {what}", "",
          *[f"- `{label}`: `{exp.path}`" for label, exp in zip(_names(exps), exps)], "",
          "## Experiments", "",
          f"*trial-epochs*: the epochs all trials reported together, the compute the search spent. *best*: the "
          f"{metric.name} of the best trial as `analysis.rank` ranks them (at its last epoch); *baseline*: the "
          f"baseline configuration's, which every experiment evaluates first; *gain*: best - baseline"
          + ("; *from*: the experiment and trial whose configuration was the baseline." if "from" in table
             else "."), "",
          write_table(_display(table), out, "comparison", f"Experiments compared by {metric.name}", formats),
          "## Where the best configurations differ", ""]
    if differences.empty:
        md += ["The best trials' configurations agree in every key.", ""]
    else:
        md += ["The config keys whose values differ between the experiments' best trials.", "",
               write_table(_display(differences), out, "best_config_differences",
                           "Keys where the best configurations differ", formats)]
    md += [f"## Best {metric.name} so far", "",
           f"The best {metric.name} any trial of the experiment had reported, against the trial-epochs spent, in "
           f"the order the results came" + ("; each stage starts where the one before it ended." if staged else "."),
           "", f"![best {metric.name} so far]({PLOTS_DIR}/{CURVE_FILE})", ""]
    report = out / COMPARISON_FILE
    report.write_text("\n".join(md))
    write_html(report)
    return report
