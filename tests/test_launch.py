"""launch.py as a user runs it: real Ray runs with ASHA + Optuna on the tiny synthetic set, and the
verbs that read what a search left (analysis, retrain, tta)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from search_spaces import get_space
from search_spaces.driver.searcher import journal_storage, make_searcher
from tests.test_pictures import markdown_tables, read_page
from trainable.config import Config
from trainable.layout import JOURNAL_FILE
from trainable.loop import NonFiniteLossError
from trainable.metrics import SEARCH_METRICS
from trainable.ray_trainable import diverged_report

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "train.batch_size=4", "--set", "model.decoder_width=32", "--set", "loss.lovasz=0.5"]
TINY_SEARCH = ["--num-samples", "6", "--max-epochs", "3", "--grace-period", "1", "--reduction-factor", "2", *TINY]


def output_within(proc: subprocess.Popen, timeout: float) -> str:
    """All that ``proc`` (started in a session of its own) printed; past ``timeout`` its process group is
    killed and the output ends with a line saying so."""
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.communicate()[0] + f"\n[killed after {timeout:.0f} s]"


def launch(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": os.environ.get("RAY_AUTH_MODE", "disabled"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "launch.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def load_study(exp_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name=exp_dir.name, storage=journal_storage(exp_dir / JOURNAL_FILE))


def trial_results(exp_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for d in sorted(exp_dir.glob("trial_*")):
        lines = (d / "result.json").read_text().splitlines() if (d / "result.json").exists() else []
        out[d.name] = [json.loads(x) for x in lines]
    return out


def test_search_end_to_end_with_asha_optuna_and_dashboard(tiny_master, tmp_path):
    # the README's shorthand (no verb), and a full trial's length given as the config key only: ASHA's
    # max_t and the PRUNED coupling follow train.epochs (they once kept the default 8 epochs, and every
    # trial that trained all 3 epochs was told PRUNED)
    proc = launch("--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                  "--name", "e2e", "--num-samples", "6", "--set", "train.epochs=3", "--grace-period", "1",
                  "--reduction-factor", "2", *TINY)
    lines, dashboard_status = [], None
    for line in proc.stdout:
        lines.append(line)
        match = re.search(r"Ray dashboard:\s+(http://\S+)", line)
        if match and dashboard_status is None:
            dashboard_status = _get_status(match.group(1))
    assert proc.wait(timeout=600) == 0, "".join(lines[-40:])
    out = "".join(lines)
    exp = tmp_path / "e2e"
    assert dashboard_status is not None and dashboard_status < 500  # the dashboard answered during the run
    for expected in ("results:", "best trial", "python -m analysis", f"python launch.py retrain {exp}",
                     f"tensorboard --logdir {exp}", "6 ended"):
        assert expected in out
    assert "/tmp/ray/session" not in out  # no path into Ray's staging folders: the experiment is the place
    assert list(exp.glob("trial_*/events.out.tfevents.*"))  # what tensorboard --logdir EXP shows

    study = load_study(exp)
    assert len(study.trials) == 6
    baseline = get_space("augmentation").baseline_point(get_space("augmentation").base_config())
    assert study.trials[0].params == pytest.approx(baseline)  # the baseline is trial 0
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned, "ASHA stopped no trial"
    assert complete, "no trial was told COMPLETE"
    for t in pruned:
        assert 1 <= len(t.intermediate_values) < 3  # stopped before the last epoch, with its per-epoch values
    for t in complete:
        assert sorted(t.intermediate_values) == [1, 2, 3] and t.value == t.intermediate_values[3]
    epochs = [len(r) for r in trial_results(exp).values()]
    assert min(epochs) < 3 and max(epochs) == 3
    # on the instance launch.py started, a trial takes over an ended trial's process (no torch import
    # per trial); on a cluster it does not (tests/test_cluster.py)
    assert len({r[0]["pid"] for r in trial_results(exp).values()}) < 6
    record = json.loads((exp / "experiment.json").read_text())
    assert record["space"] == "augmentation" and record["config"]["train"]["epochs"] == 3

    # progress a person reads: one line of counts, and the best trial's score and searched values
    assert re.search(r"^progress: 6 of 6 trials ended, \d+ trial-epochs, \S+ elapsed$", out, re.MULTILINE)
    assert "Current best trial" not in out and "parameters={" not in out

    analysis = subprocess.run([sys.executable, "-m", "analysis", str(exp)], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    assert analysis.returncode == 0, analysis.stderr
    for name in ("report.md", "trials.parquet", "plots/learning_curves.png", "plots/gallery.png", "plots/worst.png",
                 "plots/confusion.png"):
        assert (exp / "analysis" / name).is_file(), name
    report_md = (exp / "analysis" / "report.md").read_text()
    page = read_page(exp / "analysis" / "report.html")  # every image embedded, none empty
    assert len(page.images) == report_md.count("![") and page.tables == markdown_tables(report_md)
    # importances need two trials that completed every epoch; how many did depends on ASHA's rungs
    assert (exp / "analysis" / "tables" / "importance.csv").is_file() == (len(complete) >= 2)
    if len(complete) < 2:
        assert "not computed" in (exp / "analysis" / "report.md").read_text()

    # one notion of best: the summary, the analysis table and Optuna's best trial agree
    best = re.search(r"^best trial\s+(trial_\w+): val mIoU", out, re.MULTILINE).group(1)
    assert re.findall(r"^best so far: (trial_\w+), val mIoU \d+\.\d\d at epoch \d+ \(", out, re.MULTILINE)[-1] == best
    table = pd.read_csv(exp / "analysis" / "tables" / "configurations.csv")
    assert table.loc[0, "trial"].split(" ")[0] == best
    assert f"trial_{study.best_trial.user_attrs['tune_trial_id']}" == best

    # retrain repeats the trial it retrains, epoch by epoch, on the CPU (threads, data order, seeds)
    rows = trial_results(exp)[best]
    retrained = launch("retrain", str(exp), "--out", str(tmp_path / "again"))
    text = retrained.communicate(timeout=600)[0]
    assert retrained.returncode == 0, text[-3000:]
    curve = pd.read_csv(tmp_path / "again" / best / "curves.csv")
    assert (tmp_path / "again" / best / "gallery.png").is_file()  # the final model as a picture
    assert curve["val_miou"].tolist() == [r["val_miou"] for r in rows]
    assert curve["train_loss"].tolist() == [r["train_loss"] for r in rows]

    # tta reads the experiment: the best trial's last checkpoint, whose plain score is the trial's
    scored = launch("tta", str(exp))
    text = scored.communicate(timeout=300)[0]
    assert scored.returncode == 0, text[-3000:]
    assert f"checkpoint:     {exp / best}/checkpoint_" in text
    plain = re.search(r"plain inference \(scale 1.0, no flip\): val mIoU (\S+)", text).group(1)
    assert float(plain) == pytest.approx(rows[-1]["val_miou"], abs=5e-3)  # printed to 2 decimals


def _get_status(url: str) -> int | None:
    for _ in range(60):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            time.sleep(0.5)
    return None


# SIGTERM takes the same path as Ctrl-C (only the signal differs): slow, to keep the default run short
@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, id="ctrl-c"),
                                 pytest.param(signal.SIGTERM, id="sigterm", marks=pytest.mark.slow)])
def test_ctrl_c_saves_the_search_and_resume_finishes_it(tiny_master, tmp_path, sig):
    exp = tmp_path / "int"
    proc = launch("search", "--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                  "--name", "int", "--num-samples", "2", "--set", "train.epochs=2", "--grace-period", "2",
                  "--max-concurrent", "1", *TINY, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not sum(1 for t in _journal_trials(exp) if t.state.is_finished()):
        time.sleep(0.5)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # as Ctrl-C in a terminal: the whole foreground group
    else:
        os.kill(proc.pid, sig)  # as a scheduler ending a job: the driver alone
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + sig, out[-3000:]
    assert "Traceback" not in out
    assert re.search(rf"^interrupted \({sig.name}\): 1 of 2 trials ended", out, re.MULTILINE), out[-3000:]
    assert f"python launch.py resume {exp}" in out and "Tuner.restore(" not in out
    summary = out[out.index(f"interrupted ({sig.name})"):]
    assert not re.search(r"^(best trial|baseline|next:|trials +\d+ ended)", out, re.MULTILINE), summary
    assert "python -m analysis" not in summary and "retrain" not in summary  # nothing reads as a finished search

    resumed = launch("resume", str(exp))
    out = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out[-3000:]
    assert "best trial" in out and "2 ended: 2 completed" in out
    study = load_study(exp)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    for name, rows in trial_results(exp).items():
        assert [r["epoch"] for r in rows] == [1, 2], name


def _journal_trials(exp: Path) -> list:
    try:
        return load_study(exp).trials
    except (KeyError, ValueError, OSError):
        return []


# slow (70 s): the ablation table is checked in every run (tests/test_analysis.py), this real ablation search in CI
@pytest.mark.slow
def test_ablation_runs_one_factor_at_a_time(tiny_master, tmp_path):
    proc = launch("--space", "optimizer", "--ablation", "--seeds", "1", "--data", str(tiny_master),
                  "--storage-path", str(tmp_path), "--name", "abl", "--max-epochs", "1", *TINY[2:])
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-3000:]
    space = get_space("optimizer")
    results = trial_results(tmp_path / "abl")
    assert len(results) == 1 + sum(len(v) - 1 for v in space.levels.values())  # baseline + each other level
    base = space.base_config({"model.decoder_width": 32, "loss.lovasz": 0.5})
    diffs = []
    for rows in results.values():
        assert len(rows) == 1  # every configuration is trained in full: no early stopping
        cfg = Config.from_dict(rows[-1]["config"])
        changed = {k for k in space.levels if _get(cfg, k) != _get(base, k)}
        assert len(changed) <= 1
        diffs.append(tuple(changed))
    assert diffs.count(()) == 1  # exactly one baseline row


def _get(cfg, key: str):
    group, name = key.split(".")
    return getattr(getattr(cfg, group), name)


def test_the_journal_records_which_tune_trials_ended(tmp_path):
    from search_spaces.driver.searcher import _ended_in_study

    space = get_space("augmentation")
    base = space.base_config()
    journal = tmp_path / "s.journal"
    searcher = make_searcher(journal, "s", 0, [space.baseline_point(base)], max_t=3, n_startup_trials=3)
    searcher.set_search_properties("val_miou", "max", space.param_space(base))
    searcher.suggest("ended")
    searcher.suggest("running")
    searcher.on_trial_result("ended", {"val_miou": 1.0, "training_iteration": 1})
    searcher.on_trial_complete("ended", {"val_miou": 2.0, "training_iteration": 2})
    assert _ended_in_study(str(journal), "s", "ended")
    assert not _ended_in_study(str(journal), "s", "running")
    assert load_study_trials(journal)[0].state == TrialState.PRUNED  # stopped at epoch 2 of 3
    searcher.on_trial_result("ended", {"val_miou": 3.0, "training_iteration": 3})  # a resumed rerun: ignored


@pytest.mark.parametrize("metric", list(SEARCH_METRICS))
def test_a_diverged_trial_fails_in_the_study_whatever_the_metric(tmp_path, metric):
    space = get_space("augmentation")
    base = space.base_config()
    report = diverged_report(2, NonFiniteLossError(float("nan")), "node")
    assert all(math.isnan(report[m]) for m in SEARCH_METRICS)  # val_fscore too: the 2025 edition's metric
    searcher = make_searcher(tmp_path / "s.journal", "s", 0, [space.baseline_point(base)], max_t=3,
                             n_startup_trials=3, metric=metric)
    searcher.set_search_properties(metric, "max", space.param_space(base))
    searcher.suggest("diverged")
    searcher.on_trial_result("diverged", {metric: 1.0, "training_iteration": 1})
    searcher.on_trial_complete("diverged", {**report, "training_iteration": 2})
    (trial,) = load_study_trials(tmp_path / "s.journal")
    assert trial.state == TrialState.FAIL and trial.user_attrs["stop_reason"] == report["stop_reason"]


def load_study_trials(journal: Path) -> list:
    return optuna.load_study(study_name="s", storage=journal_storage(journal)).trials


# slow (46 s each): ASHA + TPE, the defaults, run in every run (the end-to-end search, Ctrl-C and resume)
@pytest.mark.slow
@pytest.mark.parametrize("searcher, scheduler", [("random", "hyperband"), ("tpe", "fifo")])
def test_each_searcher_and_scheduler_runs_a_real_search(tiny_master, tmp_path, searcher, scheduler):
    name = f"{searcher}-{scheduler}"
    proc = launch("search", "--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                  "--name", name, "--num-samples", "3", "--set", "train.epochs=2", "--grace-period", "1",
                  "--reduction-factor", "2", "--searcher", searcher, "--scheduler", scheduler, *TINY,
                  start_new_session=True)
    out = output_within(proc, 400)  # about 60 s each here: a search that hangs fails with what it printed
    assert proc.returncode == 0, out[-6000:]
    exp = tmp_path / name
    record = json.loads((exp / "experiment.json").read_text())
    assert (record["searcher"], record["scheduler"]) == (searcher, scheduler)
    stated = {"random": "random sampling (seed 0)", "tpe": "Optuna TPE, univariate (seed 0)",
              "hyperband": "HyperBand (max 2 epochs, reduction 2)", "fifo": "every trial in full (2 epochs"}
    assert stated[searcher] in out and stated[scheduler] in out
    assert "stopped by ASHA" not in out
    study = load_study(exp)
    assert len(study.trials) == 3 and all(t.state.is_finished() for t in study.trials)
    if scheduler == "fifo":  # nothing stops a trial early
        assert all(t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [1, 2] for t in study.trials)
    analysis = subprocess.run([sys.executable, "-m", "analysis", str(exp)], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    assert analysis.returncode == 0, analysis.stderr
    assert stated[scheduler] in (exp / "analysis" / "report.md").read_text()
