"""The progress a person reads while a search runs: Tune's table, a progress line (trials ended,
trial-epochs, elapsed, time left) and the best trial so far, ranked as the project ranks, with its
searched values rounded; rendered from real Tune trials, without a Ray cluster."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pandas as pd
import pytest
import ray.tune.utils.log as tune_log
from ray.tune.experiment import Trial
from ray.tune.utils.log import Verbosity

import search_spaces.driver.tuner as tuner
from analysis.rank import rank
from search_spaces.driver import new_record
from search_spaces.driver.progress import _duration, _Progress, _time_left, progress_reporter
from trainable.layout import trial_dir_name

START = 1_000_000.0  # the run's start, as Tune passes it to the reporter's setup
STAGING = "/tmp/ray/session_x/artifacts/driver_artifacts"  # the driver's staging folder Tune names


@pytest.fixture(autouse=True)
def _search_verbosity(monkeypatch):
    # the verbosity a search runs Tune at (RAY_SETTINGS["verbose"]), whatever an earlier test set
    monkeypatch.setattr(tune_log, "verbosity", Verbosity.V1_EXPERIMENT)


@pytest.fixture
def record():
    return new_record("augmentation", name="exp", max_epochs=3, num_samples=12)


def reporter(record) -> _Progress:
    progress = progress_reporter(record)
    progress.setup(start_time=START, total_samples=record.planned_trials, metric=record.metric, mode=record.mode)
    return progress


def trial(record, trial_id: str, status: str, epoch: int | None = None, score: float | None = None,
          ended_at: float = START + 60, **aug) -> Trial:
    """A Tune trial of the search with the baseline config (``aug`` values replaced), ``status`` and,
    with ``epoch``, its last report as the trainable makes it (``ended_at``: Tune's timestamp of it)."""
    config = copy.deepcopy(record.config.to_dict())
    config["aug"].update(aug)
    t = Trial("train_segmentation", config=config, trial_id=trial_id, stub=True,
              trial_name_creator=lambda t: trial_dir_name(t.trial_id))
    # where Tune's table finds the staging folder (a real StorageContext asks a running Ray for it)
    t.storage = SimpleNamespace(experiment_driver_staging_path=STAGING,
                                trial_driver_staging_path=f"{STAGING}/{trial_dir_name(trial_id)}")
    if epoch is not None:
        t.update_last_result({"epoch": epoch, "training_iteration": epoch, record.metric: score, "val_loss": 1.5,
                              "train_loss": 1.2, "lr": 0.01, "timestamp": int(ended_at), "config": config})
    t.set_status(status)
    return t


def some_trials(record) -> list[Trial]:
    return [
        trial(record, "1a2b3c4d", Trial.TERMINATED, 3, 31.41592, rotate_limit=17.54321, cutout_p=0.25),
        # the highest last value, but stopped at epoch 1: Tune's own choice, not the project's
        trial(record, "2b3c4d5e", Trial.TERMINATED, 1, 40.0, rotate_limit=3.0),
        trial(record, "3c4d5e6f", Trial.RUNNING, 2, 35.0, rotate_limit=8.0),
        trial(record, "4d5e6f70", Trial.PENDING),
    ]


def our_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("progress:", "best so far:"))]


