"""Analysis: table builders on hand-made frames, and the CLI on an experiment folder written as
Tune writes one (with a completed, a stopped, an errored and a still-running trial)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis import (
    ablation_table,
    configurations_table,
    factor_tables,
    load_experiment,
    per_class_table,
    trial_summary,
)
from analysis.__main__ import main
from analysis.load import trial_status
from tests.test_pictures import read_page
from trainable.classes import CLASSES
from trainable.config import Config, flatten

BASELINE = {"aug.rotate_limit": 25.0}


def _frames(curves: dict[str, list[tuple[float, float]]], rotate: dict[str, float], status: dict[str, str]):
    trials = pd.DataFrame([{"trial": t, "status": status[t], "epochs": len(c), "wall_time_s": 1.0,
                            "aug.rotate_limit": rotate[t]} for t, c in curves.items()])
    epochs = pd.DataFrame([{"trial": t, "epoch": i + 1, "val_miou": m, "val_acc": a,
                            **{f"iou/{c}": m + k for k, c in enumerate(CLASSES)}}
                           for t, c in curves.items() for i, (m, a) in enumerate(c)])
    return trials, epochs


def test_summary_scores_the_last_epoch_and_shows_the_peak_beside_it():
    trials, epochs = _frames(
        {"a": [(10, 90), (30, 91), (25, 93)],   # mIoU peaked at epoch 2, accuracy still rising: overfitting
         "b": [(10, 90), (20, 91), (22, 92)],   # still improving
         "c": [(10, 90), (30, 95), (25, 94)]},  # both fell: not overfitting by the reports' rule
        {"a": 25.0, "b": 10.0, "c": 35.0}, {"a": "completed", "b": "completed", "c": "completed"})
    s = trial_summary(trials, epochs, BASELINE).set_index("trial")
    assert s.loc["a", ["val_miou", "val_acc", "reported_epoch", "peak_miou", "peak_epoch", "overfitting"]].tolist() \
        == [25, 93, 3, 30, 2, True]
    assert s.loc["b", ["val_miou", "reported_epoch", "overfitting"]].tolist() == [22, 3, False]
    assert s.loc["c", ["val_miou", "peak_miou", "overfitting"]].tolist() == [25, 30, False]
    assert s["is_baseline"].tolist() == [True, False, False]
    assert s["delta"].tolist() == [0, -3, 0]
    assert s["rank"].tolist() == [1, 3, 2]  # a and c tie at 25: the order given (stable)


# (status, epochs reached, score) -> rank: completed trials by score, then the others by epochs reached,
# then score, as Optuna orders COMPLETE and PRUNED trials; diverged, refused and unscored never rank
RANKS = [
    (("completed", 3, 20.0), 2),
    (("completed", 3, 30.0), 1),
    (("stopped by ASHA at epoch 2", 2, 40.0), 3),
    (("stopped by ASHA at epoch 1", 1, 50.0), 5),
    (("running", 2, 10.0), 4),
    (("diverged at epoch 2: training loss became nan", 2, 99.0), None),
    (("refused", 0, float("nan")), None),
    (("errored", 0, float("nan")), None),
]


def test_rank_orders_trials_as_optuna_does():
    from analysis.rank import rank

    frame = pd.DataFrame([{"status": st, "epochs": ep, "score": sc} for (st, ep, sc), _ in RANKS])
    got = [None if pd.isna(r) else int(r) for r in rank(frame, "max")]
    assert got == [r for _, r in RANKS]
    minimised = [None if pd.isna(r) else int(r) for r in rank(frame, "min")]
    assert minimised[:2] == [1, 2]  # a lower score is better when the metric is minimised


def test_select_names_a_trial_or_takes_the_best():
    from analysis.rank import select
    from trainable.errors import UserError

    trials, epochs = _frames({"trial_a": [(10, 90)], "trial_b": [(30, 90)]}, {"trial_a": 25.0, "trial_b": 1.0},
                             {"trial_a": "completed", "trial_b": "completed"})
    summary = trial_summary(trials, epochs, BASELINE)
    assert select(summary)["trial"].tolist() == ["trial_b"]
    assert select(summary, top=2)["trial"].tolist() == ["trial_b", "trial_a"]
    assert select(summary, "a")["trial"].tolist() == select(summary, "trial_a")["trial"].tolist() == ["trial_a"]
    with pytest.raises(UserError, match="no ranked trial 'zz' in the experiment; trials with results are "
                                        "trial_b, trial_a"):
        select(summary, "zz")
    with pytest.raises(UserError, match="--trial a and --top 2: give one of them"):
        select(summary, "a", 2)


def test_factor_tables_use_only_completed_trials():
    trials, epochs = _frames({"a": [(30, 90)] * 3, "b": [(20, 90)] * 3, "c": [(5, 80)], "d": [(40, 90)] * 3},
                             {"a": 25.0, "b": 25.0, "c": 25.0, "d": 10.0},
                             {"a": "completed", "b": "completed", "c": "stopped by ASHA at epoch 1", "d": "completed"})
    table = factor_tables(trial_summary(trials, epochs, BASELINE), trials, ["aug.rotate_limit"])["aug.rotate_limit"]
    assert table.to_dict("records") == [
        {"level": "10", "trials": 1, "best mIoU": 40.0, "mean mIoU": 40.0},
        {"level": "25", "trials": 2, "best mIoU": 30.0, "mean mIoU": 25.0},
    ]


def test_ablation_table_mean_std_and_delta():
    trials, epochs = _frames({"b0": [(30, 90)], "b1": [(32, 90)], "r0": [(27, 90)], "r1": [(29, 91)]},
                             {"b0": 25.0, "b1": 25.0, "r0": 0.0, "r1": 0.0}, dict.fromkeys(["b0", "b1", "r0", "r1"],
                                                                                       "completed"))
    table = ablation_table(trial_summary(trials, epochs, BASELINE), trials, BASELINE,
                           {"aug.rotate_limit": [0.0, 25.0]})
    assert table[["factor", "level", "seeds"]].values.tolist() == [["baseline", "-", 2], ["aug.rotate_limit", "0.0", 2]]
    assert table["val mIoU"].tolist() == [31, 28]
    assert table["std"].tolist() == pytest.approx([math.sqrt(2), math.sqrt(2)])
    assert table["delta vs baseline"].tolist() == [0, -3]


def test_per_class_table_names_classes_and_includes_the_baseline():
    trials, epochs = _frames({"base": [(20, 90)], "x": [(30, 90)], "y": [(25, 90)]},
                             {"base": 25.0, "x": 1.0, "y": 2.0}, dict.fromkeys(["base", "x", "y"], "completed"))
    table = per_class_table(trial_summary(trials, epochs, BASELINE), epochs, top=1)
    assert list(table.index) == list(CLASSES)
    assert list(table.columns) == ["x", "base (baseline)"]
    assert table.loc["nose", "x"] == 32 and table.loc["background", "base (baseline)"] == 20


def _write_trial(exp: Path, name: str, rotate: float, curve: list[tuple[float, float]], *, done: bool = False,
                 error: bool = False, partial: bool = False) -> None:
    d = exp / f"trial_{name}"
    d.mkdir()
    config = Config.from_dict({"aug": {"rotate_limit": rotate}}).to_dict()
    (d / "params.json").write_text(json.dumps(config))
    lines = []
    for i, (m, a) in enumerate(curve):
        lines.append(json.dumps({"epoch": i + 1, "training_iteration": i + 1, "val_miou": m, "val_acc": a,
                                 "val_mean_f1": m, "val_loss": 1.0, "train_loss": 1.0, "lr": 1e-3,
                                 "time_total_s": float(i + 1), "done": done and i == len(curve) - 1,
                                 "iou": {c: m for c in CLASSES}, "config": config}))
    text = "\n".join(lines) + "\n"
    (d / "result.json").write_text(text + ('{"epoch": 3, "val_mi' if partial else ""))
    if error:
        (d / "error.txt").write_text("RuntimeError: boom")


@pytest.fixture
def experiment(tmp_path) -> Path:
    """An experiment whose experiment.json was written by the previous version (record version 1)."""
    exp = tmp_path / "exp"
    exp.mkdir()
    base = Config().to_dict()
    meta = {"space": "augmentation", "name": "exp", "ablation": False, "seeds": 1, "seed": 0,
            "settings": {"max_epochs": 3, "num_samples": 4, "grace_period": 1, "reduction_factor": 2,
                         "cpus_per_trial": 1, "gpus_per_trial": 0},
            "base_config": base, "searched": ["aug.rotate_limit"], "levels": {},
            "baseline": {"aug.rotate_limit": 25.0}, "synthetic": True, "command": "python launch.py ..."}
    (exp / "experiment.json").write_text(json.dumps(meta))
    _write_trial(exp, "base", 25.0, [(10, 80), (20, 85), (30, 90)], done=True)
    _write_trial(exp, "fast", 10.0, [(12, 81)], done=True)
    _write_trial(exp, "crash", 30.0, [(9, 70)], error=True)
    _write_trial(exp, "live", 5.0, [(11, 80), (21, 86)], partial=True)
    return exp


def test_cli_writes_everything_and_numbers_match_the_result_files(experiment, capsys):
    assert main([str(experiment), "--out", str(experiment / "report")]) == 0
    out = experiment / "report"
    for name in ("report.md", "trials.parquet", "tables/configurations.md", "tables/configurations.tex",
                 "tables/configurations.csv", "tables/per_class.csv", "plots/learning_curves.png",
                 "plots/per_class.png", "plots/score_vs_params.png"):
        assert (out / name).is_file(), name
    long = pd.read_parquet(out / "trials.parquet")
    raw = {}
    for d in experiment.glob("trial_*"):
        for line in (d / "result.json").read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:
                continue
            raw[(d.name, r["epoch"])] = r
    assert len(long) == len(raw)
    for _, row in long.iterrows():
        assert row["val_miou"] == raw[(row["trial"], row["epoch"])]["val_miou"]
    status = dict(zip(long["trial"], long["status"]))
    assert status == {"trial_base": "completed", "trial_fast": "stopped by ASHA at epoch 1",
                      "trial_crash": "errored", "trial_live": "running"}
    assert "aug.rotate_limit" in long.columns and "iou/skin" in long.columns
    table = pd.read_csv(out / "tables" / "configurations.csv")
    assert table.loc[0, "trial"] == "trial_base (baseline)" and table.loc[0, "val mIoU"] == 30
    # completed first, then by epochs reached: the running trial (2 epochs) above the two with one
    assert [t.split(" ")[0] for t in table["trial"]] == ["trial_base", "trial_live", "trial_fast", "trial_crash"]
    for _, row in table.iterrows():
        trial = row["trial"].split(" ")[0]
        last = max(e for t, e in raw if t == trial)
        assert row["val mIoU"] == raw[(trial, last)]["val_miou"]
        assert row["delta vs baseline"] == row["val mIoU"] - 30
    report = (out / "report.md").read_text()
    assert "ASHA (max 3 epochs, grace 1, reduction 2) + Optuna TPE, univariate (seed 0)" in report
    assert "ASHA scheduler (asynchronous successive halving), Optuna TPE sampler" in report
    assert "1 errored" in report and "1 running" in report
    assert r"\toprule" in (out / "tables" / "configurations.tex").read_text()
    assert "report:" in capsys.readouterr().out
    # its trials kept no checkpoint: the predictions are skipped with a note, and the page holds the rest
    assert "- note: best (trial_base) skipped: " in report
    page = read_page(out / "report.html")
    assert page.tables == report.count("\n|---") and len(page.images) == report.count("![")
    assert [h for h in page.headings if h] == [line.lstrip("# ").replace("`", "") for line in report.splitlines()
                                               if line.startswith("#")]


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "experiment folder not found"),
    (lambda p: p, "not an experiment directory (no experiment.json)"),
])
def test_missing_or_foreign_folder(tmp_path, capsys, setup, message):
    (tmp_path / "some.txt").write_text("x")
    assert main([str(setup(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bad_format(experiment, capsys):
    assert main([str(experiment), "--format", "md,xls"]) == 2
    assert "valid formats are md, tex, csv" in capsys.readouterr().err


def test_loading_keeps_config_columns_named_after_keys(experiment):
    exp = load_experiment(experiment)
    assert set(flatten(Config().to_dict())) <= set(exp.trials.columns)


def test_tables_speak_of_the_experiments_metric():
    trials, epochs = _frames({"a": [(10, 90)] * 2, "b": [(30, 90)] * 2}, {"a": 25.0, "b": 1.0},
                             {"a": "completed", "b": "completed"})
    epochs["val_fscore"] = epochs["trial"].map({"a": 0.9, "b": 0.5})  # ranks the other way round
    summary = trial_summary(trials, epochs, BASELINE, metric="val_fscore")
    table = configurations_table(summary, trials, ["aug.rotate_limit"], "val F-score")
    assert table["trial"].tolist() == ["a (baseline)", "b"]
    assert table[["val F-score", "val mIoU", "delta vs baseline"]].values.tolist() == [[0.9, 10, 0], [0.5, 30, -0.4]]
    factor = factor_tables(summary, trials, ["aug.rotate_limit"], metric_name="val F-score")["aug.rotate_limit"]
    assert list(factor.columns) == ["level", "trials", "best F-score", "mean F-score"]


def test_an_fscore_table_keeps_four_decimals():
    from analysis.report import to_markdown

    table = pd.DataFrame({"trial": ["a"], "val F-score": [0.85123], "val mIoU": [30.123],
                          "delta vs baseline": [-0.0123]})
    assert to_markdown(table).splitlines()[2] == "| a | 0.8512 | 30.12 | -0.0123 |"
    assert to_markdown(pd.DataFrame({"val mIoU": [30.123], "delta vs baseline": [-1.234]})).splitlines()[2] == \
        "| 30.12 | -1.23 |"


def test_a_config_value_is_shown_at_the_digits_it_trained_with():
    from analysis.formats import to_markdown

    table = pd.DataFrame({"trial": ["a"], "aug.cutout_max": [0.14192], "optim.lr": [0.00012346], "loss.lovasz": [2.0],
                          "val mIoU": [61.2345]})
    assert to_markdown(table).splitlines()[2] == "| a | 0.1419 | 0.0001235 | 2 | 61.23 |"


@pytest.mark.parametrize("scheduler, status", [("asha", "stopped by ASHA at epoch 1"),
                                               ("hyperband", "stopped by HyperBand at epoch 1")])
def test_a_stopped_trial_is_said_to_be_stopped_by_the_experiments_scheduler(tmp_path, scheduler, status):
    rows = [{"epoch": 1, "training_iteration": 1, "done": True}]
    assert trial_status(rows, 3, tmp_path, scheduler) == status
    assert trial_status([{**rows[0], "epoch": 3}], 3, tmp_path, scheduler) == "completed"
