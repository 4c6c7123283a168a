"""Population Based Augmentation: explored values stay in range, schedules are inherited and
stretched, bad settings are one-line errors, and a real tiny PBT search, interrupted and resumed,
exploits, records its schedules, is analysed and is retrained by replaying them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest
from ray.tune.schedulers.pbt import _explore
from ray.tune.search.sample import Categorical, Integer

from analysis.load import load_experiment
from search_spaces import get_space
from search_spaces.driver import new_record
from search_spaces.population import RESAMPLE, KeepInRange, _mutations, explored
from tests.test_launch import ROOT, TINY, launch, trial_results
from trainable.config import Config
from trainable.errors import UserError
from trainable.schedule import aug_at, continue_schedule, start_schedule, stretch

SPACE = get_space("augmentation")


@pytest.mark.parametrize("edge", ["lower", "upper"])
def test_every_explored_value_stays_in_its_keys_range(edge):
    """Ray's own explore step (x0.8 / x1.2, or a redraw) from a config at a range edge, 500 times."""
    random.seed(0)
    keys = explored(SPACE)
    start = Config().to_dict()
    for key, domain in keys.items():
        name = key.split(".")[1]
        if isinstance(domain, Categorical):
            start["aug"][name] = domain.categories[0 if edge == "lower" else -1]
        else:
            upper = domain.upper - 1 if isinstance(domain, Integer) else domain.upper  # randint's is exclusive
            start["aug"][name] = domain.lower if edge == "lower" else upper
    seen = {k: set() for k in keys}
    config = start
    for _ in range(500):
        config, _ = _explore(config, _mutations(SPACE), RESAMPLE, (1.2, 0.8), KeepInRange.of(SPACE))
        for key, domain in keys.items():
            value = config["aug"][key.split(".")[1]]
            seen[key].add(value)
            if isinstance(domain, Categorical):
                assert value in domain.categories, (key, value)
            elif isinstance(domain, Integer):
                assert isinstance(value, int) and domain.lower <= value < domain.upper, (key, value)
            else:
                assert domain.lower <= value <= domain.upper, (key, value)
        Config.from_dict(config)  # and every explored config is a valid one
    assert all(len(v) > 1 for v in seen.values())  # every key was explored, the flip choice included


def test_clipping_names_each_edge():
    clip = KeepInRange.of(SPACE)
    cfg = Config().to_dict()
    cfg["aug"].update(rotate_limit=42.0, cutout_p=-0.1, cutout_holes=7)
    out = clip(cfg)["aug"]
    assert (out["rotate_limit"], out["cutout_p"], out["cutout_holes"]) == (35.0, 0.0, 3)


def test_an_exploit_inherits_the_donors_schedule_up_to_the_checkpoint():
    base = Config()
    donor = start_schedule(base, "trial_a")
    donor = continue_schedule(donor, "trial_b", "trial_a", 2, Config.from_dict({"aug": {"rotate_limit": 10.0}}))
    assert [(s["epoch"], s["trial"], s["from"]) for s in donor] == [(0, "trial_a", None), (2, "trial_a", "trial_b")]
    # trial_c takes trial_a's checkpoint of epoch 4 with new settings
    mine = continue_schedule(donor, "trial_a", "trial_c", 4, Config.from_dict({"aug": {"rotate_limit": 5.0}}))
    assert [(s["epoch"], s["trial"], s["from"]) for s in mine] == [
        (0, "trial_a", None), (2, "trial_a", "trial_b"), (4, "trial_c", "trial_a")]
    assert [aug_at(mine, e).rotate_limit for e in range(6)] == [25.0, 25.0, 10.0, 10.0, 5.0, 5.0]
    # a resume continues its own schedule unchanged
    assert continue_schedule(mine, "trial_c", "trial_c", 5, Config.from_dict({"aug": {"rotate_limit": 5.0}})) == mine
    # resumed with other settings than its checkpoint's last ones (the search's state was saved before
    # the exploit its checkpoint holds): the schedule records what trains from the resumed epoch on
    other = continue_schedule(mine, "trial_c", "trial_c", 5, Config())
    assert other[:-1] == mine and other[-1] == {"epoch": 5, "aug": asdict(Config().aug), "trial": "trial_c",
                                                "from": None}
    assert [aug_at(other, e).rotate_limit for e in range(7)] == [25.0, 25.0, 10.0, 10.0, 5.0, 25.0, 25.0]


