"""Each edition's data as its users hold it, from download to submission through the command line:
a real search (ASHA + Optuna), the analysis, a retrain and the submission, on synthetic faces laid
out as the 2025 release (train + unlabeled test, no validation masks) and as the full CelebAMask-HQ
release (per-part PNGs under 2x images), with and without its official split files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from tests.test_launch import ROOT, TINY, launch
from trainable.challenges import CHALLENGES
from trainable.errors import UserError
from trainable.metrics import SEARCH_METRICS
from trainable.submission import LAYOUTS, get_layout
from trainable.synthetic import generate


@pytest.mark.parametrize("name", list(CHALLENGES))
def test_every_edition_names_a_metric_and_a_layout_that_exist(name):
    assert CHALLENGES[name].metric in SEARCH_METRICS and CHALLENGES[name].submission in LAYOUTS


def test_an_unknown_layout_lists_the_valid_ones():
    with pytest.raises(UserError, match="valid layouts are masks-folder, masks-and-solution"):
        get_layout("masks-in-a-box")

FACES = {"n_train": 14, "n_val": 4, "n_test": 3, "size": 64, "seed": 1}


def _run(*args: str) -> str:
    proc = launch(*args)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-4000:]
    return out


def _search_to_submission(data, tmp_path, expected_notes: tuple[str, ...], holdout: int, images: tuple[str, ...] = (),
                          predicted: int = 3) -> None:
    exp = tmp_path / "edition"
    out = _run("--space", "augmentation", "--data", str(data), "--storage-path", str(tmp_path), "--name", exp.name,
               "--challenge", "ce7454-2025", "--num-samples", "3", "--set", "train.epochs=2", "--grace-period", "1",
               "--reduction-factor", "2", *TINY)
    for note in expected_notes:
        assert note in out
    assert "rules:          ce7454-2025: val F-score, at most 1,821,084 parameters, from scratch" in out
    best = re.search(r"^best trial\s+(trial_\w+): val F-score ([0-9.]+)", out, re.MULTILINE)
    assert best, out[-3000:]
    record = json.loads((exp / "experiment.json").read_text())
    assert record["challenge"] == "ce7454-2025" and record["metric"] == "val_fscore"
    held = (exp / "holdout.txt").read_text().split() if holdout else []
    assert len(held) == holdout and (exp / "holdout.txt").exists() == bool(holdout)
    rows = [json.loads(x) for x in (exp / best[1] / "result.json").read_text().splitlines()]
    assert all("val_fscore" in r and "val_miou" in r for r in rows)
    assert float(best[2]) == pytest.approx(rows[-1]["val_fscore"], abs=1e-5)

    analysis = subprocess.run([sys.executable, "-m", "analysis", str(exp)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    assert analysis.returncode == 0, analysis.stderr[-3000:]
    table = pd.read_csv(exp / "analysis" / "tables" / "configurations.csv")
    assert "val F-score" in table.columns and table.loc[0, "trial"].split(" ")[0] == best[1]
    assert "val F-score" in (exp / "analysis" / "report.md").read_text()

    # the second command: retrain the best trial and submit it (its rules and test split checked first)
    submit = ("--submission", "ce7454-2025")
    if images:  # no test split to predict: refused before training, then predicted with --images
        refused = launch("retrain", str(exp), "--out", str(tmp_path / "retrain"), *submit)
        assert refused.wait(timeout=300) == 2 and "has no test split" in refused.stdout.read()
        assert not (tmp_path / "retrain").exists()
    retrained = _run("retrain", str(exp), "--out", str(tmp_path / "retrain"), *(() if images else submit))
    assert "val F-score" in retrained and best[1] in retrained
    trained = tmp_path / "retrain" / best[1]
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["val_fscore"] == pytest.approx(rows[-1]["val_fscore"], abs=1e-9)  # the same split, the same run
    if images:
        retrained = _run("predict", str(trained / "model.pt"), "--out", str(trained / "submission"), *submit,
                         *images)
    assert "submission: ce7454-2025 (masks-and-solution)" in retrained
    with zipfile.ZipFile(trained / "submission.zip") as z:
        names = sorted(z.namelist())
    masks = [n for n in names if n.startswith("masks/")]
    assert len(masks) == predicted and names[len(masks):] == ["solution/ckpt.pth", "solution/requirements.txt",
                                                       "solution/run.py"]


# slow (50 s): the 2025 submission is built and checked in every run (tests/test_retrain_predict.py)
@pytest.mark.slow
def test_the_2025_release_from_download_to_submission(tmp_path):
    data = generate(tmp_path / "dev-public", layout="2025", **FACES)
    # 18 labelled pairs in train (the 2025 layout holds no val), 10% held out: 2
    _search_to_submission(data, tmp_path, ("no validation split; 2 of 18 training pairs are held out for validation",),
                          holdout=2)


@pytest.mark.slow
@pytest.mark.parametrize("split_files", [True, False])
def test_the_celebamask_hq_release_from_download_to_submission(tmp_path, split_files):
    data = generate(tmp_path / "CelebAMask-HQ", layout="release", split_files=split_files, **FACES)
    if split_files:  # the official split: 14 train, 4 val, 3 test faces, nothing held out
        notes = ("the CelebAMask-HQ release, its part masks combined into index masks",
                 "(the official split: train 14, val 4, test 3)")
        _search_to_submission(data, tmp_path, notes, holdout=0)  # predicts the official test split
    else:  # all 21 faces in train, 2 held out; without a test split the images to predict are named
        notes = ("(no split files, so one split: train 21)", "2 of 21 training pairs are held out for validation")
        _search_to_submission(data, tmp_path, notes, holdout=2, images=("--images", str(data / "CelebA-HQ-img")),
                              predicted=21)
