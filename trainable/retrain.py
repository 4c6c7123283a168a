"""Retrain chosen trials' configurations for their full schedule and write what a submission needs.

Each output folder holds the weights (``model.pt``, loadable with ``torch.load(...,
weights_only=True)``, and ``model.safetensors``), the resolved config, the parameter count, the
training curves as CSV and PNG, the machine it ran on, the validation scores with and without
the configured test-time augmentation, and the model's predictions as pictures (a gallery, its
worst validation images, its confusion matrix: ``trainable.pictures``). No Ray: a plain loop, one
configuration at a time. With a challenge to submit to (``retrain --submission NAME``) the retrained
model then predicts the data's test split into that edition's submission (``trainable.submission``);
its rules are checked first.

A retrain of a trial with the trial's own epochs and seed repeats the trial's per-epoch figures
exactly on the CPU: the data order and augmentation follow from the seed alone, and training runs
on as many threads as the trial did (a different thread count sums in a different order, and the
runs drift apart). On a GPU, cuDNN picks its kernels per run, so the figures come close, not equal.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from trainable.challenges import Challenge, get_challenge
from trainable.checkpoints import write_retrained
from trainable.config import Config, flatten, with_flags
from trainable.errors import UserError
from trainable.layout import MODEL_FILE, RETRAIN_FILES, SUBMISSION_DIR, replacing
from trainable.loop import evaluate
from trainable.metrics import DEFAULT_METRIC, METRICS, SEARCH_METRICS, axis_label, scores, search_metric
from trainable.models import build_model, count_parameters
from trainable.objectstore import push, uri_of
from trainable.pictures import write_pictures
from trainable.predict import format_result, predict_folder, prediction_images
from trainable.run import build_run, run_epoch, set_augmentation
from trainable.schedule import aug_at, stretch
from trainable.submission import check_rules

__all__ = ["RetrainJob", "check_submission", "format_results", "machine_info", "plan_retrain", "retrain",
           "retrain_jobs"]

HELD_OUT_NOTE = ("trained on train+val: the validation scores below were measured on images the model trained on and "
                 "is not a held-out estimate")
GPU_NOTE = ("trained on a GPU: cuDNN picks its kernels per run, so the figures come close to the trial's but are "
            "not equal (on the CPU they are)")


@dataclass(frozen=True)
class RetrainJob:
    trial: str
    cfg: Config
    out: Path
    threads: int  # torch's CPU threads: the trial's own, so that its figures repeat
    search_score: float
    schedule: tuple[dict, ...] = ()  # a population trial's augmentation schedule, stretched to cfg's epochs
    schedule_note: str = ""  # how the schedule was replayed, for the summary

    def describe(self, metric_name: str) -> str:
        return (f"retraining {self.trial} (search {metric_name} {self.search_score:.4g}) with seed "
                f"{self.cfg.train.seed} for {self.cfg.train.epochs} epochs on {self.cfg.data.train_on}, "
                f"{self.threads} CPU threads as in the trial{'; ' + self.schedule_note if self.schedule_note else ''}"
                f" -> {self.out}")


def plan_retrain(trials: list[tuple[str, dict, int, float]], out_root: Path, *, epochs: int | None = None,
                 seeds: int = 1, seed: int | None = None, train_on: str | None = None, data: str | None = None,
                 overrides: dict[str, Any] | None = None,
                 schedules: dict[str, list[dict]] | None = None) -> list[RetrainJob]:
    """One job per (trial, seed) for ``trials`` given as (name, config, threads, search score): the
    trial's config with the flags and ``--set`` applied, seeds counting up from ``seed`` (default:
    the trial's); refused before any training if an output folder exists. ``schedules``: a
    population search's augmentation schedule per trial, replayed stretched to the retrain's epochs
    (the config holds the trial's final settings, what ``retrain --fixed`` trains with)."""
    given = with_flags(overrides, epochs=epochs, train_on=train_on, data=data, seed=seed)
    jobs = []
    for name, params, threads, score in trials:
        flat = {**flatten(params), **given}
        first = int(flat["train.seed"])
        for k in range(seeds):
            cfg = Config.from_dict({**flat, "train.seed": first + k})
            out = Path(out_root).expanduser() / (name + (f"-seed{cfg.train.seed}" if seeds > 1 else ""))
            if out.exists():
                raise UserError(f"{out}: already exists; choose another --out or remove it")
            schedule, note = (), ""
            if schedules is not None:
                trial_epochs = int(flatten(params)["train.epochs"])
                schedule = tuple(stretch(schedules[name], trial_epochs, cfg.train.epochs))
                note = (f"the trial's augmentation schedule ({len(schedules[name])} segments over {trial_epochs} "
                        f"epochs) replayed over {cfg.train.epochs} epochs, changes at epochs "
                        f"{', '.join(str(s['epoch'] + 1) for s in schedule[1:]) or 'none'}")
            jobs.append(RetrainJob(name, cfg, out, threads, score, schedule, note))
    return jobs


def check_submission(jobs: list[RetrainJob], name: str) -> Challenge:
    """Before any training: the challenge ``retrain --submission NAME`` submits to, refused unless there
    is one model to submit, within the challenge's rules, with a test split to predict."""
    challenge = get_challenge(name, flag="--submission")
    if len(jobs) != 1:
        raise UserError(f"--submission {name}: submits one model, but this retrain trains {len(jobs)} (--top or "
                        f"--seeds); retrain one, or predict the one you choose with python launch.py predict MODEL "
                        f"--submission {name}")
    cfg = jobs[0].cfg
    model = build_model(replace(cfg.model, pretrained="none", max_params=0), aux_head=False)
    check_rules(challenge, cfg, count_parameters(model), f"trial {jobs[0].trial}")
    prediction_images(cfg, f"trial {jobs[0].trial}")
    return challenge


def machine_info() -> dict:
    """GPU model and count, CPU, and the torch/CUDA versions, for the report's reproducibility table."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"gpus": gpus, "gpu_count": len(gpus), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if gpus else None,
            "platform": platform.platform()}


def _plot_curves(curves: pd.DataFrame, path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(curves["epoch"], curves["train_loss"], marker="o", ms=3)
    a.set(xlabel="epoch", ylabel=axis_label("train_loss"), title="Training loss")
    b.plot(curves["epoch"], curves[metric], marker="o", ms=3, color="tab:green")
    b.set(xlabel="epoch", ylabel=axis_label(metric), title=f"{METRICS[metric].name} per epoch")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def retrain(cfg: Config, out: Path, threads: int | None = None, log=print, schedule: tuple[dict, ...] = (),
            schedule_note: str = "", metric: str = DEFAULT_METRIC) -> dict:
    """Train ``cfg`` for ``cfg.train.epochs`` and write everything into ``out`` (created, must not
    exist); ``threads``: torch's CPU threads meanwhile (default: as they are); ``schedule``: the
    augmentation settings by epoch (``trainable.schedule``) instead of ``cfg.aug`` throughout;
    ``metric``: the experiment's, which each epoch's line shows."""
    shown = search_metric(metric)
    out = Path(out)
    tta_scales, tta_flip = cfg.train.tta_scales, cfg.train.tta_flip
    # per-epoch validation is plain inference; the configured TTA is measured once at the end
    plain = replace(cfg, train=replace(cfg.train, tta_scales=(1.0,), tta_flip=False))
    with _threads(threads):
        run = build_run(replace(plain, aug=aug_at(list(schedule), 0)) if schedule else plain)
        changes = {s["epoch"] for s in schedule} - {0}
        rows = []
        for epoch in range(cfg.train.epochs):
            if epoch in changes:
                set_augmentation(run, aug_at(list(schedule), epoch))
                log(f"  epoch {epoch + 1:>3}: augmentation settings of the schedule's next segment")
            m = run_epoch(run, epoch)
            rows.append({k: m[k] for k in ("epoch", *METRICS)})
            log(f"  epoch {m['epoch']:>3}/{cfg.train.epochs}  {METRICS['train_loss'].name} {m['train_loss']:.4f}  "
                f"{shown.name} {m[metric]:{shown.fmt}}")
        with_tta, _ = evaluate(run.model, run.val_loader, run.device, tta_scales, tta_flip, cfg.train.amp,
                               cfg.train.channels_last)
    notes = [HELD_OUT_NOTE] if cfg.data.train_on == "train+val" else []
    notes += [GPU_NOTE] if run.device.type == "cuda" else []
    summary = {
        **{key: rows[-1][key] for key in (*SEARCH_METRICS, "val_acc")},
        **{f"{key}_tta": value for key, value in scores(with_tta).items() if key in SEARCH_METRICS},
        "tta_scales": list(tta_scales),
        "tta_flip": tta_flip,
        "params": run.params,
        "epochs": cfg.train.epochs,
        "seed": cfg.train.seed,
        "threads": torch.get_num_threads() if threads is None else threads,
        "train_on": cfg.data.train_on,
        "schedule": list(schedule) or None,  # the replayed augmentation schedule; None: cfg.aug throughout
        "notes": notes + ([schedule_note] if schedule_note else []),
    }
    # built in a temporary folder and renamed: an interrupted retrain leaves no half-written output
    with replacing(out) as tmp:
        tmp.mkdir()
        curves = pd.DataFrame(rows)
        curves.to_csv(tmp / RETRAIN_FILES["curves"], index=False)
        _plot_curves(curves, tmp / RETRAIN_FILES["curves_plot"], metric)
        (tmp / RETRAIN_FILES["config"]).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        (tmp / RETRAIN_FILES["machine"]).write_text(json.dumps(machine_info(), indent=2) + "\n")
        (tmp / RETRAIN_FILES["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
        write_retrained(run, cfg, tmp, {k: v for k, v in summary.items() if k.startswith("val_")})
        # what a person judges the model by: its predictions, worst images and confusions, with its own TTA
        write_pictures({"retrained": tmp / MODEL_FILE}, tmp, metric, f"{out.name} retrained")
    return summary


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def retrain_jobs(jobs: list[RetrainJob], metric: str = DEFAULT_METRIC, challenge: str | None = None,
                 submission: str | None = None, log=print) -> list[dict]:
    """Train every job, one after another, and say how each did on the experiment's ``metric``; then,
    with ``submission`` (a challenge), predict the data's test split into its submission with the first
    job's model. A retrain of an object store's experiment is uploaded into it. Returns each job's
    summary."""
    if submission:
        check_submission(jobs, submission)  # before hours of training, not after
    results = []
    for job in jobs:
        log(job.describe(search_metric(metric).name))
        results.append({"trial": job.trial, "out": str(job.out), "search_score": job.search_score,
                        **retrain(job.cfg, job.out, threads=job.threads, log=log, schedule=job.schedule,
                                  schedule_note=job.schedule_note, metric=metric)})
    log("\n".join(format_results(results, metric, challenge)))
    if submission:
        predicted = predict_folder(jobs[0].out / MODEL_FILE, None, jobs[0].out / SUBMISSION_DIR, submission=submission)
        log("\n".join(format_result(predicted)))
    for job in jobs:
        if uri_of(job.out):
            log(f"uploaded to {push(job.out)}")
    return results


def format_results(results: list[dict], metric: str = DEFAULT_METRIC, challenge: str | None = None) -> list[str]:
    """What a retrain prints: per trial the experiment's metric (mean +- std over seeds) beside the
    search's figure and with the configured TTA, the weights, and the command that predicts the test
    split (into ``challenge``'s submission, when the experiment follows one)."""
    shown, tta_key = search_metric(metric), f"{metric}_tta"
    df = pd.DataFrame(results)
    lines = [""]
    for trial, g in df.groupby("trial", sort=False):
        scales = ",".join(f"{s:g}" for s in g["tta_scales"].iloc[0])
        tta = f"with TTA (scales {scales}{' + flip' if g['tta_flip'].iloc[0] else ''})"
        if len(g) > 1:
            lines.append(f"{trial}: {shown.name} {g[metric].mean():{shown.fmt}} +- {g[metric].std():.2g} over "
                         f"{len(g)} seeds, {tta} {g[tta_key].mean():{shown.fmt}} +- {g[tta_key].std():.2g}")
        else:
            lines.append(f"{trial}: {shown.name} {g[metric].iloc[0]:{shown.fmt}} (search "
                         f"{g['search_score'].iloc[0]:{shown.fmt}}), {tta} {g[tta_key].iloc[0]:{shown.fmt}}")
        lines.append(f"  {g['params'].iloc[0]:,} parameters; weights: {g['out'].iloc[0]}/{MODEL_FILE}")
        lines += [f"  note: {n}" for n in g["notes"].iloc[0]]
    best = df.loc[df[metric].idxmax()]
    # predict's default images are the test split of the model's data, in whichever layout it has
    then = f"--out submission --submission {challenge}" if challenge else "--out predictions --zip submission.zip"
    return [*lines, "next:", f"  python launch.py predict {best['out']}/{MODEL_FILE} {then}"]
