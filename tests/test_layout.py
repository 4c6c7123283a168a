"""The experiment's file names (Ray's own agree with Ray) and the one write-then-rename helper."""

from __future__ import annotations

import errno
import fnmatch

import pytest

from trainable import layout
from trainable.layout import TEMP_MARK, remove_partial_files, replacing


def test_the_names_tune_writes_are_tunes_own():
    from ray.train._internal.storage import StorageContext
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.result import EXPR_ERROR_FILE, EXPR_PARAM_FILE, EXPR_PROGRESS_FILE, EXPR_RESULT_FILE

    assert (layout.RESULT_FILE, layout.PARAMS_FILE, layout.PROGRESS_FILE, layout.ERROR_FILE) == (
        EXPR_RESULT_FILE, EXPR_PARAM_FILE, EXPR_PROGRESS_FILE, EXPR_ERROR_FILE)
    assert fnmatch.fnmatch(TuneController.CKPT_FILE_TMPL.format("2026-12-01_10-00-00"), layout.TUNE_STATE_GLOB)
    assert fnmatch.fnmatch(StorageContext._make_checkpoint_dir_name(7), layout.CHECKPOINT_GLOB)


def test_a_file_is_replaced_whole(tmp_path):
    target = tmp_path / "a" / "state.json"
    with replacing(target) as tmp:
        tmp.write_text("first")
        assert not target.exists() and tmp.name.startswith(TEMP_MARK)  # written beside it, then renamed
    assert target.read_text() == "first" and list(target.parent.iterdir()) == [target]


def test_a_failed_write_keeps_the_previous_version_and_leaves_nothing(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("previous")
    with pytest.raises(OSError), replacing(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "previous" and list(tmp_path.iterdir()) == [target]


def test_a_folder_is_built_aside_and_replaces_the_old_one_only_when_asked(tmp_path):
    out = tmp_path / "out"
    with replacing(out) as tmp:
        tmp.mkdir()
        (tmp / "0.png").write_text("new")
    assert (out / "0.png").read_text() == "new"
    (out / "old.txt").write_text("old")
    with pytest.raises(OSError), replacing(out) as tmp:  # a non-empty folder is not replaced by default
        tmp.mkdir()
    assert (out / "old.txt").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with replacing(out, replace_folder=True) as tmp:
        tmp.mkdir()
        (tmp / "1.png").write_text("newer")
    assert sorted(p.name for p in out.iterdir()) == ["1.png"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_what_a_killed_writer_left_is_removed_before_a_resume(tmp_path):
    (tmp_path / "trial_x").mkdir()
    (tmp_path / "trial_x" / f"{TEMP_MARK}1234abcd-result.json").write_text('{"epoch": 1, "val')
    (tmp_path / "trial_x" / "result.json").write_text("{}\n")
    assert remove_partial_files(tmp_path) == 1
    assert [p.name for p in (tmp_path / "trial_x").iterdir()] == ["result.json"]