@pytest.mark.parametrize("to_epochs, changes", [(8, [0, 2, 4]), (16, [0, 4, 8]), (4, [0, 1, 2]), (2, [0, 1])])
def test_a_schedule_stretches_to_the_retrain(to_epochs, changes):
    schedule = [{"epoch": e, "aug": {}, "trial": "t", "from": None} for e in (0, 2, 4)]
    assert [s["epoch"] for s in stretch(schedule, 8, to_epochs)] == changes


@pytest.mark.parametrize("space, flags, message", [
    ("model", {}, "--space model: --scheduler pbt has nothing to change during training"),
    ("augmentation", {"num_samples": 1}, "--num-samples 1: a population of 1 has no better trial to copy"),
    ("augmentation", {"perturbation_interval": 8}, "--perturbation-interval 8: not shorter than the 8 epochs"),
    ("augmentation", {"searcher": "tpe"}, "--searcher tpe: --scheduler pbt draws its first population at random"),
    ("augmentation", {"ablation": True}, "--scheduler pbt: an --ablation runs its planned configurations"),
])
def test_bad_population_settings_are_refused(space, flags, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        new_record(space, scheduler="pbt", max_epochs=8, **flags)


def test_a_perturbation_interval_needs_a_population_scheduler():
    with pytest.raises(UserError, match="--perturbation-interval 2: only a population search exploits"):
        new_record("augmentation", perturbation_interval=2)


def test_a_bad_population_flag_is_one_error_line(tmp_path):
    proc = launch("search", "--space", "augmentation", "--scheduler", "pbt", "--num-samples", "1",
                  "--storage-path", str(tmp_path))
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 2 and out.strip().splitlines() == [
        "error: --num-samples 1: a population of 1 has no better trial to copy; use at least 2 (4 to 8 is typical)"]
    assert not any(tmp_path.iterdir())


EPOCHS = 3


@pytest.fixture(scope="module")
def pbt_search(tiny_master, tmp_path_factory):
    """A tiny PBT search, interrupted with Ctrl-C once its trials stand at different epochs (one past
    the first boundary, one not) and resumed: (experiment, the resumed driver's output, the trials'
    result rows at the interruption)."""
    storage = tmp_path_factory.mktemp("pbt")
    exp = storage / "pbt"
    # one trial at a time: the second is a whole epoch away from its report when the first one's arrives
    proc = launch("search", "--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(storage),
                  "--name", "pbt", "--num-samples", "2", "--set", f"train.epochs={EPOCHS}", "--scheduler", "pbt",
                  "--perturbation-interval", "1", "--max-concurrent", "1", *TINY, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and sum(map(len, _rows(exp).values())) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + signal.SIGINT, out[-3000:]
    interrupted = _rows(exp)
    resumed = launch("resume", str(exp))
    out = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, out[-3000:]
    return exp, out, interrupted


def _rows(exp) -> dict[str, list[str]]:
    return {d.name: (d / "result.json").read_text().splitlines() for d in exp.glob("trial_*")
            if (d / "result.json").is_file()}


def _schedules(exp) -> dict[str, dict]:
    return {d.name: json.loads((d / "schedule.json").read_text()) for d in sorted(exp.glob("trial_*"))}


def test_a_tiny_pbt_search_exploits_and_keeps_every_schedule(pbt_search):
    exp, out, _ = pbt_search
    record = json.loads((exp / "experiment.json").read_text())
    assert (record["scheduler"], record["searcher"], record["perturbation_interval"]) == ("pbt", "random", 1)
    assert f"PBT (population 2, exploit and explore every 1 epochs of {EPOCHS})" in out
    _check_schedules(exp, population=2, epochs=EPOCHS)


def _check_schedules(exp, population: int, epochs: int) -> None:
    """Every trial's schedule on disk: at least one exploit, each segment inside the ranges and
    naming a trial that exists, the last one what the trial's weights trained with last."""
    schedules = _schedules(exp)
    assert len(schedules) == population
    exploits = [seg for s in schedules.values() for seg in s["schedule"] if seg["from"]]
    assert exploits, "no trial exploited"
    for name, s in schedules.items():
        segments = s["schedule"]
        assert segments[0]["epoch"] == 0 and all(0 < seg["epoch"] < epochs for seg in segments[1:])
        # what its weights last trained with, as the analysis and retrain read it
        assert segments[-1]["aug"] == s["config"]["aug"] == load_experiment(exp).params(name)["aug"]
        for seg in segments:
            Config.from_dict({"aug": seg["aug"]})
            for key, low, high, _ in KeepInRange.of(SPACE).bounds:
                assert low <= seg["aug"][key.split(".")[1]] <= high
    for seg in exploits:  # an exploit continues a trial that exists, from its schedule up to that epoch
        assert seg["from"] in schedules


def test_a_pbt_search_resumes_after_ctrl_c_with_every_epoch_trained_once(pbt_search):
    """Ray restores no scheduler state: a synchronous PBT resumed with its trials out of step would
    wait for a boundary it had passed. The population carries on from where each trial was and ends
    with every epoch of every trial trained once."""
    exp, out, interrupted = pbt_search
    assert sorted(map(len, interrupted.values())) == [1, 2], interrupted  # out of step when interrupted
    assert "2 ended: 2 completed" in out, out[-3000:]
    for name, rows in trial_results(exp).items():
        assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1)), name