def test_the_status_shows_progress_and_the_best_trial_by_the_projects_rank(record):
    text = reporter(record).text(some_trials(record), False, "Using AsyncHyperBand: num_stopped=1",
                                 "Logical resource usage: 2.0/2 CPUs, 0/0 GPUs", now=START + 250)
    assert our_lines(text) == [
        "progress: 2 of 12 trials ended, 6 trial-epochs, 4m10s elapsed",
        "best so far: trial_1a2b3c4d, val mIoU 31.42 at epoch 3 (rotate_limit 17.54, cutout_p 0.25, cutout_holes 2, "
        "cutout_max 0.125, jitter_scale 1, scale_max 1.25, flip_p 0.5)",
    ]
    lines = text.splitlines()
    # among Tune's system lines, above its table
    assert lines.index("Logical resource usage: 2.0/2 CPUs, 0/0 GPUs") < lines.index(our_lines(text)[0])
    assert lines.index(our_lines(text)[1]) < next(i for i, line in enumerate(lines) if line.startswith("Number of"))
    # Tune's best trial line (the unrounded metric, every parameter column by its full key) and its
    # staging folder are gone; the table keeps its columns
    assert "Current best trial" not in text and "parameters={" not in text and "params={" not in text
    assert "aug/rotate_limit" not in text and "Result logdir" not in text and STAGING not in text
    header = next(line for line in lines if line.startswith("| Trial name"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "Trial name", "status", "loc", "rotate_limit", "cutout_p", "cutout_holes", "cutout_max", "jitter_scale",
        "scale_max", "flip_p", "epoch", "val mIoU"]
    assert "| trial_1a2b3c4d | TERMINATED |" in text


def test_the_best_line_rounds_as_the_project_prints_and_names_only_the_searched_values():
    record = new_record("augmentation", name="exp", max_epochs=3, num_samples=12, metric="val_fscore")
    trials = [trial(record, "1a2b3c4d", Trial.RUNNING, 2, 0.812345678, rotate_limit=12.345678, cutout_p=0.0001234567)]
    best = reporter(record).best_line(trials)
    assert best.startswith("best so far: trial_1a2b3c4d, val F-score 0.8123 at epoch 2 (rotate_limit 12.35, "
                           "cutout_p 0.0001235, ")
    assert "lr" not in best and "epochs" not in best and "image_size" not in best  # not searched: not named


def test_no_best_line_before_a_score_and_none_for_a_diverged_trial(record):
    progress = reporter(record)
    assert progress.best_line([trial(record, "1a2b3c4d", Trial.PENDING)]) == ""
    diverged = trial(record, "2b3c4d5e", Trial.TERMINATED, 2, float("nan"))  # a diverged trial reports NaN
    assert progress.best_line([diverged]) == ""
    text = progress.text([diverged], False, now=START + 5)
    assert our_lines(text) == ["progress: 1 of 12 trials ended, 2 trial-epochs, 5s elapsed"]


def test_the_best_trial_is_the_one_analysis_ranks_first(record):
    # (max_epochs 3) completed trials first, then the epochs reached, then the score
    cases = [(3, 20.0), (3, 25.5), (2, 60.0), (1, 70.0), (2, 61.0), (3, 25.4)]
    trials = [trial(record, f"{i:08x}", Trial.TERMINATED, e, s) for i, (e, s) in enumerate(cases)]
    summary = pd.DataFrame({"status": ["completed" if e == 3 else f"stopped by ASHA at epoch {e}" for e, _ in cases],
                            "epochs": [e for e, _ in cases], "score": [s for _, s in cases]})
    first = rank(summary, record.mode).idxmin()
    assert reporter(record).best_line(trials).startswith(f"best so far: {trial_dir_name(trials[first].trial_id)}, ")
    assert first == 1
    # running trials rank by the epochs they reached, before stopped ones with fewer
    running = [trial(record, "aaaaaaaa", Trial.RUNNING, 2, 10.0), trial(record, "bbbbbbbb", Trial.TERMINATED, 1, 90.0)]
    assert "trial_aaaaaaaa, val mIoU 10.00 at epoch 2" in reporter(record).best_line(running)


def test_the_time_left_shows_once_three_trials_ended_in_this_run(record):
    progress = reporter(record)
    ended = [trial(record, f"{i:08x}", Trial.TERMINATED if i % 2 else Trial.ERROR, 2, 30.0) for i in range(3)]
    running = [trial(record, "aaaaaaaa", Trial.RUNNING, 1, 20.0), trial(record, "bbbbbbbb", Trial.PENDING)]
    # two ended (an errored trial counts as ended): no estimate yet
    assert progress.progress_line(ended[:2] + running, now=START + 240) == \
        "progress: 2 of 12 trials ended, 5 trial-epochs, 4m00s elapsed"
    # three ended in 240 s, nine to go: 240 / 3 * 9 s
    assert progress.progress_line(ended + running, now=START + 240) == \
        "progress: 3 of 12 trials ended, 7 trial-epochs, 4m00s elapsed, about 12 min left"
    # every trial ended: nothing left to estimate
    everything = [trial(record, f"{i:08x}", Trial.TERMINATED, 3, 30.0) for i in range(12)]
    assert progress.progress_line(everything, now=START + 7500) == \
        "progress: 12 of 12 trials ended, 36 trial-epochs, 2h05m elapsed"


def test_trials_ended_before_a_resume_count_as_ended_but_not_in_the_estimate(record):
    progress = reporter(record)  # (a resumed search: its run starts at the restore)
    before = [trial(record, f"{i:08x}", Trial.TERMINATED, 3, 30.0, ended_at=START - 3600) for i in range(4)]
    now = [trial(record, f"{i:08x}", Trial.TERMINATED, 3, 30.0, ended_at=START + 100) for i in range(4, 7)]
    assert progress.progress_line(before + now[:2], now=START + 120) == \
        "progress: 6 of 12 trials ended, 18 trial-epochs, 2m00s elapsed"
    # three ended in this run's 120 s, five to go: 120 / 3 * 5 s
    assert progress.progress_line(before + now, now=START + 120) == \
        "progress: 7 of 12 trials ended, 21 trial-epochs, 2m00s elapsed, about 3 min left"


def test_durations_and_time_left_read_as_a_person_says_them():
    assert [_duration(s) for s in (0, 42.9, 60, 250, 3599, 3600, 7500, 90000)] == [
        "0s", "42s", "1m00s", "4m10s", "59m59s", "1h00m", "2h05m", "25h00m"]
    assert [_time_left(s) for s in (10, 29, 31, 89, 91, 720, 7100, 9000)] == [
        "under a minute left", "under a minute left", "about 1 min left", "about 1 min left", "about 2 min left",
        "about 12 min left", "about 118 min left", "about 2.5 h left"]


def test_report_prints_the_text_and_the_tuner_keeps_its_name(record, capsys):
    progress = reporter(record)
    progress.report(some_trials(record), True)
    out = capsys.readouterr().out
    assert "progress: 2 of 12 trials ended, 6 trial-epochs, " in out and "best so far: trial_1a2b3c4d" in out
    assert tuner.progress_reporter is progress_reporter


def test_an_ablation_names_its_levels():
    record = new_record("augmentation", name="exp", max_epochs=3, ablation=True)
    progress = reporter(record)
    assert list(progress.columns) == list(record.levels)
    best = progress.best_line([trial(record, "1a2b3c4d", Trial.RUNNING, 1, 12.0)])
    assert best.startswith("best so far: trial_1a2b3c4d, val mIoU 12.00 at epoch 1 (")
    assert f"of {record.planned_trials} trials ended" in progress.progress_line([])
