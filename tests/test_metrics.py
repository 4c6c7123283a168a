import math

import numpy as np
import pytest
import torch
from PIL import Image

from launch import main
from trainable.classes import CLASSES
from trainable.evaluate import evaluate_folders
from trainable.metrics import compute_metrics, confusion_matrix


def course_miou(preds, gts):
    """The course evaluator's formula, written out: sums over the whole set, mean over 19 classes."""
    ious = []
    for c in range(19):
        inter = sum(int(((p == c) & (g == c)).sum()) for p, g in zip(preds, gts))
        union = sum(int((p == c).sum() + (g == c).sum()) for p, g in zip(preds, gts)) - inter
        ious.append(100.0 * inter / union if union else float("nan"))
    return float(np.mean(ious)), ious


def test_confusion_matrix_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    pred, gt = rng.integers(0, 19, (2, 7, 9)), rng.integers(0, 19, (2, 7, 9))
    brute = np.zeros((19, 19), np.int64)
    for p, g in zip(pred.ravel(), gt.ravel()):
        brute[g, p] += 1
    assert np.array_equal(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt)).numpy(), brute)
    assert np.array_equal(confusion_matrix(pred, gt), brute)


@pytest.mark.parametrize("seed", range(5))
def test_miou_equals_the_course_evaluator_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    gts = [rng.integers(0, 19, (32, 32)) for _ in range(4)]
    preds = [np.where(rng.random(g.shape) < 0.6, g, rng.integers(0, 19, g.shape)) for g in gts]
    conf = sum(confusion_matrix(p, g) for p, g in zip(preds, gts))
    m = compute_metrics(conf)
    expected, ious = course_miou(preds, gts)
    assert m.absent == ()
    assert abs(m.miou - expected) < 1e-9
    assert abs(m.course_miou - expected) < 1e-9
    assert np.allclose(m.iou, ious, rtol=0, atol=1e-9)
    assert m.acc == pytest.approx(100 * np.mean([(p == g).mean() for p, g in zip(preds, gts)]))


def test_background_counts_and_absent_class_is_reported_not_nan():
    gt = np.zeros((4, 4), np.int64)
    gt[:, 2:] = 1
    pred = gt.copy()
    pred[0, 0] = 1
    m = compute_metrics(confusion_matrix(pred, gt))
    assert m.iou[0] == pytest.approx(100 * 7 / 8)  # background is scored like any class
    assert m.iou[1] == pytest.approx(100 * 8 / 9)
    assert len(m.absent) == 17 and "hat" in m.absent
    assert math.isnan(m.course_miou)  # what the course would print
    assert m.miou == pytest.approx((100 * 7 / 8 + 100 * 8 / 9) / 2)
    assert m.f1[0] == pytest.approx(100 * 2 * 7 / (7 + 8))


def _write(folder, masks):
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in masks.items():
        Image.fromarray(m.astype(np.uint8), "L").save(folder / f"{name}.png")


def test_evaluate_cli_on_folders_with_a_single_subfolder(tmp_path, capsys):
    rng = np.random.default_rng(1)
    gts = {str(i): rng.integers(0, 19, (16, 16)) for i in range(3)}
    preds = {k: np.where(rng.random(g.shape) < 0.7, g, 0) for k, g in gts.items()}
    _write(tmp_path / "truth", gts)
    _write(tmp_path / "sub" / "only", preds)
    metrics, notes, _ = evaluate_folders(tmp_path / "sub", tmp_path / "truth")
    expected, _ = course_miou([preds[k] for k in gts], list(gts.values()))
    assert abs(metrics.miou - expected) < 1e-9 and notes == []
    assert main(["evaluate", str(tmp_path / "sub"), str(tmp_path / "truth")]) == 0
    out = capsys.readouterr().out
    assert f"mIoU{expected:>18.3f}" in out
    assert all(name in out for name in CLASSES)