def test_the_analysis_draws_the_schedules_and_tables_the_best(pbt_search):
    exp, _, _ = pbt_search
    proc = subprocess.run([sys.executable, "-m", "analysis", str(exp)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = (exp / "analysis" / "report.md").read_text()
    assert "## Augmentation schedules" in report and "plots/schedules.png" in report
    assert (exp / "analysis" / "plots" / "schedules.png").stat().st_size > 0
    for fmt in ("md", "tex", "csv"):
        assert (exp / "analysis" / "tables" / f"schedule.{fmt}").is_file()


def test_retrain_replays_the_best_schedule_and_repeats_its_figure(pbt_search, tmp_path):
    """With the trial's own epochs, replaying the schedule from scratch trains exactly the weights the
    lineage trained (its data order follows from the seed), so the final figure repeats; --fixed
    trains the final settings throughout."""
    exp, _, _ = pbt_search
    replay = subprocess.run([sys.executable, "launch.py", "retrain", str(exp), "--out", str(tmp_path / "replay")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    (folder,) = (tmp_path / "replay").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    schedule = _schedules(exp)[folder.name]["schedule"]
    assert [s["aug"] for s in summary["schedule"]] == [s["aug"] for s in schedule]
    final = json.loads((exp / folder.name / "result.json").read_text().splitlines()[-1])["val_miou"]
    assert summary["val_miou"] == pytest.approx(final, abs=1e-9)
    assert any("schedule" in n and "replayed" in n for n in summary["notes"])

    fixed = subprocess.run([sys.executable, "launch.py", "retrain", str(exp), "--fixed", "--epochs", "2",
                            "--out", str(tmp_path / "fixed")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert json.loads((tmp_path / "fixed" / folder.name / "summary.json").read_text())["schedule"] is None


@pytest.mark.slow  # 32 s; PB2 is PBT's subclass, whose search runs in every run (the module's fixture)
def test_a_tiny_pb2_search_explores_with_its_bandit(tiny_master, tmp_path):
    proc = launch("search", "--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                  "--name", "pb2", "--num-samples", "2", "--set", "train.epochs=2", "--scheduler", "pb2",
                  "--perturbation-interval", "1", *TINY)
    out = proc.communicate(timeout=900)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "PB2 (population 2, exploit and explore every 1 epochs of 2)" in out
    schedules = _schedules(tmp_path / "pb2")
    exploits = [seg for s in schedules.values() for seg in s["schedule"] if seg["from"]]
    assert exploits
    for seg in exploits:
        for key, low, high, _ in KeepInRange.of(SPACE).bounds:
            assert low <= seg["aug"][key.split(".")[1]] <= high


@pytest.mark.slow
def test_a_pbt_search_resumes_after_its_driver_is_killed(tiny_master, tmp_path):
    """SIGKILL to the driver (its local Ray left running, as after a crash) in mid-population:
    the resumed search ends with every epoch of every trial trained once."""
    exp = tmp_path / "kill"
    proc = launch("search", "--space", "augmentation", "--data", str(tiny_master), "--storage-path", str(tmp_path),
                  "--name", "kill", "--num-samples", "3", "--set", "train.epochs=4", "--scheduler", "pbt",
                  "--perturbation-interval", "1", *TINY, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and sum(map(len, _rows(exp).values())) < 5:
        time.sleep(0.2)
    proc.kill()
    proc.communicate(timeout=60)
    resumed = launch("resume", str(exp))
    out = resumed.communicate(timeout=900)[0]
    assert resumed.returncode == 0, out[-3000:]
    assert "3 ended: 3 completed" in out, out[-3000:]
    for name, rows in trial_results(exp).items():
        assert [r["epoch"] for r in rows] == [1, 2, 3, 4], name
    _check_schedules(exp, population=3, epochs=4)
