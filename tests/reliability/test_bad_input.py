"""Bad input to ``python launch.py``: one clear ``error:`` line that names the file or value and the
fix, exit code 2, no traceback, and nothing written or overwritten.

Each case builds its damaged copy of the tiny synthetic set (or its bad argument), runs the real
command line as a subprocess, and compares a snapshot of everything the command could touch (the
data copy, the storage folder with an earlier experiment in it, the cache folder, output folders)
before and after. All cases are refused before Ray starts; they run a few at a time.
"""

from __future__ import annotations

import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from search_spaces.base import SearchSpace, choice, randint, uniform
from tests.reliability.clirun import Case, Workspace, check_refusal, run_cases, run_launch, snapshot
from trainable.config import ConfigError
from trainable.release import ANNO_DIR
from trainable.synthetic import generate

TRAIN_IMG, TRAIN_MASK = "train/train_image", "train/train_mask"
SEARCH = ("--space", "augmentation", "--data", "{data}", "--storage-path", "{storage}")
LONG = "x" * 300  # longer than a file name may be (255 bytes on common file systems)
PREDICT = ("predict", "{checkpoint}", "--images", "{data}/test/test_image")


# --- damage: each returns the ``prepare`` step of a case ---------------------------------------

def _overwrite(rel: str, data: bytes):
    def prepare(ws: Workspace) -> None:
        (ws.data / rel).write_bytes(data)
    return prepare


