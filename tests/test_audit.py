"""The left/right label audit on synthetic faces with known mirrored masks, one-eyed profiles and
masks without left/right classes."""

from __future__ import annotations

import numpy as np
import pytest

from trainable.audit import audit, column_sums, orientation
from trainable.classes import FLIP_LUT, FLIP_PAIRS
from trainable.synthetic import EASY, HARD, draw_face

LEFT_RIGHT = [c for pair in FLIP_PAIRS for c in pair]


def _faces(n: int, difficulty=EASY) -> list[np.ndarray]:
    return [draw_face(np.random.default_rng([7, i]), 96, difficulty)[1] for i in range(n)]


def _vote(mask: np.ndarray) -> int:
    return orientation(*column_sums(mask))


def _profile(mask: np.ndarray, keep: int) -> np.ndarray:
    """One side of the face hidden, as in a profile: only the left/right classes of side ``keep``
    (0: the subject's left, 1: the right) remain, the others painted as skin."""
    out = mask.copy()
    for pair in FLIP_PAIRS:
        out[out == pair[1 - keep]] = 1
    return out


def _no_left_right(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[np.isin(out, LEFT_RIGHT)] = 1
    return out


@pytest.mark.parametrize("difficulty", [EASY, HARD], ids=["upright", "rotated"])
def test_drawn_faces_follow_the_celebamask_convention(difficulty):
    assert [_vote(m) for m in _faces(20, difficulty)] == [1] * 20


def test_swapped_labels_and_one_eyed_profiles_are_judged():
    mask = _faces(1)[0]
    assert _vote(FLIP_LUT[mask]) == -1  # labels exchanged, the mask still lines up with the face
    assert _vote(_profile(mask, 0)) == 1 and _vote(_profile(mask, 1)) == 1  # one eye, judged by the nose
    assert _vote(FLIP_LUT[_profile(mask, 0)]) == -1
    assert _vote(_no_left_right(mask)) == 0  # nothing to judge by


def test_the_audit_names_exactly_the_mirrored_masks():
    faces = _faces(30)
    masks, names, expected = [], [], []
    for i, m in enumerate(faces):
        if i in (3, 11, 20):  # mirrored labels
            m = FLIP_LUT[m]
            expected.append(f"{i}.png")
        elif i == 25:  # a mirrored profile
            m = FLIP_LUT[_profile(m, 1)]
            expected.append(f"{i}.png")
        elif i in (5, 6):  # profiles that follow the convention
            m = _profile(m, i - 5)
        elif i in (8, 9):  # no left/right class at all: never flagged
            m = _no_left_right(m)
        masks.append(m)
        names.append(f"{i}.png")
    result = audit("training", names, [_vote(m) for m in masks])
    assert list(result.mirrored) == expected
    assert (result.masks, result.judged) == (30, 28)
    assert result.note() == ("4 of 30 training masks have their left/right labels mirrored against the other 24 that "
                             "show left/right classes, e.g. 3.png, 11.png, 20.png ...; data.mirrored=keep or fix or "
                             "drop decides what training does with them")


def test_no_false_alarm_on_a_clean_set():
    masks = [*_faces(10), *(_no_left_right(m) for m in _faces(3))]
    result = audit("training", [f"{i}.png" for i in range(13)], [_vote(m) for m in masks])
    assert result.mirrored == () and result.note() == "" and result.judged == 10


def test_the_data_check_notes_the_mirrored_masks_of_a_split(tiny_data):
    from PIL import Image

    from trainable.scan import scan_split

    for name in ("2.png", "7.png"):  # their labels exchanged on disk, as in a real release
        path = tiny_data / "train" / "train_mask" / name
        with Image.open(path) as im:
            swapped = Image.fromarray(FLIP_LUT[np.asarray(im)], mode="P")
            swapped.putpalette(im.getpalette())
        swapped.save(path)
    info = scan_split(tiny_data, "train")
    assert info.orientations == [-1 if i in (2, 7) else 1 for i in range(10)]
    assert any(n.startswith("2 of 10 training masks have their left/right labels mirrored against the other 8 "
                            "that show left/right classes, e.g. 2.png, 7.png;") for n in info.notes)
    assert not [n for n in scan_split(tiny_data, "val").notes if "mirrored" in n]  # no false alarm


@pytest.mark.parametrize("policy", ["keep", "fix", "drop"])
def test_fix_and_drop_change_what_trains_never_the_files(tiny_data, policy):
    from PIL import Image

    from tests.conftest import tiny_config
    from trainable.config import Config
    from trainable.run import build_run

    mask_dir = tiny_data / "train" / "train_mask"
    for name in ("2.png", "7.png"):
        with Image.open(mask_dir / name) as im:
            swapped = Image.fromarray(FLIP_LUT[np.asarray(im)], mode="P")
            swapped.putpalette(im.getpalette())
        swapped.save(mask_dir / name)
    before = {p.name: p.read_bytes() for p in mask_dir.iterdir()}
    run = build_run(Config.from_dict(tiny_config(tiny_data, data={"mirrored": policy, "array_cache": False})))
    train = run.train_loader.dataset
    assert len(train) == (8 if policy == "drop" else 10)
    if policy != "drop":
        assert train.swap_labels == (frozenset({2, 7}) if policy == "fix" else frozenset())
        train.transform = lambda image, mask: {"image": image, "mask": mask}  # the labels as read
        with Image.open(mask_dir / "2.png") as im:
            on_disk = np.asarray(im)
        expected = FLIP_LUT[on_disk] if policy == "fix" else on_disk
        assert np.array_equal(train[2][1].numpy(), expected)
    assert {p.name: p.read_bytes() for p in mask_dir.iterdir()} == before  # the user's files untouched
