"""Write an experiment's report folder: trials.parquet, tables (Markdown, LaTeX, CSV), plots, report.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import plots
from analysis.compare import comparison_table
from analysis.formats import (
    FORMATS,
    PLOTS_DIR,
    REPORT_FILE,
    TABLES_DIR,
    TRIALS_FILE,
    to_latex,
    to_markdown,
    write_table,
)
from analysis.html import write_html
from analysis.load import Experiment
from analysis.tables import (
    ablation_table,
    configurations_table,
    factor_tables,
    importance_table,
    per_class_table,
    schedule_table,
)
from search_spaces.algorithms import SCHEDULERS, SEARCHERS
from trainable.layout import SCHEDULE_FILE
from trainable.metrics import METRICS

__all__ = ["FORMATS", "PLOTS_DIR", "REPORT_FILE", "TABLES_DIR", "TRIALS_FILE", "to_latex", "to_markdown",
           "write_report"]  # the table writers re-exported from analysis.formats

def _describe(exp: Experiment) -> list[str]:
    r = exp.record
    if r.ablation:
        search = (f"one-factor-at-a-time ablation from the baseline, {r.seeds} seed(s) per configuration, "
                  f"every configuration trained for {r.max_t} epochs (no early stopping)")
    else:
        coupling = ("its first population drawn by Tune's generator (no Optuna study)" if r.population else
                    "trials the scheduler stopped are recorded in Optuna as PRUNED")
        search = (f"{r.strategy}, the baseline evaluated first: {SCHEDULERS[r.scheduler].about}, "
                  f"{SEARCHERS[r.searcher].about}; {coupling}")
    base = r.config
    data = "built-in synthetic face-parsing set" if r.synthetic else base.data.root
    weights = "scratch" if base.model.pretrained == "none" else base.model.pretrained
    return [
        f"- **Search space:** `{r.space}` ({', '.join(f'`{k}`' for k in exp.searched)})",
        f"- **Search:** {search}; trials ranked by {r.metric_name} at their last epoch",
        f"- **Budget:** {r.planned_trials} trials, {r.cpus_per_trial:g} CPU and {r.gpus_per_trial:g} GPU per trial, "
        f"{base.data.image_size} px images, batch size {base.train.batch_size}",
        f"- **Data:** {data}" + (f" (first {base.data.max_train} training and {base.data.max_val} "
                                   f"validation images)" if base.data.max_train else ""),
        f"- **Model:** {base.model.arch} on {base.model.encoder} (decoder width "
        f"{base.model.decoder_width}), trained from {weights}",
        f"- **Command:** `{r.command}` ({r.created})",
    ]


def write_report(exp: Experiment, out: Path, formats: tuple[str, ...] = FORMATS) -> Path:
    """Write everything into ``out``; returns the path of report.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / PLOTS_DIR).mkdir(exist_ok=True)
    exp.long_table().to_parquet(out / TRIALS_FILE, index=False)

    summary = exp.summary()
    counts = summary["status"].str.replace(r" at epoch \d+", "", regex=True).value_counts()
    md = [f"# Experiment `{exp.path.name}`", "", *_describe(exp),
          f"- **Trials:** {', '.join(f'{n} {s}' for s, n in counts.items())}", ""]

    r = exp.record
    name, stopper = r.metric_name, SCHEDULERS[r.scheduler].name
    md += _lineage(exp, out, formats)
    md += ["## Configurations", "",
           f"One row per trial, best first: trials that completed every epoch by their {name} at the last "
           f"epoch, then the others by the epochs they reached. {name} is {METRICS[r.metric].meaning}, on the "
           f"validation set at the trial's last epoch; *peak mIoU* is a trial's best epoch, and *overfitting* "
           f"marks a trial whose {METRICS['val_miou'].name} peaked before its last epoch while pixel accuracy kept "
           f"rising. *delta vs "
           f"baseline* is against the baseline configuration, which every experiment evaluates first.", ""]
    md.append(write_table(configurations_table(summary, exp.trials, exp.searched, name), out, "configurations",
                           "Trials of the experiment, best first", formats))

    if r.ablation:
        table = ablation_table(summary, exp.trials, r.baseline, r.levels, name)
        md += ["## Ablation", "", f"Each row changes one factor of the baseline to the level shown; {name} and "
               "pixel accuracy are means over seeds, *std* their standard deviation, *overfitting* the number of "
               "seeds that overfit.", ""]
        md.append(write_table(table, out, "ablation", "One-factor-at-a-time ablation", formats))
    else:
        md += ["## Per factor", "", "For each searched parameter: its value (or value range) against the best and "
               f"mean {name} of the trials that completed all epochs; trials {stopper} stopped early are left out so "
               "that their shorter training does not distort the comparison.", ""]
        for key, table in factor_tables(summary, exp.trials, exp.searched, metric_name=name).items():
            md += [f"### `{key}`", ""]
            md.append(write_table(table, out, f"factor_{key}", f"{name} by {key}", formats))
        md += _importances(exp, out, formats)

    if r.population:
        md += _schedules(exp, summary, out, formats)

    per_class = per_class_table(summary, exp.epochs)
    if not per_class.empty:
        md += ["## Per-class IoU", "", "IoU (%) of each class for the best trials and the baseline, at their "
               "reported epoch.", ""]
        md.append(write_table(per_class, out, "per_class", "Per-class IoU", formats))
        plots.plot_per_class(per_class, out / PLOTS_DIR / "per_class.png")
        md += ["![per-class IoU](plots/per_class.png)", ""]
    if not exp.epochs.empty:
        plots.plot_learning_curves(exp.epochs, summary, out / PLOTS_DIR / "learning_curves.png", r.metric)
        md += ["## Learning curves", "", f"{name} per epoch of every trial: short orange curves are trials "
               f"{stopper} stopped; the thick line is the baseline.", "",
               "![learning curves](plots/learning_curves.png)", ""]
        if exp.searched:
            plots.plot_score_vs_params(summary, exp.trials, exp.searched, out / PLOTS_DIR / "score_vs_params.png",
                                       name)
            md += [f"## {name} against each parameter", "", f"![{name} vs parameters](plots/score_vs_params.png)", ""]
    md += _pictures(exp, summary, out)
    report = out / REPORT_FILE
    report.write_text("\n".join(md))
    write_html(report)
    return report