def _truncate(rel: str):
    def prepare(ws: Workspace) -> None:
        data = (ws.data / rel).read_bytes()
        (ws.data / rel).write_bytes(data[: len(data) // 2])
    return prepare


def _truncated_png_image(stem: str):
    def prepare(ws: Workspace) -> None:
        jpg = ws.data / TRAIN_IMG / f"{stem}.jpg"
        png = jpg.with_suffix(".png")
        Image.open(jpg).save(png)
        jpg.unlink()
        data = png.read_bytes()
        png.write_bytes(data[: len(data) // 2])
    return prepare


def _remove(rel: str):
    def prepare(ws: Workspace) -> None:
        (ws.data / rel).unlink()
    return prepare


def _bomb_png(width: int, height: int, colour: bool) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (PIL refuses over ~179 M on open)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if colour else 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(16)))
            + chunk(b"IEND", b""))


def _replace_with_bomb(rel: str, colour: bool):
    def prepare(ws: Workspace) -> None:
        path = ws.data / rel
        path.unlink()
        path.with_suffix(".png").write_bytes(_bomb_png(20_000, 20_000, colour))
    return prepare


def _remove_folder(rel: str):
    def prepare(ws: Workspace) -> None:
        shutil.rmtree(ws.data / rel)
    return prepare


def _resize_image(rel: str, size: tuple[int, int]):
    def prepare(ws: Workspace) -> None:
        path = ws.data / rel
        Image.open(path).convert("RGB").resize(size).save(path)
    return prepare


def _mask(rel: str, make):
    """Replace a mask with ``make(current class-index array)`` (an array or a PIL image)."""
    def prepare(ws: Workspace) -> None:
        path = ws.data / rel
        out = make(np.asarray(Image.open(path)).copy())
        (out if isinstance(out, Image.Image) else Image.fromarray(out)).save(path)
    return prepare


def _set_pixel(value: int):
    def make(m: np.ndarray) -> np.ndarray:
        m[0, 0] = value
        return m
    return make


def _empty(split: str):
    def prepare(ws: Workspace) -> None:
        for folder in (ws.data / split).iterdir():
            for p in folder.iterdir():
                p.unlink()
    return prepare


def _both(*steps):
    def prepare(ws: Workspace) -> None:
        for step in steps:
            step(ws)
    return prepare


def _non_image_files(ws: Workspace) -> None:
    (ws.data / TRAIN_IMG / "notes.txt").write_text("not an image")
    (ws.data / TRAIN_IMG / "thumbs").mkdir()


def _folder_with_file(rel: str, name: str = "keep.txt"):
    def prepare(ws: Workspace) -> None:
        (ws.root / rel).mkdir(parents=True, exist_ok=True)
        (ws.root / rel / name).write_text("mine")
    return prepare


def _file(rel: str, data: bytes = b"mine"):
    def prepare(ws: Workspace) -> None:
        (ws.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws.root / rel).write_bytes(data)
    return prepare


def _as_release(damage):
    """The data folder replaced by the CelebAMask-HQ release's layout (per-part PNGs under 2x images),
    then damaged by ``damage(folder)``."""
    def prepare(ws: Workspace) -> None:
        shutil.rmtree(ws.data)
        generate(ws.data, n_train=6, n_val=2, n_test=0, size=64, layout="release")
        damage(ws.data)
    return prepare


def _part(rel: str, pixels: np.ndarray):
    def damage(folder) -> None:
        Image.fromarray(pixels, mode="L").save(folder / ANNO_DIR / rel)
    return damage


def _experiment_record(text: str):
    def prepare(ws: Workspace) -> None:
        (ws.storage / "broken").mkdir()
        (ws.storage / "broken" / "experiment.json").write_text(text)
    return prepare


CASES = [
    # --- the data: every problem names its file; the search is refused before Ray starts ---
    Case("corrupt-jpeg", SEARCH, ("{data}/train/train_image/2.jpg: unreadable or truncated image",
                                  "re-export or remove it"),
         prepare=_overwrite(f"{TRAIN_IMG}/2.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")),
    Case("truncated-jpeg", SEARCH, ("{data}/train/train_image/2.jpg: unreadable or truncated image",
                                    "re-export or remove it"),
         prepare=_truncate(f"{TRAIN_IMG}/2.jpg")),
    Case("truncated-png-mask", SEARCH, ("{data}/train/train_mask/5.png: unreadable or truncated mask",
                                        "re-export or remove it"),
         prepare=_truncate(f"{TRAIN_MASK}/5.png")),
    Case("truncated-png-image", SEARCH, ("{data}/train/train_image/2.png: unreadable or truncated image",
                                         "re-export or remove it"),
         prepare=_truncated_png_image("2")),
    Case("image-without-mask", SEARCH, ("{data}/train/train_image/3.jpg: image without mask",
                                        "expected {data}/train/train_mask/3.png"),
         prepare=_remove(f"{TRAIN_MASK}/3.png")),
    Case("mask-without-image", SEARCH, ("{data}/train/train_mask/4.png: mask without image in "
                                        "{data}/train/train_image",),
         prepare=_remove(f"{TRAIN_IMG}/4.jpg")),
    Case("size-mismatch-not-whole-factor", SEARCH,
         ("{data}/train/train_image/8.jpg: image is 96x96 but its mask is 64x64", "whole multiple"),
         prepare=_resize_image(f"{TRAIN_IMG}/8.jpg", (96, 96))),
    Case("size-mismatch-unequal-factors", SEARCH,
         ("{data}/train/train_image/8.jpg: image is 128x64 but its mask is 64x64", "whole multiple"),
         prepare=_resize_image(f"{TRAIN_IMG}/8.jpg", (128, 64))),
    Case("image-smaller-than-mask", SEARCH,
         ("{data}/train/train_image/8.jpg: image is 32x32 but its mask is 64x64",),
         prepare=_resize_image(f"{TRAIN_IMG}/8.jpg", (32, 32))),
    Case("rgb-mask", SEARCH, ("{data}/train/train_mask/7.png: is an RGB colour mask",
                              "masks must be 8-bit palette or grayscale PNGs"),
         prepare=_mask(f"{TRAIN_MASK}/7.png", lambda m: np.stack([m] * 3, axis=-1))),
    Case("16-bit-mask", SEARCH, ("{data}/train/train_mask/7.png: is mode I;16", "8-bit"),
         prepare=_mask(f"{TRAIN_MASK}/7.png", lambda m: Image.fromarray(m.astype(np.uint16)))),
    Case("mask-value-255", SEARCH, ("{data}/train/train_mask/6.png: mask values [255] outside 0..18",
                                    "class indices"),
         prepare=_mask(f"{TRAIN_MASK}/6.png", _set_pixel(255))),
    Case("mask-value-19", SEARCH, ("{data}/train/train_mask/6.png: mask values [19] outside 0..18",),
         prepare=_mask(f"{TRAIN_MASK}/6.png", _set_pixel(19))),
    Case("image-decompression-bomb", SEARCH,
         ("{data}/train/train_image/6.png: unreadable or truncated image", "exceeds limit"),
         prepare=_replace_with_bomb(f"{TRAIN_IMG}/6.jpg", colour=True)),
    Case("mask-decompression-bomb", SEARCH,
         ("{data}/train/train_mask/6.png: unreadable or truncated mask", "exceeds limit"),
         prepare=_replace_with_bomb(f"{TRAIN_MASK}/6.png", colour=False)),
    Case("empty-split", SEARCH, ("{data}/train/train_image: split 'train' is empty",
                                 "needs at least one image/mask pair"),
         prepare=_empty("train")),
    Case("missing-split", SEARCH, ("{data}/train: no 'train' split; expected train/train_image (course layout) "
                                   "or train/images (generic layout)",),
         prepare=_remove_folder("train")),
    # --- the CelebAMask-HQ release: its part PNGs are checked as they are combined ---
    Case("release-part-wrong-size", SEARCH,
         ("{data}/CelebAMask-HQ-mask-anno/0/00002_nose.png: part is 32x32 but the face's other parts are 64x64",
          "must have the same size"), prepare=_as_release(_part("0/00002_nose.png", np.zeros((32, 32), np.uint8)))),
    Case("release-part-not-binary", SEARCH,
         ("{data}/CelebAMask-HQ-mask-anno/0/00002_nose.png: not a binary part mask (values [0, 1, 2",
          "a part PNG holds 0 and one other value"),
         prepare=_as_release(_part("0/00002_nose.png", np.arange(64 * 64, dtype=np.uint8).reshape(64, 64) % 3))),
    Case("release-without-annotations", SEARCH,
         ("{data}: found CelebA-HQ-img but no CelebAMask-HQ-mask-anno folder", "unpack them there"),
         prepare=_as_release(lambda folder: shutil.rmtree(folder / ANNO_DIR))),
    Case("holdout-leaves-no-training-pair", (*SEARCH, "--set", "data.val_fraction=1"),
         ("data.val_fraction=1 holds out 10 of 10 training pairs and leaves none to train on", "lower it"),
         prepare=_remove_folder("val"), may_write=(".facesearch-stats.json",)),  # of the valid training split
    Case("missing-mask-folder", SEARCH, ("{data}/train/train_image: found images but no mask folder; expected "
                                         "{data}/train/train_mask",),
         prepare=_remove_folder(TRAIN_MASK)),
    # several bad files: one line each, all listed in the same pass
    Case("several-problems-listed-together", SEARCH,
         ("{data}/train/train_image/3.jpg: image without mask", "{data}/train/train_mask/7.png: is an RGB colour mask",
          "{data}/train/train_image/2.jpg: unreadable or truncated image"),
         prepare=_both(_remove(f"{TRAIN_MASK}/3.png"),
                       _mask(f"{TRAIN_MASK}/7.png", lambda m: np.stack([m] * 3, axis=-1)),
                       _overwrite(f"{TRAIN_IMG}/2.jpg", b"not an image")),
         lines=3),
    Case("missing-data-folder", ("--space", "augmentation", "--data", "{root}/nowhere", "--storage-path",
                                 "{storage}"),
         ("{root}/nowhere: data folder not found", "pass an existing folder with --data")),
    # not fatal: the files are noted and the check goes on to the next split (whose damage stops it)
    Case("non-image-files-are-noted", SEARCH, ("{data}/val/val_mask/1.png: mask values [255] outside 0..18",),
         prepare=_both(_non_image_files, _mask("val/val_mask/1.png", _set_pixel(255))),
         notes=("{data}/train/train_image/notes.txt: not an image, ignored",
                "{data}/train/train_image/thumbs: not an image, ignored"),
         may_write=(".facesearch-stats.json",)),
    # --- the search's arguments ---
    Case("unknown-space", ("--space", "colour", "--data", "{data}", "--storage-path", "{storage}"),
         ("unknown search space 'colour'", "valid spaces are augmentation, jitter, loss")),
    Case("no-space", ("--data", "{data}", "--storage-path", "{storage}"),
         ("the following arguments are required: --space",)),
    Case("no-verb", (), ("choose a verb: search, resume, tta, retrain, predict, evaluate",)),
    Case("unknown-verb", ("serch", "--space", "augmentation"), ("unknown verb 'serch'", "valid verbs are search")),
    Case("flag-of-another-verb", ("retrain", "{storage}/earlier-experiment", "--num-samples", "5"),
         ("retrain does not take --num-samples (a flag of search and resume)", "python launch.py retrain --help")),
    Case("search-takes-no-retrain-flag", (*SEARCH, "--top", "3"), ("search does not take --top (a flag of retrain)",)),
    Case("resume-takes-no-search-flag", ("resume", "{storage}/earlier-experiment", "--set", "optim.lr=1"),
         ("resume does not take --set (a flag of search, tta and retrain)",)),
    Case("max-epochs-and-set-disagree", (*SEARCH, "--set", "train.epochs=2", "--max-epochs", "3"),
         ("--max-epochs 3 and --set train.epochs=2 set the same value differently", "give one of them")),
    Case("unknown-challenge", (*SEARCH, "--challenge", "ce7454-2026"),
         ("--challenge ce7454-2026: unknown challenge", "valid challenges are ai6126-2022, ce7454-2024, ce7454-2025")),
    Case("pretrained-under-from-scratch-rules", (*SEARCH, "--challenge", "ce7454-2025", "--set",
                                                 "model.pretrained=imagenet"),
         ("model.pretrained=imagenet: the ce7454-2025 rules allow no pretrained weights",)),
    Case("unknown-searcher", (*SEARCH, "--searcher", "bohb"), ("--searcher bohb: valid searchers are tpe, random",)),
    Case("unknown-scheduler", (*SEARCH, "--scheduler", "median"),
         ("--scheduler median: valid schedulers are asha, hyperband, fifo, pbt, pb2",)),
    Case("unknown-metric", (*SEARCH, "--metric", "dice"), ("--metric dice: valid metrics are val_miou, val_fscore",)),
    Case("seeds-without-ablation", (*SEARCH, "--seeds", "3"), ("--seeds 3: repeats each configuration of an "
                                                                 "--ablation",)),
    Case("seed-and-set-disagree", (*SEARCH, "--seed", "1", "--set", "train.seed=2"),
         ("--seed 1 and --set train.seed=2 set the same value differently",)),
    Case("unknown-set-key", (*SEARCH, "--set", "aug.rotation=3"),
         ("unknown config key 'aug.rotation'", "valid keys in 'aug' are rotate_limit")),
    Case("unknown-set-group", (*SEARCH, "--set", "augment.rotate_limit=3"),
         ("unknown config key 'augment.rotate_limit'", "groups are data, aug")),
    Case("set-without-value", (*SEARCH, "--set", "optim.lr"), ("--set 'optim.lr': expected KEY=VALUE",)),
    Case("set-not-an-int", (*SEARCH, "--set", "train.epochs=many"),
         ("train.epochs='many': expected int", "a whole number")),
    Case("set-not-a-number", (*SEARCH, "--set", "optim.lr=fast"), ("optim.lr='fast': expected float",)),
    Case("set-not-a-bool", (*SEARCH, "--set", "aug.flip_swap=maybe"),
         ("aug.flip_swap='maybe': expected bool", "true or false")),
    Case("set-not-a-choice", (*SEARCH, "--set", "model.arch=resnet"),
         ("model.arch='resnet': valid values are unet",)),
    Case("set-negative-rotation", (*SEARCH, "--set", "aug.rotate_limit=-5"),
         ("aug.rotate_limit=-5.0: out of range [0, 180]",)),
    Case("set-zero-learning-rate", (*SEARCH, "--set", "optim.lr=0"), ("optim.lr=0.0: out of range (0, 10]",)),
    Case("set-nan-learning-rate", (*SEARCH, "--set", "optim.lr=nan"), ("optim.lr=nan: expected a finite number",)),
    Case("set-probability-above-one", (*SEARCH, "--set", "aug.flip_p=1.5"),
         ("aug.flip_p=1.5: out of range [0, 1]",)),
    Case("set-image-size-not-multiple-of-32", (*SEARCH, "--set", "data.image_size=100"),
         ("data.image_size=100: must be a multiple of 32", "e.g. 96")),
    Case("set-scale-min-above-max", (*SEARCH, "--set", "aug.scale_min=1.5"),
         ("aug.scale_min (1.5) must not exceed aug.scale_max (1.25)",)),
    Case("set-zero-tta-scale", (*SEARCH, "--set", "train.tta_scales=0,1"),
         ("train.tta_scales=(0.0, 1.0): expected a list of positive numbers",)),
    Case("model-over-budget", (*SEARCH, "--set", "model.encoder=tu-resnet50"),
         ("over the budget of 2,000,000", "model.max_params")),
    Case("model-over-the-challenges-budget", (*SEARCH, "--challenge", "ce7454-2025", "--set",
                                              "model.encoder=tu-resnet50"),
         ("over the budget of 1,821,084", "model.max_params")),
    Case("num-samples-zero", (*SEARCH, "--num-samples", "0"), ("--num-samples 0: must be at least 1",)),
    Case("num-samples-not-a-number", (*SEARCH, "--num-samples", "many"),
         ("argument --num-samples: invalid int value: 'many'",)),
    Case("max-epochs-negative", (*SEARCH, "--max-epochs", "-1"), ("--max-epochs -1: must be at least 1",)),
    Case("grace-period-above-max-epochs", (*SEARCH, "--max-epochs", "3", "--grace-period", "5"),
         ("--grace-period 5: more than --max-epochs 3", "choose at most 3")),
    Case("grace-period-above-default-epochs", (*SEARCH, "--grace-period", "50"),
         ("--grace-period 50: more than the", "choose at most")),
    Case("reduction-factor-one", (*SEARCH, "--reduction-factor", "1"),
         ("--reduction-factor 1: must be greater than 1",)),
    Case("cpus-per-trial-negative", (*SEARCH, "--cpus-per-trial", "-1"),
         ("--cpus-per-trial -1.0: must not be negative",)),
    Case("gpus-per-trial-negative", (*SEARCH, "--gpus-per-trial", "-0.5"),
         ("--gpus-per-trial -0.5: must not be negative",)),
    Case("max-concurrent-negative", (*SEARCH, "--max-concurrent", "-2"),
         ("--max-concurrent -2: must not be negative",)),
    Case("seed-negative", (*SEARCH, "--seed", "-1"), ("--seed -1: must not be negative",)),
    Case("seeds-zero", (*SEARCH, "--ablation", "--seeds", "0"), ("--seeds 0: must be at least 1",)),
    Case("max-params-negative", (*SEARCH, "--max-params", "-5"), ("--max-params -5: must not be negative",)),
    Case("name-escapes-storage", (*SEARCH, "--name", "../outside"),
         ("--name '../outside': must be a plain folder name",)),
    Case("experiment-exists", (*SEARCH, "--name", "earlier-experiment"),
         ("{storage}/earlier-experiment: already exists", "python launch.py resume {storage}/earlier-experiment")),
    Case("storage-under-a-file", ("--space", "augmentation", "--data", "{data}", "--storage-path",
                                  "{root}/a-file/experiments"),
         ("{root}/a-file/experiments: storage path is not writable", "pass a writable --storage-path"),
         prepare=_file("a-file")),
    Case("storage-path-name-too-long", ("--space", "augmentation", "--data", "{data}", "--storage-path",
                                        "{root}/" + LONG),
         (f"{{root}}/{LONG}: storage path is not usable (File name too long)", "pass a writable --storage-path")),
    Case("data-path-name-too-long", ("--space", "augmentation", "--data", "{root}/" + LONG, "--storage-path",
                                     "{storage}"),
         (f"{{root}}/{LONG}: not a usable data folder (File name too long)", "pass an existing folder with --data")),
    Case("name-too-long", (*SEARCH, "--name", LONG), ("--name xxxxxxxxxxxxxxxxxxxx...: 300 bytes long",)),
    Case("space-tta-is-not-searched", ("--space", "tta", "--data", "{data}"),
         ("--space tta: TTA is scored on a trained checkpoint, not searched", "python launch.py tta EXP")),
    Case("tta-without-checkpoint", ("tta", "--data", "{data}"), ("the following arguments are required: TARGET",)),
    Case("tta-trial-without-experiment", ("tta", "{checkpoint}", "--trial", "trial_x"),
         ("--trial trial_x: needs an experiment folder",)),
    Case("tta-missing-checkpoint", ("tta", "{root}/nope", "--data", "{data}"),
         ("{root}/nope: no checkpoint found",)),
    # --- resume and retrain ---
    Case("resume-not-an-experiment", ("--resume", "{storage}"),
         ("{storage}: not an experiment directory (no experiment.json)", "the folder that launch.py printed")),
    Case("resume-missing-folder", ("resume", "{root}/nowhere"), ("{root}/nowhere: not an experiment directory",)),
    Case("resume-corrupt-record", ("resume", "{storage}/broken"),
         ("{storage}/broken/experiment.json: unreadable",), prepare=_experiment_record("{not json")),
    Case("resume-foreign-record", ("resume", "{storage}/broken"),
         ("{storage}/broken/experiment.json: not an experiment record written by launch.py",),
         prepare=_experiment_record('["a", "list"]')),
    Case("retrain-not-an-experiment", ("retrain", "{storage}"), ("{storage}: not an experiment directory",)),
    Case("retrain-old-spelling", ("--retrain", "{storage}"), ("{storage}: not an experiment directory",)),
    # --- predict ---
    Case("predict-unknown-submission", (*PREDICT, "--out", "{root}/preds", "--submission", "ce7454-2023"),
         ("--submission ce7454-2023: unknown challenge", "valid challenges are ai6126-2022, ce7454-2024, ce7454-2025")),
    Case("predict-output-exists", (*PREDICT, "--out", "{root}/preds"),
         ("{root}/preds: output folder exists and is not empty", "pass --force"),
         prepare=_folder_with_file("preds")),
    Case("predict-output-is-a-file", (*PREDICT, "--out", "{root}/preds"),
         ("{root}/preds: exists and is not a folder",), prepare=_file("preds")),
    Case("predict-zip-exists", (*PREDICT, "--out", "{root}/preds", "--zip", "{root}/sub/sub.zip"),
         ("{root}/sub/sub.zip: exists", "pass --force"), prepare=_file("sub/sub.zip")),
    Case("predict-submission-note-exists", (*PREDICT, "--out", "{root}/preds", "--zip", "{root}/sub/sub.zip"),
         ("{root}/sub/SUBMISSION.md: exists", "pass --force"), prepare=_file("sub/SUBMISSION.md")),
    Case("predict-missing-images", ("predict", "{checkpoint}", "--images", "{root}/nowhere", "--out",
                                    "{root}/preds"), ("{root}/nowhere: image folder not found",)),
    Case("predict-no-images", ("predict", "{checkpoint}", "--images", "{root}/empty", "--out", "{root}/preds"),
         ("{root}/empty: no images",), prepare=_folder_with_file("empty", "readme.txt")),
    Case("predict-corrupt-image", (*PREDICT, "--out", "{root}/preds"),
         ("{data}/test/test_image/1.jpg: unreadable or truncated image", "nothing was written"),
         prepare=_overwrite("test/test_image/1.jpg", b"\xff\xd8\xff garbage")),
    Case("predict-zero-tta-scale", (*PREDICT, "--out", "{root}/preds", "--tta", "0,1"),
         ("--tta '0,1': expected positive scales", "e.g. --tta 0.75,1,1.25")),
    Case("predict-tta-not-numbers", (*PREDICT, "--out", "{root}/preds", "--tta", "big"),
         ("--tta 'big': expected positive scales",)),
    Case("predict-size-zero", (*PREDICT, "--out", "{root}/preds", "--size", "0"), ("--size 0: must be at least 1",)),
    Case("predict-without-out", PREDICT, ("the following arguments are required: --out",)),
    Case("predict-missing-checkpoint", ("predict", "{root}/nope.pt", "--images", "{data}/test/test_image",
                                        "--out", "{root}/preds"), ("{root}/nope.pt: no checkpoint found",)),
]


CASES_BY_ID = {c.id: c for c in CASES}


@pytest.fixture(scope="module")
def outcomes(request, tiny_master, model_checkpoint, tmp_path_factory) -> dict:
    """Run the selected cases' commands (all of this module's unless ``-k`` chose fewer)."""
    selected = set()
    for item in request.session.items:
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec"):
            params = item.callspec.params
            selected |= {params["case"].id} if "case" in params else {params.get("case_id")}
    return run_cases([c for c in CASES if c.id in selected], tmp_path_factory.mktemp("bad-input"), tiny_master,
                     model_checkpoint)


def test_case_ids_are_unique():
    assert len(CASES_BY_ID) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.defect, strict=True)]
                                                 if c.defect else []) for c in CASES])
