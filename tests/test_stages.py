"""Searches that build on each other, as a user runs them: a staged search whose second stage starts
from the first stage's best trial, a finished search given more trials in the same study, a study
warm-started from an earlier experiment, and the refusals of each."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from analysis.load import load_experiment
from analysis.rank import best_first
from launch import main as launch_main
from search_spaces import get_space
from search_spaces.driver import new_record, read_record
from search_spaces.driver.searcher import journal_storage, make_searcher
from search_spaces.driver.warmstart import WARM_START_ATTR, seed_study, seeded_trials
from tests.test_launch import TINY, launch, load_study, output_within
from trainable.config import flatten, parse_overrides
from trainable.layout import EXPERIMENT_FILE, JOURNAL_FILE, STAGES_FILE

ROOT = Path(__file__).resolve().parents[1]
EARLIER = ROOT / "tests" / "data" / "search-42ee819"  # a finished search of 3 trials (record version 2)
STAGE = ["--num-samples", "3", "--max-epochs", "2", "--grace-period", "1", "--reduction-factor", "2", *TINY]


@pytest.fixture(scope="module")
def staged_run(tiny_master, tmp_path_factory) -> tuple[Path, str]:
    """A finished staged search of two spaces on the tiny set, and what it printed."""
    storage = tmp_path_factory.mktemp("staged")
    proc = launch("search", "--space", "augmentation,loss", "--data", str(tiny_master), "--storage-path",
                  str(storage), "--name", "run", *STAGE, start_new_session=True)
    out = output_within(proc, 600)
    assert proc.returncode == 0, out[-3000:]
    return storage / "run", out


def best_trial(exp: Path) -> str:
    return best_first(load_experiment(exp).summary().dropna(subset=["rank"])).iloc[0]["trial"]


def test_each_stage_starts_from_the_best_trial_of_the_one_before(staged_run):
    run, out = staged_run
    first, second = run / "1-augmentation", run / "2-loss"
    assert json.loads((run / STAGES_FILE).read_text())["spaces"] == ["augmentation", "loss"]
    parent = read_record(second)
    best = best_trial(first)
    assert (parent.parent, parent.parent_trial) == (str(first), best)
    # the second stage's baseline is the first stage's best config on the first stage's keys
    trained = flatten(load_experiment(first).params(best))
    baseline = flatten(parent.config.to_dict())
    for key in get_space("augmentation").params:
        assert baseline[key] == trained[key], key
    assert len(load_study(first).trials) == 3 and len(load_study(second).trials) == 3
    # and the second stage evaluates that baseline first (its own reference row)
    assert load_study(second).trials[0].params == pytest.approx(get_space("loss").baseline_point(parent.config))
    assert "stage 1 (augmentation): " in out and "stage 2 of 2: loss" in out
    assert f"starts from:    {first}/{best}" in out
    assert f"python -m analysis {run}\n" in out and f"python launch.py retrain {second}" in out


def test_a_finished_staged_search_resumed_says_it_is_finished(staged_run):
    run, _ = staged_run
    proc = launch("resume", str(run))
    out = output_within(proc, 120)
    assert proc.returncode == 0, out
    assert f"{run}: finished, all 2 stages ended; nothing to resume" in out and "Ray" not in out


def test_the_printed_flags_of_the_best_trial_reproduce_it(staged_run):
    run, out = staged_run
    first = run / "1-augmentation"
    block = out[out.index("best trial"):]
    flags = next(line for line in block.splitlines() if line.strip().startswith("as flags:")).split("as flags:")[1]
    pairs = flags.split("--set")[1:]
    record = new_record("augmentation", overrides=parse_overrides([p.strip() for p in pairs]))
    trained = flatten(load_experiment(first).params(best_trial(first)))
    for key, value in record.baseline.items():
        assert value == trained[key], key  # the trial trained the rounded value the line prints
        assert len(f"{value}".replace("-", "").replace(".", "").lstrip("0")) <= 4, value  # 4 significant digits


def test_fewer_trials_than_a_search_has_run_are_refused(staged_run, capsys):
    exp = staged_run[0] / "1-augmentation"
    record = (exp / EXPERIMENT_FILE).read_text()
    assert launch_main(["resume", str(exp), "--num-samples", "2"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --num-samples 2: below the 3 trials {exp} has already "
                                               f"started; give more than 3 to add trials")
    assert (exp / EXPERIMENT_FILE).read_text() == record


def _first_suggestions(journal: Path, record, n: int) -> list[dict]:
    space = record.search_space
    searcher = make_searcher(journal, record.name, record.seed, [space.baseline_point(record.config)],
                             max_t=record.max_t, n_startup_trials=3)
    searcher.set_search_properties(record.metric, record.mode, space.param_space(record.config))
    return [searcher.suggest(f"t{i}") for i in range(n)]


def test_a_warm_start_seeds_tpe_with_the_earlier_trials(tmp_path):
    record = new_record("augmentation", name="warm", max_epochs=2)
    trials, notes = seeded_trials(record, [str(EARLIER)])
    earlier = optuna.load_study(study_name=EARLIER.name, storage=journal_storage(EARLIER / JOURNAL_FILE)).trials
    assert [(t.state, t.value, t.intermediate_values) for t in trials] == \
        [(t.state, t.value if t.state == TrialState.COMPLETE else None, t.intermediate_values) for t in earlier]
    assert notes == [f"warm start: 3 trials of {EARLIER}"]

    seed_study(tmp_path / "warm.journal", record, trials)
    warm = _first_suggestions(tmp_path / "warm.journal", record, 3)
    cold = _first_suggestions(tmp_path / "cold.journal", record, 3)
    assert warm[0] == cold[0]  # the baseline first, either way
    assert warm[1:] != cold[1:]  # TPE from the first sampled trial: 3 seeded trials fill its start-up
    study = optuna.load_study(study_name="warm", storage=journal_storage(tmp_path / "warm.journal"))
    seeded = [t for t in study.trials if WARM_START_ATTR in t.user_attrs]
    assert [t.user_attrs[WARM_START_ATTR] for t in seeded] == [f"{EARLIER}#{i}" for i in range(3)]
    assert all("tune_trial_id" not in t.user_attrs for t in seeded)  # never taken for a trial of this search


def test_a_warm_start_fills_a_key_the_earlier_search_held_fixed_with_its_value(tmp_path):
    record = new_record("full", name="warm", max_epochs=2)
    trials, notes = seeded_trials(record, [str(EARLIER)])
    assert len(trials) == 3 and notes == [f"warm start: 3 trials of {EARLIER}"]
    for t in trials:
        assert t.params["loss/lovasz"] == read_record(EARLIER).config.loss.lovasz  # held at its baseline there
        assert set(t.params) == {k.replace(".", "/") for k in get_space("full").params}


@pytest.mark.parametrize("argv, message", [
    (["--space", "loss", "--from", "{tmp}"], "--from {tmp}: {tmp}: not an experiment directory (no experiment.json)"),
    (["--space", "loss", "--from", "{earlier}", "--metric", "val_fscore"],
     "--metric val_fscore: --from {earlier} searched with --metric val_miou"),
    (["--space", "loss", "--from", "{earlier}", "--challenge", "ce7454-2025"],
     "--challenge ce7454-2025: --from {earlier} searched with --challenge none"),
    (["--space", "loss", "--from", "{earlier}", "--data", "{tmp}"],
     "--data {tmp}: --from {earlier} searched on the built-in synthetic set"),
    (["--space", "loss", "--trial", "trial_16bfa72c"], "--trial trial_16bfa72c: picks the trial a search starts from"),
    (["--space", "loss", "--warm-start", "{earlier}", "--max-epochs", "2"],
     "--warm-start {earlier}: no trials to seed this search with (it searched aug."),
    (["--space", "augmentation", "--warm-start", "{earlier}"],
     "--warm-start {earlier}: searched with train.epochs 2, this search with 8"),
    (["--space", "augmentation,tta"], "--space tta: TTA is scored on a trained checkpoint"),
    (["--space", "augmentation,augmentation"], "--space augmentation,augmentation: a space appears twice"),
])
def test_a_search_that_cannot_start_from_or_be_seeded_by_that_experiment_is_refused(tmp_path, capsys, argv,
                                                                                       message):
    storage = tmp_path / "experiments"
    argv = [a.format(tmp=tmp_path, earlier=EARLIER) for a in argv]
    assert launch_main(["search", *argv, "--storage-path", str(storage)]) == 2  # refused before Ray starts
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message.format(tmp=tmp_path, earlier=EARLIER)), lines
    assert not storage.exists()  # nothing written


def test_an_earlier_versions_search_cannot_take_more_trials_but_says_how_to_warm_start(tmp_path):
    exp = Path(shutil.copytree(EARLIER, tmp_path / EARLIER.name))
    proc = subprocess.run([sys.executable, "launch.py", "resume", str(exp), "--num-samples", "6"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: --num-samples 6: {exp} was started by an earlier version of facesearch, "
                                   f"whose saved Ray state cannot take more trials; start a new search seeded with "
                                   f"its trials: python launch.py search --space augmentation --warm-start {exp}")
    assert json.loads((exp / EXPERIMENT_FILE).read_text()) == json.loads((EARLIER / EXPERIMENT_FILE).read_text())


@pytest.mark.slow  # 110 s
def test_a_warm_started_search_runs_says_what_seeded_it_and_takes_more_trials_in_the_same_study(tmp_path):
    earlier = Path(shutil.copytree(EARLIER, tmp_path / EARLIER.name))  # on the built-in set, as this search
    proc = launch("search", "--space", "augmentation", "--warm-start", str(earlier), "--storage-path", str(tmp_path),
                  "--name", "warm", "--set", "data.max_train=40", "--set", "data.max_val=10", *STAGE,
                  start_new_session=True)
    out = output_within(proc, 600)
    assert proc.returncode == 0, out[-3000:]
    exp = tmp_path / "warm"
    seeded = len(load_study(earlier).trials)
    assert f"note: warm start: {seeded} trials of {earlier}" in out
    assert f"warm start:     the trials of {earlier}" in out
    assert read_record(exp).warm_start == [str(earlier)]
    study = load_study(exp)
    assert sum(WARM_START_ATTR in t.user_attrs for t in study.trials) == seeded and len(study.trials) == seeded + 3
    assert "trials          3 ended" in out  # the experiment's own trials
    analysis = subprocess.run([sys.executable, "-m", "analysis", str(exp)], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)
    assert analysis.returncode == 0, analysis.stderr
    report = (exp / "analysis" / "report.md").read_text()
    assert f"The Optuna study was seeded with {seeded} trials of earlier searches ({seeded} of `{earlier}`)" in report
    more_trials_go_on_in_the_same_study(exp, tmp_path / "moved" / "warm", seeded)


def more_trials_go_on_in_the_same_study(exp: Path, moved: Path, seeded: int) -> None:
    """``resume --num-samples 5`` of a copy of the finished 3-trial search ``exp`` (moved: its new trials
    must land where it is now): the study holds every trial, the analysis ranks all 5."""
    exp = Path(shutil.copytree(exp, moved))
    before = {d.name: (d / "result.json").read_text() for d in exp.glob("trial_*")}
    proc = launch("resume", str(exp), "--num-samples", "5")
    out = output_within(proc, 600)
    assert proc.returncode == 0, out[-3000:]
    assert "trials:         3 run, 5 in all now, in the same study" in out and "5 ended" in out
    study = optuna.load_study(study_name=read_record(exp).name, storage=journal_storage(exp / JOURNAL_FILE))
    assert len(study.trials) == seeded + 5 and all(t.state.is_finished() for t in study.trials)
    assert read_record(exp).num_samples == 5
    summary = load_experiment(exp).summary()
    assert len(summary) == 5 and summary["rank"].notna().sum() == 5
    for name, text in before.items():  # the earlier trials are kept as they ended
        assert (exp / name / "result.json").read_text() == text

    again = launch("resume", str(exp))
    out = output_within(again, 120)
    assert again.returncode == 0 and f"{exp}: finished, all 5 trials ended; nothing to resume" in out
    assert f"python launch.py resume {exp} --num-samples 10" in out


@pytest.mark.slow  # 120 s
def test_an_interrupted_staged_search_resumes_the_stage_it_was_in_and_goes_on(tiny_master, tmp_path):
    run = tmp_path / "run"
    proc = launch("search", "--space", "augmentation,loss", "--data", str(tiny_master), "--storage-path",
                  str(tmp_path), "--name", "run", *STAGE, "--max-concurrent", "1", start_new_session=True)
    deadline = time.time() + 400
    journal = run / "2-loss" / JOURNAL_FILE
    while time.time() < deadline and not (journal.is_file() and any(
            t.state.is_finished() for t in optuna.load_study(study_name="2-loss",
                                                             storage=journal_storage(journal)).trials)):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out = output_within(proc, 300)
    assert proc.returncode == 128 + signal.SIGINT, out[-3000:]
    assert f"resume the staged search with: python launch.py resume {run}" in out
    first = {d.name: (d / "result.json").read_text() for d in (run / "1-augmentation").glob("trial_*")}

    resumed = launch("resume", str(run))
    out = output_within(resumed, 600)
    assert resumed.returncode == 0, out[-3000:]
    assert "stage 2 (loss): " in out and "stages          val mIoU" in out
    assert len(load_study(run / "2-loss").trials) == 3
    assert {d.name: (d / "result.json").read_text() for d in (run / "1-augmentation").glob("trial_*")} == first


def test_a_warm_start_takes_an_experiments_own_trials_once(tmp_path):
    seeded_there = Path(shutil.copytree(EARLIER, tmp_path / "b"))  # itself warm-started from EARLIER
    earlier_record = read_record(seeded_there)
    copies, _ = seeded_trials(earlier_record, [str(EARLIER)])
    optuna.load_study(study_name=earlier_record.name,
                      storage=journal_storage(seeded_there / JOURNAL_FILE)).add_trials(copies)
    record = new_record("augmentation", name="warm", max_epochs=2)
    trials, notes = seeded_trials(record, [str(seeded_there), str(seeded_there)])
    assert len(trials) == 3 and notes == [f"warm start: 3 trials of {seeded_there}"]
    assert {t.user_attrs[WARM_START_ATTR] for t in trials} == {f"{seeded_there}#{i}" for i in range(3)}


def test_a_search_started_from_a_trial_keeps_its_parameter_budget():
    start = {"model": {"max_params": 1_500_000}}
    record = new_record("loss", challenge="ce7454-2025", start=start)
    assert record.config.model.max_params == 1_500_000  # not the edition's 1,821,084
    assert new_record("loss", challenge="ce7454-2025").config.model.max_params == 1_821_084


def test_a_stage_with_no_ranked_trial_stops_the_staged_search(tmp_path):
    from analysis.summary import stage_summary
    from search_spaces.driver.stages import StagedRun
    from trainable.errors import UserError

    run = StagedRun(tmp_path / "run", ["augmentation", "loss"], {})
    stage = Path(shutil.copytree(EARLIER, run.stage_dir(0)))
    for result in stage.glob("trial_*/result.json"):
        result.unlink()
    with pytest.raises(UserError, match=r"stage 1 \(augmentation\): no trial of .* has a result to rank, so the "
                                        r"next stage has no configuration to start from"):
        stage_summary(run, 0)