def test_evaluate_reports_an_absent_class(tmp_path, capsys):
    _write(tmp_path / "t", {"a": np.ones((8, 8))})
    _write(tmp_path / "p", {"a": np.ones((8, 8))})
    assert main(["evaluate", str(tmp_path / "p"), str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert "18 classes appear in neither prediction nor truth" in out
    assert "course evaluator's mean over all 19 classes is NaN" in out
    assert "nan" not in out.replace("NaN", "")


@pytest.mark.parametrize("case, message", [
    ("size", "p/a.png: prediction is 16x16 but the true mask is 8x8; predict at the mask's size"),
    ("missing", "1 of 2 masks have no prediction (e.g. b.png)"),
    ("values", "p/a.png: values above 18"),
    ("rgb", "p/a.png: is an RGB colour mask"),
    ("empty", "no PNG masks in the prediction folder"),
])
def test_evaluate_refuses_bad_predictions(tmp_path, capsys, case, message):
    _write(tmp_path / "t", {"a": np.ones((8, 8)), "b": np.ones((8, 8))})
    preds = {"a": np.ones((8, 8)), "b": np.ones((8, 8))}
    if case == "size":
        preds["a"] = np.ones((16, 16))
    elif case == "missing":
        del preds["b"]
    elif case == "values":
        preds["a"] = np.full((8, 8), 19)
    elif case == "empty":
        preds = {}
        (tmp_path / "p").mkdir()
    _write(tmp_path / "p", preds)
    if case == "rgb":
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "p" / "a.png")
    assert main(["evaluate", str(tmp_path / "p"), str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and "Traceback" not in err


def fscore_by_definition(preds, gts):
    """The 2025 grader's score, written out from its definition: per image, for each class value in
    that image's ground truth, F1 from pixel counts with 1e-7 in each denominator; mean over those
    classes, then over images."""
    per_image = []
    for p, g in zip(preds, gts):
        scores = []
        for c in np.unique(g):
            tp = int(((p == c) & (g == c)).sum())
            fp = int(((p == c) & (g != c)).sum())
            fn = int(((p != c) & (g == c)).sum())
            precision, recall = tp / (tp + fp + 1e-7), tp / (tp + fn + 1e-7)
            scores.append(2 * precision * recall / (precision + recall + 1e-7))
        per_image.append(sum(scores) / len(scores))
    return sum(per_image) / len(per_image)


def _fscore(preds, gts) -> float:
    from trainable.metrics import image_confusion, image_fscores

    confs = image_confusion(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(gts)))
    return float(image_fscores(confs).mean())


@pytest.mark.parametrize("seed", range(4))
def test_fscore_equals_its_definition_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    gts = [rng.integers(0, int(rng.integers(2, 19)), (24, 24)) for _ in range(5)]  # images lack some classes
    preds = [np.where(rng.random(g.shape) < 0.7, g, rng.integers(0, 19, g.shape)) for g in gts]
    assert _fscore(preds, gts) == pytest.approx(fscore_by_definition(preds, gts), abs=1e-12)


def _f1(tp: int, fp: int, fn: int) -> float:
    precision, recall = tp / (tp + fp + 1e-7), tp / (tp + fn + 1e-7)
    return 2 * precision * recall / (precision + recall + 1e-7)


# hand-made masks: (prediction, truth, score), the counts of each scored class read off by hand
HAND_MADE = [
    (np.array([[0, 0], [1, 1]]), np.array([[0, 0], [1, 1]]), (_f1(2, 0, 0) + _f1(2, 0, 0)) / 2),  # perfect
    (np.zeros((2, 2)), np.zeros((2, 2)), _f1(4, 0, 0)),  # truth all background: one class scored
    # truth all background, one pixel predicted as class 5, which the truth lacks: class 5 is not
    # scored itself, its pixel is a miss of background (3 TP, 0 FP, 1 FN)
    (np.array([[0, 0], [0, 5]]), np.zeros((2, 2)), _f1(3, 0, 1)),
    # a class-1 pixel predicted as 7: class 1 has 1 TP and 1 FN, background is perfect, 7 is not scored
    (np.array([[0, 0], [1, 7]]), np.array([[0, 0], [1, 1]]), (_f1(2, 0, 0) + _f1(1, 0, 1)) / 2),
    # a true class never predicted scores 0 and counts in the mean; its pixel is a false positive of background
    (np.zeros((2, 2)), np.array([[0, 0], [0, 3]]), (_f1(3, 1, 0) + 0.0) / 2),
]


@pytest.mark.parametrize("pred, truth, expected", HAND_MADE, ids=["perfect", "all-background", "absent-class",
                                                                  "wrong-class", "missed-class"])
def test_fscore_on_hand_made_masks(pred, truth, expected):
    pred, truth = pred.astype(np.int64), truth.astype(np.int64)
    assert _fscore([pred], [truth]) == pytest.approx(expected, abs=1e-12)
    assert fscore_by_definition([pred], [truth]) == pytest.approx(expected, abs=1e-12)


def test_the_set_score_is_the_mean_over_images_not_over_pixels():
    small, big = np.zeros((2, 2), np.int64), np.zeros((8, 8), np.int64)
    pred_small, pred_big = small.copy(), big.copy()
    pred_small[0, 0] = 5  # a quarter wrong in the small image, nothing wrong in the big one
    expected = (_f1(3, 0, 1) + _f1(64, 0, 0)) / 2
    from trainable.metrics import image_fscores

    scores = [image_fscores(confusion_matrix(p, g))[0] for p, g in ((pred_small, small), (pred_big, big))]
    assert float(np.mean(scores)) == pytest.approx(expected, abs=1e-12)


def test_evaluate_prints_the_fscore_beside_the_miou(tmp_path, capsys):
    rng = np.random.default_rng(3)
    gts = {str(i): rng.integers(0, 6, (12, 12)) for i in range(3)}
    preds = {k: np.where(rng.random(g.shape) < 0.8, g, 0) for k, g in gts.items()}
    _write(tmp_path / "t", gts)
    _write(tmp_path / "p", preds)
    metrics, _, _ = evaluate_folders(tmp_path / "p", tmp_path / "t")
    expected = fscore_by_definition([preds[k] for k in sorted(gts)], [gts[k] for k in sorted(gts)])
    assert metrics.fscore == pytest.approx(expected, abs=1e-12)
    assert main(["evaluate", str(tmp_path / "p"), str(tmp_path / "t")]) == 0
    assert f"F-score{expected:>15.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
def test_image_confusion_counts_and_leaves_its_inputs_alone(dtype):
    from trainable.metrics import image_confusion

    truth = torch.tensor([[[0, 1], [2, 2]], [[1, 1], [0, 2]]], dtype=dtype)
    pred = torch.tensor([[[0, 2], [2, 2]], [[1, 0], [0, 2]]], dtype=dtype)
    given = truth.clone(), pred.clone()
    confs = image_confusion(pred, truth, num_classes=3)
    assert confs.tolist() == [[[1, 0, 0], [0, 0, 1], [0, 0, 2]], [[1, 0, 0], [1, 1, 0], [0, 0, 1]]]
    assert torch.equal(truth, given[0]) and torch.equal(pred, given[1])