def test_bad_input_is_refused_with_one_clear_line(case: Case, outcomes):
    check_refusal(case, outcomes[case.id])


@pytest.mark.parametrize("case_id", ["corrupt-jpeg", "num-samples-zero"])
def test_the_real_command_line_refuses_as_the_forked_run_did(case_id, outcomes):
    """The cases run launch.py as ``__main__`` in forked processes; ``python launch.py`` itself,
    run on the same workspace, gives the same exit code and error lines and writes nothing either."""
    forked = outcomes[case_id]
    code, output = run_launch([forked.workspace.fmt(a) for a in CASES_BY_ID[case_id].args], forked.workspace.cache)
    assert "Traceback" not in output
    assert code == forked.returncode == 2

    def errors(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("error: ")]

    assert errors(output) == errors(forked.output) and len(errors(output)) == 1
    assert snapshot(forked.workspace.root) == forked.before


@pytest.mark.parametrize("params, message", [
    ({"aug.rotate_limit": uniform(-5.0, 10.0)}, "search space 'bad': aug.rotate_limit=-5.0: out of range [0, 180]"),
    ({"optim.lr": uniform(0.0, 1e-2)}, "search space 'bad': optim.lr=0.0: out of range (0, 10]"),
    ({"aug.rotate_limit": uniform(30.0, 10.0)}, "aug.rotate_limit has an empty range 30.0..10.0"),
    ({"aug.cutout_holes": randint(3, 3)}, "aug.cutout_holes has an empty range 3..2"),
    ({"model.arch": choice(["unet", "resnet"])}, "model.arch='resnet': valid values are unet"),
])
def test_search_bounds_outside_a_keys_range_are_refused(params, message):
    with pytest.raises(ConfigError) as e:
        SearchSpace(name="bad", description="", params=params)
    assert message in str(e.value)


def test_ablation_levels_outside_a_keys_range_are_refused():
    with pytest.raises(ConfigError, match=r"ablation levels: aug.cutout_p=1.5: out of range \[0, 1\]"):
        SearchSpace(name="bad", description="", params={}, levels={"aug.cutout_p": [0.0, 1.5]})