def _pictures(exp: Experiment, summary: pd.DataFrame, out: Path) -> list[str]:
    """The best trial's and the baseline's predictions as pictures (``trainable.pictures``), from their
    last checkpoints (the epoch each is ranked at), on the validation set of the trial's config."""
    from analysis.rank import select
    from trainable.errors import UserError
    from trainable.objectstore import pull, uri_of
    from trainable.pictures import write_pictures

    best = select(summary).iloc[0]["trial"]
    baseline = next(iter(summary.loc[summary["is_baseline"], "trial"]), None)
    chosen = {"best": best} if baseline in (None, best) else {"best": best, "baseline": baseline}
    md = ["## Predictions", ""]
    checkpoints, skipped = {}, []
    for label, trial in chosen.items():
        if uri_of(exp.path):  # the analysis pulled no checkpoints; these two it needs
            pull(f"{uri_of(exp.path)}/{trial}")
        try:
            checkpoints[label] = exp.checkpoint(trial)
        except UserError as e:
            skipped.append(f"{label} ({trial}) skipped: {e}")
    if checkpoints:
        try:
            pictures = write_pictures(checkpoints, out / PLOTS_DIR, exp.record.metric, exp.path.name)
        except (UserError, OSError) as e:  # e.g. the data is not where the trials read it
            skipped.append(f"no pictures: the validation set could not be predicted ({e})")
            checkpoints = {}
    md += [f"- note: {note}" for note in skipped] + ([""] if skipped else [])
    if not checkpoints:
        return md
    name, who = exp.record.metric_name, " and ".join(f"{label} ({trial})" for label, trial in chosen.items()
                                                     if label in checkpoints)
    files = {role: path.relative_to(out).as_posix() for role, path in pictures.paths.items()}
    return [
        *md, f"Predictions of the {who} from their last checkpoints on {pictures.shown} validation images spread over "
        f"the set, in the CelebAMask-HQ palette; the error maps show each wrong pixel in red. Scores are each "
        f"image's own {name}.", "", f"![gallery]({files['gallery']})", "",
        f"### The validation images the {next(iter(checkpoints))} trial scores worst on", "",
        f"![worst images]({files['worst']})", "", "### Confusion matrix", "",
        "Each row: where the pixels of one true class went, as percentages of that class's pixels; the left/right "
        "pairs are framed, so a left/right swap shows as a bright cell off the diagonal inside a frame.", "",
        f"![confusion matrix]({files['confusion']})", ""]


