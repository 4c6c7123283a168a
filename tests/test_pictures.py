"""The pictures of predictions and of the label audit: the numbers each picture is drawn from, checked
against values derived by hand, and the pages and sheets a user opens."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.html import write_html
from trainable.audit import audit
from trainable.classes import CLASSES, FLIP_LUT, FLIP_PAIRS, NUM_CLASSES, PALETTE
from trainable.metrics import image_fscores, image_mious
from trainable.pictures import CONFUSION_ORDER, error_map, overlay, row_normalised, write_mirrored
from trainable.scan import scan_split
from trainable.synthetic import generate
from trainable.val_predictions import Scored, spread_indices

PNG = b"\x89PNG\r\n\x1a\n"


def _conf(cells: dict[tuple[int, int], int]) -> np.ndarray:
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for (truth, pred), n in cells.items():
        conf[truth, pred] = n
    return conf


# one image's confusion cells -> its mIoU (%): the course formula on that image, over the classes in
# its truth or its prediction
@pytest.mark.parametrize("cells, miou", [
    ({(0, 0): 4}, 100.0),  # all background, all right
    ({(0, 0): 3, (1, 1): 1, (1, 0): 1}, (3 / 4 + 1 / 2) / 2 * 100),  # bg: I3/U4; skin: I1/U2
    ({(1, 2): 5}, 0.0),  # skin predicted as nose everywhere: both classes count, both 0
    ({(4, 5): 2, (5, 4): 2}, 0.0),  # the eyes swapped
    ({(4, 4): 1, (4, 5): 1, (5, 5): 2}, (1 / 2 + 2 / 3) / 2 * 100),  # left eye I1/U2, right eye I2/U3
])
def test_an_images_miou_is_the_course_formula_on_that_image(cells, miou):
    assert image_mious(_conf(cells)) == pytest.approx([miou])


def test_per_image_scores_of_a_batch_are_each_images_own():
    batch = np.stack([_conf({(0, 0): 4}), _conf({(1, 2): 5})])
    assert image_mious(batch) == pytest.approx([100.0, 0.0])
    assert image_fscores(batch) == pytest.approx([1.0, 0.0], abs=1e-6)


def test_the_confusion_rows_are_percentages_of_each_true_class():
    conf = _conf({(0, 0): 90, (0, 1): 10, (4, 4): 6, (4, 5): 3, (4, 0): 1, (5, 4): 2, (5, 5): 2})
    rows = row_normalised(conf)
    at = {c: CONFUSION_ORDER.index(c) for c in (0, 1, 4, 5)}
    assert rows[at[0], at[0]] == pytest.approx(90) and rows[at[0], at[1]] == pytest.approx(10)
    assert rows[at[4], at[4]] == pytest.approx(60) and rows[at[4], at[5]] == pytest.approx(30)
    assert rows[at[4], at[0]] == pytest.approx(10)
    assert rows[at[5], at[4]] == pytest.approx(50) and rows[at[5], at[5]] == pytest.approx(50)
    assert np.isnan(rows[at[1]]).all()  # no true skin pixel: no row to normalise
    finite = rows[np.isfinite(rows).all(axis=1)]
    assert finite.sum(axis=1) == pytest.approx(np.full(len(finite), 100.0))


def test_every_class_is_on_the_confusion_axes_once_with_left_and_right_side_by_side():
    assert sorted(CONFUSION_ORDER) == list(range(NUM_CLASSES))
    for left, right in FLIP_PAIRS:
        assert CONFUSION_ORDER.index(right) == CONFUSION_ORDER.index(left) + 1, (CLASSES[left], CLASSES[right])


def test_the_error_map_marks_exactly_the_wrong_pixels_and_the_overlay_leaves_background_bare():
    image = np.full((4, 4, 3), 200, np.uint8)
    truth = np.zeros((4, 4), np.uint8)
    truth[1:3, 1:3] = 1
    pred = truth.copy()
    pred[0, 0], pred[1, 1] = 2, 0
    errors = error_map(image, truth, pred)
    red = (errors == [255, 0, 0]).all(axis=2)
    assert red.tolist() == (pred != truth).tolist()
    shown = overlay(image, truth, alpha=0.5)
    assert (shown[truth == 0] == 200).all()
    assert shown[1, 1].tolist() == [round((200 + c) / 2) for c in PALETTE[1].tolist()]


@pytest.mark.parametrize("n, k, expected", [(20, 8, [0, 3, 5, 8, 11, 14, 16, 19]), (5, 8, [0, 1, 2, 3, 4]),
                                            (1, 8, [0]), (0, 8, [])])
def test_the_gallery_spreads_its_images_over_the_set(n, k, expected):
    assert spread_indices(n, k) == expected


def test_the_worst_images_are_the_lowest_scores_first():
    scored = Scored(("a", "b", "c", "d"), np.array([50.0, 10.0, 70.0, 10.0]), np.zeros((19, 19)), "val_miou")
    assert scored.worst(3) == [1, 3, 0]  # ties: the earlier image first


@pytest.mark.parametrize("layout", ["course", "release"])
def test_the_synthetic_set_mirrors_the_masks_it_lists_and_the_audit_finds_exactly_those(tmp_path, layout):
    root = generate(tmp_path / layout, n_train=40, n_val=2, n_test=0, size=64, layout=layout, mirrored=0.1)
    listed = json.loads((root / "synthetic.json").read_text())["mirrored_train"]
    assert len(listed) == 4
    if layout == "release":
        from trainable.config import DataConfig
        from trainable.sources import data_root

        root = data_root(DataConfig(root=str(root)))
    train = scan_split(root, "train")
    found = audit("training", train.masks, train.orientations).mirrored
    assert sorted(int(Path(m).stem) for m in found) == sorted(listed)


def test_the_mirrored_contact_sheet_is_drawn_only_when_masks_are_mirrored(tmp_path):
    root = generate(tmp_path / "data", n_train=12, n_val=2, n_test=0, size=64)
    train = scan_split(root, "train")
    assert write_mirrored(train.images, train.masks, train.orientations, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    flipped = Path(train.masks[5])
    Image.fromarray(FLIP_LUT[np.asarray(Image.open(flipped))]).save(flipped)
    train = scan_split(root, "train")
    sheet = write_mirrored(train.images, train.masks, train.orientations, tmp_path / "mirrored.png")
    assert sheet.read_bytes().startswith(PNG)
    assert Image.open(sheet).size[0] > 200


class _Page(HTMLParser):
    """The images and tables of an HTML page."""

    def __init__(self):
        super().__init__()
        self.images, self.tables, self.headings = [], 0, []
        self._heading = None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self.tables += tag == "table"
        if tag in ("h1", "h2", "h3"):
            self._heading = ""

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None


def read_page(page: Path) -> _Page:
    """``page`` parsed; every image must be embedded (a PNG in a data URI) and non-empty."""
    parsed = _Page()
    parsed.feed(page.read_text(encoding="utf-8"))
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    return parsed


def markdown_tables(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("|---"))  # each table's rule under its header


def test_the_page_embeds_every_image_and_keeps_every_table_and_section(tmp_path):
    (tmp_path / "plots").mkdir()
    Image.new("RGB", (8, 8), "red").save(tmp_path / "plots" / "a.png")
    report = tmp_path / "report.md"
    report.write_text("# Experiment `x`\n\n- **Search:** tpe\n\n## Tables\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                      "## Pictures\n\n![a](plots/a.png)\n")
    page = write_html(report)
    assert page == tmp_path / "report.html"
    parsed = read_page(page)
    assert len(parsed.images) == 1 and parsed.tables == 1
    assert parsed.headings == ["Experiment x", "Tables", "Pictures"]
    assert "<title>Experiment x</title>" in page.read_text()


def test_a_page_whose_image_is_missing_is_not_written(tmp_path):
    report = tmp_path / "report.md"
    report.write_text("# x\n\n![a](plots/missing.png)\n")
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        write_html(report)
    assert not (tmp_path / "report.html").exists()


@pytest.fixture
def analysed(tiny_master, tmp_path) -> Path:
    """The report folder of an experiment whose best trial and baseline kept checkpoints (tiny untrained
    models on the tiny set) and whose other trials kept none."""
    from analysis.__main__ import main
    from tests.conftest import tiny_config
    from tests.test_analysis import experiment
    from trainable.checkpoints import save_checkpoint
    from trainable.config import Config
    from trainable.run import build_run

    exp = experiment.__wrapped__(tmp_path)
    run = build_run(Config.from_dict(tiny_config(tiny_master, data={"array_cache": False})))
    for trial in ("trial_base", "trial_live"):
        (exp / trial / "checkpoint_000001").mkdir()
        save_checkpoint(run, 1, exp / trial / "checkpoint_000001")
    assert main([str(exp), "--out", str(tmp_path / "report")]) == 0
    return tmp_path / "report"


def test_the_analysis_draws_the_predictions_of_the_trials_checkpoints(analysed):
    report = (analysed / "report.md").read_text()
    for name in ("gallery.png", "worst.png", "confusion.png"):
        assert Image.open(analysed / "plots" / name).format == "PNG"
        assert f"](plots/{name})" in report
    assert "Predictions of the best (trial_base) from their last checkpoints on 5 validation images" in report
    page = read_page(analysed / "report.html")
    assert len(page.images) == report.count("![") and page.tables == markdown_tables(report)
    assert {"Predictions", "Confusion matrix"} <= set(page.headings)


def _chromium() -> str | None:
    import shutil

    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (e.g. apt-get install chromium)")
def test_a_headless_browser_shows_every_image_and_table_of_the_page(analysed, tmp_path):
    import re
    import subprocess

    page = analysed / "report.html"
    # a copy with a script that records, once the page has loaded, what the browser decoded
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", """<script>
window.addEventListener("load", () => {
  const shown = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.probe = `images ${document.images.length} shown ${shown} tables `
    + document.querySelectorAll("table").length;
});
</script></body>"""))
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'data-probe="images (\d+) shown (\d+) tables (\d+)"', dom)
    assert found, dom[-2000:]
    report = (analysed / "report.md").read_text()
    assert int(found.group(1)) == int(found.group(2)) == report.count("![") >= 6
    assert int(found.group(3)) == markdown_tables(report)
