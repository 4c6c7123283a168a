"""Security: the dashboard stays on localhost with Ray's token authentication on, checkpoints and
weights never unpickle arbitrary objects, and predicted masks and zip entries stay inside the
output folder."""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.reliability.clirun import ROOT, Case, Workspace, check_refusal, run_cases, snapshot
from trainable.checkpoints import read_checkpoint
from trainable.errors import UserError
from trainable.models import ModelError, load_weights
from trainable.predict import predict_folder

PACKAGE_SOURCES = [ROOT / "launch.py", *sorted(p for d in ("trainable", "search_spaces", "analysis")
                                              for p in (ROOT / d).rglob("*.py"))]
PAYLOAD_MARKER = "PAYLOAD-RAN"


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``: if the folder appears, the payload ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def write_malicious(path: Path, marker: Path, kind: str) -> Path:
    """A checkpoint-looking file whose unpickling would run the payload: ``torch`` (torch.save's zip
    format), ``pickle`` (a bare pickle) or ``state_dict`` (a weights file for model.pretrained)."""
    if kind == "torch":
        torch.save({"model": {"w": Payload(marker)}, "config": {}}, path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"model": Payload(marker), "config": {}}))
    else:
        torch.save({"state_dict": {"encoder.w": Payload(marker)}}, path)
    return path


# --- checkpoints load with weights_only=True ------------------------------------------------------

@pytest.mark.parametrize("kind", ["torch", "pickle"])
def test_a_malicious_checkpoint_is_refused_and_its_payload_never_runs(tiny_master, tmp_path, kind):
    marker = tmp_path / PAYLOAD_MARKER
    path = write_malicious(tmp_path / "model.pt", marker, kind)
    with pytest.raises(UserError, match=r"model\.pt: not a readable checkpoint \(UnpicklingError\)"):
        read_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(UserError, match="not a readable checkpoint"):
        predict_folder(path, tiny_master / "test" / "test_image", tmp_path / "preds")
    assert not marker.exists() and not (tmp_path / "preds").exists()


def test_malicious_pretrained_weights_are_refused_and_the_payload_never_runs(tmp_path):
    marker = tmp_path / PAYLOAD_MARKER
    path = write_malicious(tmp_path / "encoder.pth", marker, "state_dict")
    with pytest.raises(ModelError, match=r"encoder\.pth: holds Python objects besides tensors, which are never"):
        load_weights(torch.nn.Linear(2, 2), path)
    assert not marker.exists()


def _malicious(rel: str, kind: str):
    def prepare(ws: Workspace) -> None:
        write_malicious(ws.root / rel, ws.root / PAYLOAD_MARKER, kind)
    return prepare


CLI_CASES = [
    Case("predict-malicious-checkpoint", ("predict", "{root}/model.pt", "--images", "{data}/test/test_image",
                                          "--out", "{root}/preds"),
         ("{root}/model.pt: not a readable checkpoint",), prepare=_malicious("model.pt", "torch")),
    Case("tta-malicious-checkpoint", ("tta", "{root}/ckpt.pt", "--data", "{data}"),
         ("{root}/ckpt.pt: not a readable checkpoint",), prepare=_malicious("ckpt.pt", "pickle")),
    Case("search-malicious-pretrained-weights", ("--space", "augmentation", "--data", "{data}", "--storage-path",
                                                 "{storage}", "--set", "model.pretrained={root}/enc.pth"),
         ("{root}/enc.pth: holds Python objects besides tensors",), prepare=_malicious("enc.pth", "state_dict")),
]