def _lineage(exp: Experiment, out: Path, formats: tuple[str, ...]) -> list[str]:
    """Where the search started (``--from``, a stage: the chain of searches whose best trials led to its
    baseline) and what its study was seeded with (``--warm-start``)."""
    from analysis.load import load_experiment
    from search_spaces.driver.warmstart import WARM_START_ATTR
    from trainable.errors import UserError
    from trainable.objectstore import local

    md = []
    if exp.record.parent:
        chain, parent, missing = [exp], exp.record.parent, ""
        while parent and len(chain) < 50:
            try:
                chain.insert(0, load_experiment(local(parent, checkpoints=False)))
            except UserError as e:
                missing = f" (the chain stops at {parent}: {e})"
                break
            parent = chain[0].record.parent
        md += ["## Where the search started", "",
               f"Its baseline is the config of `{exp.record.parent_trial}` of `{exp.record.parent}`, the best trial "
               f"there unless chosen with `--trial`. Each search of the chain started from the best trial of the "
               f"one before{missing}:", "",
               write_table(comparison_table(chain), out, "chain", "The searches that led to this one", formats)]
    if exp.record.warm_start:
        from analysis.load import load_study

        study = load_study(exp)
        seeded = [t.user_attrs[WARM_START_ATTR].rsplit("#", 1)[0] for t in (study.trials if study else [])
                  if WARM_START_ATTR in t.user_attrs]
        counts = ", ".join(f"{seeded.count(src)} of `{src}`" for src in dict.fromkeys(seeded))
        md += ["## Warm start", "", f"The Optuna study was seeded with {len(seeded)} trials of earlier searches "
               f"({counts or 'none'}), on the keys this search samples; TPE learned from them before its first "
               f"trial. They are not trials of this experiment: the tables and importances leave them out.", ""]
    return md


def _schedules(exp: Experiment, summary: pd.DataFrame, out: Path, formats: tuple[str, ...]) -> list[str]:
    """A population search's augmentation schedules: every trial's, plotted, and the best trial's, as a table."""
    from analysis.rank import select
    from search_spaces.population import explored

    keys = list(explored(exp.record.search_space))
    best = select(summary).iloc[0]["trial"]
    schedules = {t: exp.schedule(t) for t in summary["trial"] if (exp.path / t / SCHEDULE_FILE).is_file()}
    plots.plot_schedules(schedules, best, keys, exp.record.max_t, out / PLOTS_DIR / "schedules.png")
    table = schedule_table(schedules[best], keys, exp.record.max_t)
    exploits = {(seg.get("trial"), seg["epoch"]) for sch in schedules.values() for seg in sch if seg["from"]}
    return ["## Augmentation schedules", "", f"What each trial's weights trained with, epoch by epoch: at every "
            f"exploit a trial took over the weights and settings of a better one and explored new values "
            f"({len(exploits)} exploits in the trials' final lineages). The best trial, {best}, trained with this "
            f"schedule (*weights from*: the trial whose weights *trained by* continued at that epoch); "
            f"`python launch.py retrain {exp.path}` replays it, `--fixed` trains its last settings throughout.", "",
            write_table(table, out, "schedule", f"Augmentation schedule of {best}", formats), "",
            "![augmentation schedules](plots/schedules.png)", ""]


def _importances(exp: Experiment, out: Path, formats: tuple[str, ...]) -> list[str]:
    from analysis.load import load_study, own_trials

    study = load_study(exp)
    if study is None:
        return ["## Importances", "", "No Optuna study found in the experiment folder.", ""]
    table, method = importance_table(own_trials(study))
    md = ["## Importances", "", f"How much each parameter explains {exp.record.metric_name}: {method}.", ""]
    if table.empty:
        return md
    md.append(write_table(table, out, "importance", "Hyperparameter importance", formats))
    plots.plot_importances(table, out / PLOTS_DIR / "importance.png")
    return [*md, "![importances](plots/importance.png)", ""]
