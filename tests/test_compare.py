"""Comparing experiments (``python -m analysis EXP1 EXP2``, ``python -m analysis RUN``) on copies of a
real finished experiment, edited where a test needs another space, metric, parent or score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis import load_experiment
from analysis.__main__ import main
from analysis.compare import best_so_far, comparison_table, config_differences, load_experiments
from trainable.config import flatten

FIXTURE = Path(__file__).parent / "data" / "search-42ee819"
BASE, BEST_B = "trial_16bfa72c", "trial_b98a9848"  # the fixture's baseline (its best trial) and another trial


def _copy(dst: Path, **record) -> Path:
    """A copy of the fixture at ``dst`` with its record as version 3 and ``record``'s keys set."""
    shutil.copytree(FIXTURE, dst)
    path = dst / "experiment.json"
    data = json.loads(path.read_text())
    data.update({"version": 3, "parent": "", "parent_trial": "", "warm_start": [], **record})
    path.write_text(json.dumps(data))
    return dst


def _set_config(exp: Path, trial: str, key: str, value) -> None:
    """Set dotted ``key`` of the config ``trial`` trained (its params.json and schedule.json)."""
    for name, inner in (("params.json", None), ("schedule.json", "config")):
        path = exp / trial / name
        data = json.loads(path.read_text())
        node = data[inner] if inner else data
        *groups, last = key.split(".")
        for g in groups:
            node = node[g]
        node[last] = value
        path.write_text(json.dumps(data))


def _bump(exp: Path, trial: str, by: float) -> None:
    """Add ``by`` to every val mIoU ``trial`` reported."""
    path = exp / trial / "result.json"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({**r, "val_miou": r["val_miou"] + by}) + "\n" for r in rows))


def _reported(exp: Path) -> list[dict]:
    """Every result line of every trial, read straight from the files."""
    return [{"trial": d.name, **json.loads(line)} for d in sorted(exp.glob("trial_*"))
            for line in (d / "result.json").read_text().splitlines() if line.strip()]


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """Experiment a (the fixture) and b: started from a's baseline, on other data, one trial 1 point
    better everywhere, one trial's last epoch lost, and the best trials' holdout files in their folders."""
    a = _copy(tmp_path / "a")
    b = _copy(tmp_path / "b", parent=str(a), parent_trial=BASE)
    record = json.loads((b / "experiment.json").read_text())
    record["config"]["data"]["root"] = "/data/faces"
    (b / "experiment.json").write_text(json.dumps(record))
    _bump(b, BEST_B, 1.0)
    result = b / "trial_487d06e9" / "result.json"
    result.write_text(result.read_text().splitlines()[0] + "\n")
    _set_config(a, BASE, "data.holdout", str(a / "holdout.txt"))
    _set_config(b, BEST_B, "data.holdout", str(b / "holdout.txt"))
    return a, b


def test_table_rows_and_numbers(pair):
    a, b = pair
    exps = load_experiments([a, b])
    table = comparison_table(exps).set_index("experiment")
    assert list(table.index) == ["a", "b"]
    assert list(table.columns) == ["space", "trials", "trial-epochs", "best val mIoU", "baseline val mIoU", "gain",
                                   "data", "challenge", "from"]
    assert table["trials"].tolist() == [3, 3]
    assert table["trial-epochs"].tolist() == [len(_reported(a)), len(_reported(b))] == [6, 5]
    for name, exp in zip("ab", exps):
        s = exp.summary()
        best = s.loc[s["rank"] == 1, "score"].item()
        base = s.loc[s["is_baseline"], "score"].item()
        assert table.loc[name, "best val mIoU"] == pytest.approx(best, rel=1e-3)
        assert table.loc[name, "baseline val mIoU"] == pytest.approx(base, rel=1e-3)
    # b's bumped trial reached 4.0972 + 1 at its last epoch; both baselines are the fixture's best, 4.3927
    assert table["best val mIoU"].tolist() == [4.393, 5.097]
    assert table["baseline val mIoU"].tolist() == [4.393, 4.393]
    assert table["gain"].tolist() == [0.0, 0.7045]
    assert table["data"].tolist() == ["synthetic", "/data/faces"]
    assert table["challenge"].tolist() == ["-", "-"]
    assert table["from"].tolist() == ["-", f"a/{BASE}"]


def test_table_without_parents_has_no_from_column(tmp_path):
    exps = load_experiments([_copy(tmp_path / "x"), _copy(tmp_path / "y", space="loss")])
    table = comparison_table(exps)
    assert "from" not in table.columns and table["space"].tolist() == ["augmentation", "loss"]


def test_differing_keys_of_the_best_configurations(pair):
    a, b = pair
    _set_config(b, BEST_B, "data.cache_dir", "/elsewhere")  # a path outside the experiment: a real difference
    diff = config_differences(load_experiments([a, b]))
    base, other = (flatten(json.loads((e / t / "params.json").read_text())) for e, t in ((a, BASE), (b, BEST_B)))
    assert base["data.holdout"] != other["data.holdout"]  # differs, but only by the experiment's folder
    assert list(diff.columns) == ["a", "b"]
    assert list(diff.index) == ["aug.cutout_max", "aug.cutout_p", "aug.jitter_scale", "aug.rotate_limit",
                                "aug.scale_max", "data.cache_dir"]
    assert diff.loc["aug.rotate_limit"].tolist() == [25.0, 33.73]
    assert diff.loc["aug.cutout_p"].tolist() == [0.0, 0.5554]
    assert diff.loc["data.cache_dir"].tolist() == ["", "/elsewhere"]