@pytest.fixture(scope="module")
def cli_outcomes(tiny_master, model_checkpoint, tmp_path_factory) -> dict:
    return run_cases(CLI_CASES, tmp_path_factory.mktemp("security"), tiny_master, model_checkpoint)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_the_command_line_refuses_malicious_files_and_runs_no_payload(case, cli_outcomes):
    outcome = cli_outcomes[case.id]
    check_refusal(case, outcome)  # also: nothing created, so no payload marker either
    assert not (outcome.workspace.root / PAYLOAD_MARKER).exists()


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def unsafe_loads(source: str) -> list[str]:
    """Calls that would unpickle a file: pickle/dill/cloudpickle/joblib/marshal/shelve loaders,
    pandas' read_pickle, yaml.load, np.load(allow_pickle=True), torch.load without weights_only=True."""
    found = []
    for call, name in _calls(ast.parse(source)):
        kwargs = {k.arg: k.value for k in call.keywords}
        last = name.rsplit(".", 1)[-1]
        if re.fullmatch(r"(c?pickle|dill|cloudpickle|joblib|marshal|_pickle)\.(load|loads|Unpickler)", name) \
                or name in ("shelve.open", "yaml.load", "yaml.unsafe_load") or last == "read_pickle":
            found.append(name)
        elif name in ("torch.load", "torch.serialization.load"):
            weights_only = kwargs.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(f"{name} without weights_only=True")
        elif re.fullmatch(r"(np|numpy)\.load", name):
            allow = kwargs.get("allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value:
                found.append(f"{name}(allow_pickle=True)")
    return found


def test_the_source_scan_finds_what_it_looks_for():
    source = """
import pickle, torch, numpy as np, pandas as pd
pickle.load(open("x", "rb")); pickle.loads(b""); torch.load("x"); torch.load("x", weights_only=False)
np.load("x", allow_pickle=True); pd.read_pickle("x")
torch.load("x", weights_only=True); np.load("x")
"""
    assert sorted(unsafe_loads(source)) == sorted([
        "pickle.load", "pickle.loads", "torch.load without weights_only=True", "torch.load without weights_only=True",
        "np.load(allow_pickle=True)", "pd.read_pickle"])


def test_no_package_source_unpickles_a_file():
    assert len(PACKAGE_SOURCES) > 20  # the scan really sees the package
    found = {str(p.relative_to(ROOT)): hits for p in PACKAGE_SOURCES if (hits := unsafe_loads(p.read_text()))}
    assert not found, found


# --- masks and zip entries stay inside the output folder ------------------------------------------

def _images(folder: Path, names: list[str], source: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.open(source).save(folder / name, format="PNG" if name.endswith(".png") else "JPEG")
    return folder


def test_odd_image_names_give_masks_inside_the_output_folder_only(model_checkpoint, tiny_master, tmp_path):
    source = tiny_master / "test" / "test_image" / "0.jpg"
    names = ["a..b.jpg", "with space.jpg", "ünïcode.jpg", "..jpg", ".hidden.jpg", "--force.jpg"]
    images = _images(tmp_path / "in", names, source)
    (images / "notes.txt").write_text("not an image")
    before = snapshot(tmp_path)
    # ".." in --out is resolved: the zip's top folder is the real name, never ".." or ""
    out = tmp_path / "deep" / ".." / "masks"
    result = predict_folder(model_checkpoint, images, out, zip_path=tmp_path / "sub.zip")
    masks = tmp_path / "masks"
    assert sorted(p.name for p in masks.iterdir()) == sorted(["a..b.png", "with space.png", "ünïcode.png",
                                                              "--force.png"])
    assert any("..jpg: hidden, ignored" in n for n in result["notes"])
    assert any("notes.txt: not an image, ignored" in n for n in result["notes"])
    after = snapshot(tmp_path)
    new = sorted(set(after) - set(before))
    assert all(p in ("masks", "sub.zip", "SUBMISSION.md") or p.startswith("masks/") for p in new), new
    assert all(after[p] == v for p, v in before.items())  # nothing that was there changed
    with zipfile.ZipFile(tmp_path / "sub.zip") as z:
        entries = z.namelist()
    assert sorted(entries) == sorted(f"masks/{p.name}" for p in masks.iterdir())
    for entry in entries:  # what an unzip would create stays under one top folder
        parts = Path(entry).parts
        assert not Path(entry).is_absolute() and ".." not in parts and parts[0] == "masks", entry


def test_images_whose_masks_would_collide_are_refused(model_checkpoint, tiny_master, tmp_path):
    images = _images(tmp_path / "in", ["0.jpg", "0.png", "1.jpg"], tiny_master / "test" / "test_image" / "0.jpg")
    with pytest.raises(UserError, match=r"in/0\.jpg and 0\.png share the stem '0', and a mask is named by its image"):
        predict_folder(model_checkpoint, images, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("target", ["images", "inside images", "checkpoint folder", "working folder"])
def test_force_never_replaces_the_inputs_or_the_working_folder(model_checkpoint, tiny_master, tmp_path,
                                                               monkeypatch, target):
    work = tmp_path / "work"
    images = _images(work / "data" / "images", ["0.jpg", "1.jpg"], tiny_master / "test" / "test_image" / "0.jpg")
    model = work / "models" / "model.pt"
    model.parent.mkdir()
    shutil.copy(model_checkpoint, model)
    monkeypatch.chdir(_mkdir(work / "data" / "session"))
    out = {"images": images, "inside images": work / "data", "checkpoint folder": model.parent,
           "working folder": work / "data" / "session"}[target]
    before = snapshot(tmp_path)
    with pytest.raises(UserError, match=r"would replace .*; choose a new folder for --out"):
        predict_folder(model, images, out, force=True)
    assert snapshot(tmp_path) == before


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- the dashboard: localhost, token authentication on --------------------------------------------

def test_the_dashboard_binds_to_localhost_and_leaves_token_auth_on(monkeypatch, capsys):
    import ray

    from search_spaces.driver import start_ray

    calls = []

    class Context:
        dashboard_url = "127.0.0.1:8265"

    def fake_init(**kwargs):
        calls.append(kwargs)
        return Context()

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setattr(ray, "init", fake_init)
    start_ray(None)
    assert calls[0].get("include_dashboard") is True and calls[0].get("dashboard_host") == "127.0.0.1"
    assert calls[0].get("address") == "local"  # never joins a cluster `ray start` left running
    assert "RAY_AUTH_MODE" not in os.environ  # Ray then turns token authentication on by itself
    assert "`ray get-auth-token` prints it" in capsys.readouterr().out


def test_no_source_opens_the_dashboard_or_turns_authentication_off():
    for path in PACKAGE_SOURCES:
        text = path.read_text()
        assert "0.0.0.0" not in text, path
        assert not re.search(r"RAY_AUTH_MODE[\"']?\s*\]?\s*=|setdefault\(\s*[\"']RAY_AUTH_MODE", text), path


def test_the_readme_says_how_to_get_the_token_and_how_authentication_is_turned_off():
    readme = (ROOT / "README.md").read_text()
    assert "ray get-auth-token" in readme and "RAY_AUTH_MODE=disabled" in readme
    assert "token authentication" in readme


DASHBOARD_PROBE = """
import contextlib, io, json, re, urllib.request, urllib.error
from pathlib import Path
import ray
from search_spaces.driver import start_ray

out = io.StringIO()
with contextlib.redirect_stdout(out):
    start_ray(None)
url = re.search(r"Ray dashboard:\\s+(http://\\S+)", out.getvalue()).group(1)
port = int(url.rsplit(":", 1)[1])
def get(path, token=None):
    req = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
token = (Path.home() / ".ray" / "auth_token").read_text().strip()
def listening_on(port):  # local addresses of the sockets listening on port, from /proc/net/tcp{,6}
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(".".join(str(b) for b in bytes.fromhex(address)[::-1]) if len(address) == 8 else address)
    return sorted(found)
listening = listening_on(port)
print(json.dumps({"url": url, "listening": listening, "mode": get("/api/authentication_mode")[1],
                  "without_token": get("/api/version")[0], "with_token": get("/api/version", token)[0]}))
ray.shutdown()
"""


@pytest.mark.slow
def test_a_real_dashboard_is_on_localhost_and_asks_for_the_token(tmp_path):
    # a private HOME: Ray writes its token to ~/.ray/auth_token; RAY_ADDRESS=local: a new cluster
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env.update(HOME=str(tmp_path), RAY_ADDRESS="local")
    start = time.time()
    proc = subprocess.run([sys.executable, "-c", DASHBOARD_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["url"].startswith("http://127.0.0.1:"), seen
    assert seen["listening"] == ["127.0.0.1"], seen
    assert json.loads(seen["mode"]) == {"authentication_mode": "token"}, seen
    assert seen["without_token"] in (401, 403) and seen["with_token"] == 200, (seen, time.time() - start)
