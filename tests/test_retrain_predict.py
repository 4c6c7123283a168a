"""Retrain -> predict -> evaluate on the tiny synthetic set, and the submission's refusals."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from search_spaces.driver import new_record
from tests.conftest import tiny_config
from tests.test_launch import launch
from trainable.config import Config, flatten
from trainable.dataset import FaceParsingDataset
from trainable.decode import read_mask
from trainable.errors import UserError
from trainable.evaluate import evaluate_folders
from trainable.predict import predict_folder
from trainable.retrain import format_results, retrain
from trainable.scan import scan_split


@pytest.fixture(scope="module")
def retrained(tiny_master, tmp_path_factory) -> tuple[Path, dict]:
    cfg = Config.from_dict(tiny_config(tiny_master, train={"epochs": 2, "tta_scales": [0.75, 1.0], "tta_flip": True}))
    out = tmp_path_factory.mktemp("retrain") / "best"
    return out, retrain(cfg, out, log=lambda *_: None)


# what retrain prints: the experiment's metric, beside the search's and with TTA; predict's next command
# for the edition followed (its test images found by predict in the data's own layout)
@pytest.mark.parametrize("metric, scores, challenge, line, then", [
    ("val_miou", (61.23, 60.0, 62.5), None,
     "trial_a: val mIoU 61.23 (search 60.00), with TTA (scales 1 + flip) 62.50",
     "--out predictions --zip submission.zip"),
    ("val_fscore", (0.6123, 0.6, 0.625), "ce7454-2025",
     "trial_a: val F-score 0.6123 (search 0.6000), with TTA (scales 1 + flip) 0.6250",
     "--out submission --submission ce7454-2025"),
])
def test_the_retrain_summary_speaks_the_experiments_metric(metric, scores, challenge, line, then):
    final, search, tta = scores
    results = [{"trial": "trial_a", "out": "r/trial_a", "search_score": search, metric: final, f"{metric}_tta": tta,
                "tta_scales": [1.0], "tta_flip": True, "params": 1000, "notes": []}]
    lines = format_results(results, metric, challenge)
    assert lines[1] == line
    assert lines[-2:] == ["next:", f"  python launch.py predict r/trial_a/model.pt {then}"]


def test_retrain_writes_weights_curves_config_and_machine(retrained):
    out, summary = retrained
    for name in ("model.pt", "model.safetensors", "config.json", "curves.csv", "curves.png", "machine.json",
                 "summary.json", "gallery.png", "worst.png", "confusion.png"):
        assert (out / name).is_file(), name
    state = torch.load(out / "model.pt", weights_only=True)
    assert {"model", "config", "normalization", "metrics"} <= set(state)
    from safetensors.torch import load_file

    assert set(load_file(str(out / "model.safetensors"))) == set(state["model"])
    assert summary["params"] == sum(v.numel() for k, v in state["model"].items() if "running" not in k
                                    and "num_batches" not in k)
    assert len((out / "curves.csv").read_text().splitlines()) == 3  # header + 2 epochs
    assert summary["tta_scales"] == [0.75, 1.0] and summary["tta_flip"] is True
    assert json.loads((out / "machine.json").read_text())["torch"] == torch.__version__


def test_the_pictures_are_drawn_from_the_predictions_the_retrain_scored(retrained):
    # the per-image scores and the confusion behind the gallery, the worst images and the confusion
    # matrix are the validation the retrain reported (with its TTA: scales 0.75, 1 and flip)
    from trainable.metrics import compute_metrics
    from trainable.val_predictions import Predictor

    out, summary = retrained
    predictor = Predictor(out / "model.pt")
    fscores = predictor.score_images("val_fscore")
    assert fscores.scores.mean() == pytest.approx(summary["val_fscore_tta"], abs=1e-9)
    mious = predictor.score_images("val_miou")
    assert compute_metrics(mious.confusion).miou == pytest.approx(summary["val_miou_tta"], abs=1e-9)
    assert len(mious.names) == 5 and (mious.confusion == fscores.confusion).all()
    worst = mious.worst(2)
    shown = predictor.show_images(worst, "val_miou")
    assert [s.score for s in shown] == pytest.approx(mious.scores[worst].tolist())
    assert [s.name for s in shown] == [mious.names[i] for i in worst]
    assert all(s.image.shape[:2] == s.truth.shape == s.pred.shape for s in shown)


@pytest.mark.parametrize("tta", [False, True])
def test_predictions_score_what_the_retrain_reported(retrained, tiny_master, tmp_path, tta):
    out, summary = retrained
    preds = tmp_path / "preds"
    result = predict_folder(out / "model.pt", tiny_master / "val" / "val_image", preds,
                            scales=None if tta else [1.0], flip=tta)
    assert result["images"] == 5
    assert sorted(p.name for p in preds.iterdir()) == [f"{i}.png" for i in range(5)]
    metrics, _, _ = evaluate_folders(preds, tiny_master / "val" / "val_mask")
    expected = summary["val_miou_tta"] if tta else summary["val_miou"]
    assert metrics.miou == pytest.approx(expected, abs=1e-9)
    if not tta:  # the per-image F-score of training's validation pass, from the same masks
        assert metrics.fscore == pytest.approx(summary["val_fscore"], abs=1e-9)


def test_large_images_give_large_masks_unless_size_is_set(retrained, tiny_master, tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    for p in sorted((tiny_master / "test" / "test_image").glob("*.jpg")):
        cv2.imwrite(str(big / p.name), cv2.resize(cv2.imread(str(p)), (256, 256)))
    predict_folder(retrained[0] / "model.pt", big, tmp_path / "full")
    predict_folder(retrained[0] / "model.pt", big, tmp_path / "small", size=64)
    for name in ("0.png", "1.png", "2.png"):
        full = Image.open(tmp_path / "full" / name)
        assert full.size == (256, 256) and full.mode == "P"
        assert Image.open(tmp_path / "small" / name).size == (64, 64)
        assert read_mask(tmp_path / "full" / name).max() <= 18


def test_zip_has_one_top_folder_and_a_submission_note(retrained, tiny_master, tmp_path):
    result = predict_folder(retrained[0] / "model.pt", tiny_master / "test" / "test_image", tmp_path / "masks",
                            zip_path=tmp_path / "sub.zip")
    with zipfile.ZipFile(result["zip"]) as z:
        assert sorted(z.namelist()) == ["masks/0.png", "masks/1.png", "masks/2.png"]
    note = (tmp_path / "SUBMISSION.md").read_text()
    assert f"{result['params']:,}" in note and "Reproduce" in note and "segmentation-models-pytorch" in note


def test_refusals(retrained, tiny_master, tmp_path):
    model = retrained[0] / "model.pt"
    images = tiny_master / "test" / "test_image"
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="output folder exists and is not empty; choose another --out or pass --force"):
        predict_folder(model, images, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images"):
        predict_folder(model, tmp_path / "empty", tmp_path / "o1")
    with pytest.raises(UserError, match="over the 1e-05 MB upload limit"):
        predict_folder(model, images, tmp_path / "o2", zip_path=tmp_path / "big.zip", max_zip_mb=1e-5)
    assert not (tmp_path / "big.zip").exists() and (tmp_path / "o2" / "0.png").exists()
    with pytest.raises(UserError, match="no checkpoint found"):
        predict_folder(tmp_path / "nope.pt", images, tmp_path / "o3")
    assert not (tmp_path / "o3").exists()


def test_cli_retrain_then_predict(tiny_master, tmp_path):
    # a one-trial experiment folder as a search leaves it
    exp = tmp_path / "exp"
    (exp / "trial_abc").mkdir(parents=True)
    cfg = Config.from_dict(tiny_config(tiny_master, train={"epochs": 1}))
    new_record("augmentation", name="exp", overrides=flatten(cfg.to_dict())).write(exp)
    (exp / "trial_abc" / "params.json").write_text(json.dumps(cfg.to_dict()))
    row = {"epoch": 1, "training_iteration": 1, "val_miou": 5.0, "val_acc": 50.0, "time_total_s": 1.0, "done": True}
    (exp / "trial_abc" / "result.json").write_text(json.dumps(row) + "\n")

    proc = launch("retrain", str(exp), "--seeds", "2", "--train-on", "train+val")
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "over 2 seeds" in out and "not a held-out estimate" in out
    model = exp / "retrain" / "trial_abc-seed0" / "model.pt"
    assert model.is_file() and (exp / "retrain" / "trial_abc-seed1" / "model.pt").is_file()

    preds = tmp_path / "preds"
    proc = launch("predict", str(model), "--images", str(tiny_master / "test" / "test_image"), "--out", str(preds),
                  "--tta", "0.75,1", "--flip")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    assert "predicted 3 images" in out and "flip on" in out
    again = launch("predict", str(model), "--images", str(tiny_master / "test" / "test_image"), "--out", str(preds))
    assert again.communicate(timeout=300)[0].count("error: ") == 1 and again.returncode == 2


def test_flip_double_adds_mirrored_swapped_copies(tiny_master):
    info = scan_split(tiny_master, "train")
    ds = FaceParsingDataset(info.images, info.masks, lambda image, mask: {"image": image, "mask": mask},
                            flip_double=True)
    assert len(ds) == 2 * len(info)
    _, mask = ds[0]
    _, mirrored = ds[len(info)]
    swap = {4: 5, 5: 4, 6: 7, 7: 6, 8: 9, 9: 8}
    expected = np.vectorize(lambda v: swap.get(v, v))(mask.numpy()[:, ::-1])
    assert np.array_equal(mirrored.numpy(), expected)


def test_train_on_train_plus_val(tiny_master):
    from trainable.run import build_run

    run = build_run(Config.from_dict(tiny_config(tiny_master, data={"train_on": "train+val"})))
    assert len(run.train_loader.dataset) == 10 + 5


REPO_MODULES = ("trainable", "search_spaces", "analysis", "launch", "tests")
# run.py as the grader runs it: a fresh interpreter in which nothing of this repository can be imported
ALONE = f"""
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {REPO_MODULES!r}:
            raise ImportError("run.py imported " + name + " from the repository it was shipped from")