def test_best_so_far_follows_the_result_timestamps(tmp_path):
    exp = _copy(tmp_path / "a")
    curve = best_so_far([load_experiment(exp)])
    rows = sorted(_reported(exp), key=lambda r: (r["timestamp"], r["epoch"], r["trial"]))
    running, expected = float("-inf"), []
    for r in rows:
        running = max(running, r["val_miou"])
        expected.append(running)
    assert curve["trial_epochs"].tolist() == [1, 2, 3, 4, 5, 6]
    assert curve["best"].tolist() == expected
    # the two first epochs came at the same second (3.632 and 3.600); the baseline's second epoch (4.393) third
    assert curve["best"].tolist()[:3] == pytest.approx([3.6324, 3.6324, 4.3927], abs=1e-4)
    assert curve["trial"].tolist()[-1] == BEST_B


def test_cli_writes_the_comparison_beside_the_first_experiment(pair, capsys):
    a, b = pair
    assert main([str(a), str(b)]) == 0
    outs = list(a.parent.glob("comparison-*"))
    assert len(outs) == 1 and outs[0].name[len("comparison-"):].replace("-", "").isdigit()
    out = outs[0]
    for name in ("comparison.md", "tables/comparison.md", "tables/comparison.csv", "tables/comparison.tex",
                 "tables/best_config_differences.csv", "plots/best_so_far.png"):
        assert (out / name).is_file(), name
    png = (out / "plots" / "best_so_far.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    table = pd.read_csv(out / "tables" / "comparison.csv")
    assert table["trial-epochs"].tolist() == [6, 5] and table["best val mIoU"].tolist() == [4.393, 5.097]
    report = (out / "comparison.md").read_text()
    assert "| b | augmentation | 3 | 5 | 5.097 | 4.393 | 0.7045 | /data/faces | - | a/trial_16bfa72c |" in report
    assert "](plots/best_so_far.png)" in report and "| aug.rotate_limit | 25 | 33.73 |" in report
    printed = capsys.readouterr().out
    assert "compared 2 experiments (a, b)" in printed and f"report:  {out / 'comparison.md'}" in printed


def test_staged_search_compares_its_stages(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "stages.json").write_text(json.dumps({"spaces": ["augmentation", "loss", "optimizer"]}))
    first = _copy(run / "1-augmentation")
    _copy(run / "2-loss", space="loss", parent=str(first), parent_trial=BASE)  # 3-optimizer never started
    assert main([str(run), "--format", "csv"]) == 0
    out = run / "analysis"
    assert (out / "comparison.md").is_file() and (out / "plots" / "best_so_far.png").is_file()
    assert not (out / "tables" / "comparison.md").exists()  # --format csv only
    table = pd.read_csv(out / "tables" / "comparison.csv")
    assert table["experiment"].tolist() == ["1-augmentation", "2-loss"]
    assert table["from"].fillna("-").tolist() == ["-", f"1-augmentation/{BASE}"]
    assert "compared 2 stages of run (1-augmentation, 2-loss)" in capsys.readouterr().out

    curve = best_so_far(load_experiments([run / "1-augmentation", run / "2-loss"]), staged=True)
    one, two = (curve[curve["experiment"] == n] for n in ("1-augmentation", "2-loss"))
    assert one["trial_epochs"].tolist() == [1, 2, 3, 4, 5, 6] and one["start"].eq(0).all()
    assert two["start"].eq(one["trial_epochs"].max()).all()  # stage 2 starts where stage 1 ended
    assert two["trial_epochs"].tolist() == [7, 8, 9, 10, 11, 12]
    assert two["best"].tolist() == one["best"].tolist()  # each stage's own best so far
    assert pd.read_csv(out / "tables" / "best_so_far.csv")["trial_epochs"].tolist() == list(range(1, 13))
    side_by_side = best_so_far(load_experiments([run / "1-augmentation", run / "2-loss"]))
    assert side_by_side.groupby("experiment")["trial_epochs"].min().tolist() == [1, 1]


def _errors(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_different_metrics_are_refused_and_nothing_is_written(tmp_path, capsys):
    a = _copy(tmp_path / "a")
    b = _copy(tmp_path / "b", metric="val_fscore")
    assert main([str(a), str(b)]) == 2
    err = _errors(capsys)
    assert f"{a} ranks by val mIoU and {b} by val F-score" in err
    assert not list(tmp_path.glob("comparison-*"))
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing", "experiment folder not found"),
    (lambda p: p / "plain", "not an experiment directory (no experiment.json)"),
    (lambda p: p / "a", "given twice"),
    (lambda p: p / "staged", "a staged search, not one experiment"),
])
def test_not_an_experiment_is_refused(tmp_path, capsys, setup, message):
    a = _copy(tmp_path / "a")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("x")
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "stages.json").write_text(json.dumps({"spaces": ["augmentation"]}))
    assert main([str(a), str(setup(tmp_path))]) == 2
    assert message in _errors(capsys)
    assert not list(tmp_path.glob("comparison-*"))


@pytest.mark.parametrize("stages, message", [
    ({"spaces": ["augmentation", "loss"]}, "no stage of the staged search (1-augmentation, 2-loss) has a trial yet"),
    ({"stages": []}, "unreadable as a staged search's stages"),
])
def test_staged_folder_without_stages_is_refused(tmp_path, capsys, stages, message):
    (tmp_path / "stages.json").write_text(json.dumps(stages))
    assert main([str(tmp_path)]) == 2
    assert message in _errors(capsys)
    assert not (tmp_path / "analysis").exists()
