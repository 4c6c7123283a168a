import hashlib
from pathlib import Path

import numpy as np

from trainable.classes import NUM_CLASSES
from trainable.decode import read_mask
from trainable.layout import TEMP_MARK
from trainable.synthetic import EASY, HARD, draw_face, ensure_synthetic, main


def _digest(folder: Path) -> str:
    h = hashlib.sha1()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_cli_writes_course_layout_covering_all_classes(tmp_path, capsys):
    assert main([str(tmp_path / "s"), "--n-train", "6", "--n-val", "3", "--n-test", "2", "--size", "64"]) == 0
    root = tmp_path / "s"
    assert len(list((root / "train/train_image").glob("*.jpg"))) == 6
    assert len(list((root / "train/train_mask").glob("*.png"))) == 6
    assert len(list((root / "val/val_mask").glob("*.png"))) == 3
    assert len(list((root / "test/test_image").glob("*.jpg"))) == 2
    assert not (root / "test/test_mask").exists()
    present = set()
    for p in (root / "train/train_mask").glob("*.png"):
        present |= set(np.unique(read_mask(p)).tolist())
    assert present == set(range(NUM_CLASSES))
    assert "wrote 6 train" in capsys.readouterr().out


def test_same_seed_same_files_other_seed_different(tmp_path):
    def make(name: str, seed: int) -> str:
        main([str(tmp_path / name), "--n-train", "3", "--n-val", "2", "--n-test", "0", "--size", "64",
              "--seed", str(seed)])
        return _digest(tmp_path / name)

    assert make("a", 0) == make("b", 0) != make("c", 1)


def test_subject_left_is_on_the_image_right():
    # upright training faces: the subject's left eye/brow/ear (4, 6, 8) lie right of their pairs
    for i in range(20):
        _, mask = draw_face(np.random.default_rng(i), 128, EASY)
        for left, right in ((4, 5), (6, 7), (8, 9)):
            xl, xr = np.nonzero(mask == left)[1], np.nonzero(mask == right)[1]
            if len(xl) and len(xr):
                assert xl.mean() > xr.mean()


def test_validation_is_harder_than_training():
    def tilt(difficulty):
        # the angle of the line through both eyes' centres
        angles = []
        for i in range(40):
            _, m = draw_face(np.random.default_rng(i), 128, difficulty)
            (y4, x4), (y5, x5) = [np.argwhere(m == c).mean(0) for c in (4, 5)]
            angles.append(abs(np.degrees(np.arctan2(y4 - y5, x4 - x5))))
        return np.mean(angles)

    assert tilt(HARD) > 3 * tilt(EASY)


def test_ensure_synthetic_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESEARCH_CACHE", str(tmp_path))
    root = ensure_synthetic(size=64, n_train=2, n_val=1, n_test=0)
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    assert ensure_synthetic(size=64, n_train=2, n_val=1, n_test=0) == root
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp
    assert not list(tmp_path.glob(f"{TEMP_MARK}*"))  # built aside and renamed: nothing half-built left


def test_a_half_written_set_left_by_a_killed_run_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESEARCH_CACHE", str(tmp_path))
    root = ensure_synthetic(size=64, n_train=2, n_val=1, n_test=0)
    (root / "synthetic.json").unlink()  # what an older version, killed while generating, left
    (root / "stray.txt").write_text("half")
    assert ensure_synthetic(size=64, n_train=2, n_val=1, n_test=0) == root
    assert (root / "synthetic.json").is_file() and not (root / "stray.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [root.name]