sys.meta_path.insert(0, Refuse())
sys.path[:] = [p for p in sys.path if p not in ("", {str(Path(__file__).resolve().parents[1])!r})]
sys.argv = ["run.py", *sys.argv[1:]]
runpy.run_path("run.py", run_name="__main__")
"""


def test_2025_submission_is_masks_and_a_solution_whose_run_py_alone_reproduces_every_mask(retrained, tiny_master,
                                                                                         tmp_path):
    import subprocess
    import sys

    out = tmp_path / "submission"
    # no --images: the checkpoint's data's test split is the prediction set
    result = predict_folder(retrained[0] / "model.pt", None, out, submission="ce7454-2025")
    assert result["zip"] == f"{out}.zip" and result["images"] == 3
    with zipfile.ZipFile(result["zip"]) as z:
        assert sorted(z.namelist()) == ["masks/0.png", "masks/1.png", "masks/2.png", "solution/ckpt.pth",
                                        "solution/requirements.txt", "solution/run.py"]
        z.extractall(tmp_path / "unzipped")
    solution = tmp_path / "unzipped" / "solution"
    spec = torch.load(solution / "ckpt.pth", weights_only=True)
    assert spec["tta_scales"] == [0.75, 1.0] and spec["tta_flip"] is True  # the checkpoint's TTA
    assert spec["arch"] == "Unet" and not any(k.startswith("aux") for k in spec["state_dict"])
    pins = dict(line.split("==") for line in (solution / "requirements.txt").read_text().split())
    assert set(pins) == {"torch", "segmentation-models-pytorch", "timm", "albumentations", "numpy", "pillow"}
    assert pins["torch"] == torch.__version__.split("+")[0]
    for i in range(3):
        image = tiny_master / "test" / "test_image" / f"{i}.jpg"
        mask = tmp_path / f"{i}.png"
        run = subprocess.run([sys.executable, "-c", ALONE, "--input", str(image), "--output", str(mask),
                              "--weights", "ckpt.pth"], cwd=solution, capture_output=True, text=True, timeout=300,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert run.returncode == 0, run.stderr[-2000:]
        mine = Image.open(tmp_path / f"{i}.png")
        assert mine.mode == "L" and mine.size == Image.open(image).size
        assert (tmp_path / f"{i}.png").read_bytes() == (tmp_path / "unzipped" / "masks" / f"{i}.png").read_bytes()
    assert "solution/run.py" in (tmp_path / "SUBMISSION.md").read_text()


def test_a_submission_is_refused_by_the_editions_rules_before_anything_is_written(retrained, tmp_path):
    state = torch.load(retrained[0] / "model.pt", weights_only=True)
    params = sum(p.numel() for k, p in state["model"].items() if k.startswith("net.") and "running" not in k
                 and "num_batches" not in k)
    from dataclasses import replace

    from trainable import challenges

    strict = replace(challenges.CHALLENGES["ce7454-2025"], name="strict", max_params=params - 1)
    challenges.CHALLENGES["strict"] = strict
    try:
        with pytest.raises(UserError, match=f"has {params:,} trainable parameters; strict allows at most "
                                            f"{params - 1:,}"):
            predict_folder(retrained[0] / "model.pt", None, tmp_path / "sub", submission="strict")
    finally:
        del challenges.CHALLENGES["strict"]
    state["config"]["model"]["pretrained"] = "imagenet"  # as a 2022 model would be
    torch.save(state, tmp_path / "imagenet.pt")
    with pytest.raises(UserError, match="trained from imagenet weights, but ce7454-2024 allows training from scratch"):
        predict_folder(tmp_path / "imagenet.pt", None, tmp_path / "sub", submission="ce7454-2024")
    with pytest.raises(UserError, match="--submission ce7454-2026: unknown challenge; valid challenges are"):
        predict_folder(tmp_path / "imagenet.pt", None, tmp_path / "sub", submission="ce7454-2026")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imagenet.pt"]
    # the 2022 rules allow it: the masks under one folder, zipped, within 30 MB
    result = predict_folder(tmp_path / "imagenet.pt", None, tmp_path / "sub", submission="ai6126-2022")
    with zipfile.ZipFile(result["zip"]) as z:
        assert sorted(z.namelist()) == ["sub/0.png", "sub/1.png", "sub/2.png"]


def test_retrain_submission_is_refused_before_training(tiny_master, tmp_path):
    from trainable.retrain import RetrainJob, check_submission

    cfg = Config.from_dict(tiny_config(tiny_master))
    two = [RetrainJob("trial_a", cfg, tmp_path / "a", 1, 0.5), RetrainJob("trial_b", cfg, tmp_path / "b", 1, 0.4)]
    with pytest.raises(UserError, match="--submission ce7454-2025: submits one model, but this retrain trains 2"):
        check_submission(two, "ce7454-2025")
    big = Config.from_dict(tiny_config(tiny_master, model={"encoder": "resnet34", "max_params": 0}))
    with pytest.raises(UserError, match=r"trial trial_a: the model has [\d,]+ trainable parameters; ce7454-2025 "
                                        r"allows at most 1,821,084"):
        check_submission([RetrainJob("trial_a", big, tmp_path / "a", 1, 0.5)], "ce7454-2025")
    assert check_submission(two[:1], "ce7454-2025").name == "ce7454-2025"
    assert not list(tmp_path.iterdir())


def test_python_m_trainable_evaluate_scores_an_unpacked_2025_submission(retrained, tiny_master, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "sub"
    predict_folder(retrained[0] / "model.pt", tiny_master / "val" / "val_image", out, submission="ce7454-2025")
    metrics, _, _ = evaluate_folders(out / "masks", tiny_master / "val" / "val_mask")
    run = subprocess.run([sys.executable, "-m", "trainable.evaluate", str(out), str(tiny_master / "val" / "val_mask")],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    assert f"F-score         {metrics.fscore:.4f}" in run.stdout and f"mIoU          {metrics.miou:>8.3f}" in run.stdout
    refused = subprocess.run([sys.executable, "-m", "trainable.evaluate", str(tmp_path / "nope"), str(out)],
                             capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert refused.returncode == 2 and refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
