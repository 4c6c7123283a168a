"""Run ``python launch.py`` the way a user does, many cases at once, and check how it refused.

Every case gets a private workspace (its own copy of the tiny data set, a storage folder, a
``FACESEARCH_CACHE``), which is snapshotted before and after the run, so "nothing was written or
overwritten" is checked over every place the command could write to.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A refusal is expected within seconds; a case that got past validation would start Ray and
# train, so it is stopped long before a search could finish.
CASE_TIMEOUT_S = 240
ERROR_LINE = re.compile(r"^error: ")
# one OpenMP thread per command: refusals do not depend on it, and on a busy machine two spinning
# threads per process make building even a small model many times slower
QUIET_THREADS = {"OMP_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Workspace:
    """The folders of one case; ``data`` is a private copy of the tiny synthetic set."""

    root: Path
    data: Path
    storage: Path
    cache: Path
    checkpoint: Path  # a real, loadable model checkpoint (outside ``root``: shared, read-only)

    def fmt(self, text: str) -> str:
        return text.format(root=self.root, data=self.data, storage=self.storage, checkpoint=self.checkpoint)


@dataclass(frozen=True)
class Case:
    """One refused command line.

    ``args`` are formatted with the workspace (``{data}``, ``{storage}``, ``{root}``, ``{checkpoint}``);
    ``error`` holds fragments the ``error:`` line must contain (the file or value, and the fix);
    ``lines`` is how many ``error:`` lines there are (one, or one per problem when several files are
    bad: each fragment is then looked for in any of them); ``notes`` fragments of ``note:`` lines
    that must also appear; ``prepare`` damages the data copy or lays out files before the run;
    ``may_write`` names files the run may create (a stats cache of a valid split); ``defect`` says
    where the product still fails the case and what the fix is (the case is then an expected failure).
    """

    id: str
    args: tuple[str, ...]
    error: tuple[str, ...]
    prepare: Callable[[Workspace], None] | None = None
    notes: tuple[str, ...] = ()
    may_write: tuple[str, ...] = ()
    lines: int = 1
    defect: str = ""


@dataclass
class Outcome:
    workspace: Workspace
    returncode: int
    output: str  # stdout + stderr
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` with its kind, size, mtime and content hash."""
    out: dict[str, tuple] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir",)
        else:
            st = p.stat()
            out[rel] = ("file", st.st_size, st.st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
    return out


def make_workspace(base: Path, tiny_master: Path, checkpoint: Path) -> Workspace:
    ws = Workspace(root=base, data=base / "data", storage=base / "storage", cache=base / "cache",
                   checkpoint=checkpoint)
    shutil.copytree(tiny_master, ws.data, ignore=shutil.ignore_patterns(".facesearch-*"))
    ws.storage.mkdir()
    (ws.storage / "earlier-experiment").mkdir()  # something a refused run must leave as it was
    (ws.storage / "earlier-experiment" / "experiment.json").write_text('{"space": "augmentation"}\n')
    ws.cache.mkdir()
    return ws


def run_launch(args: Iterable[str], cache: Path, timeout: float = CASE_TIMEOUT_S) -> tuple[int, str]:
    """``python launch.py ARGS`` from the repository root; returns the exit code and all output."""
    env = {**os.environ, **QUIET_THREADS, "FACESEARCH_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "launch.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this call started: the command and what it spawned
        out = proc.communicate()[0] + f"\n[killed after {timeout:.0f} s: the command was not refused]"
    return proc.returncode, out


def run_cases(cases: list[Case], base: Path, tiny_master: Path, checkpoint: Path) -> dict[str, Outcome]:
    """Prepare every case's workspace, then run its command line through ``forkrun`` (``launch.py``
    as ``__main__`` in a fresh process per case, its imports paid once for all cases)."""
    prepared = {}
    jobs = []
    for case in cases:
        ws = make_workspace(base / case.id, tiny_master, checkpoint)
        if case.prepare:
            case.prepare(ws)
        prepared[case.id] = (ws, snapshot(ws.root))
        logs = base / f"{case.id}.log"
        jobs.append({"id": case.id, "argv": [ws.fmt(a) for a in case.args], "env": {"FACESEARCH_CACHE": str(ws.cache)},
                     "stdout": str(logs.with_suffix(".out")), "stderr": str(logs.with_suffix(".err")),
                     "timeout": CASE_TIMEOUT_S})
    proc = subprocess.run([sys.executable, "-m", "tests.reliability.forkrun"], cwd=ROOT, capture_output=True,
                          env={**os.environ, **QUIET_THREADS}, text=True,
                          input="".join(json.dumps(j) + "\n" for j in jobs),
                          timeout=CASE_TIMEOUT_S * (1 + len(jobs) // 2))
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = {r["id"]: r["returncode"] for r in map(json.loads, proc.stdout.splitlines())}
    outcomes = {}
    for job in jobs:
        ws, before = prepared[job["id"]]
        output = Path(job["stdout"]).read_text() + Path(job["stderr"]).read_text()
        outcomes[job["id"]] = Outcome(ws, codes[job["id"]], output, before, snapshot(ws.root))
    return outcomes


def check_refusal(case: Case, outcome: Outcome) -> None:
    """Exit code 2, exactly one ``error:`` line (per problem) naming what is wrong, no traceback,
    the expected notes, and every file in the workspace exactly as it was."""
    out = outcome.output
    assert "Traceback" not in out, out
    assert outcome.returncode == 2, f"exit code {outcome.returncode}\n{out}"
    errors = [line for line in out.splitlines() if ERROR_LINE.match(line)]
    assert len(errors) == case.lines, f"expected {case.lines} error line(s), got {len(errors)}:\n{out}"
    # nothing else shouts (indented lines are the error's own explanation, from a library)
    shouting = [line for line in out.splitlines() if "error" in line.lower() and not line.startswith(" ")]
    assert len(shouting) == case.lines, out
    fmt = outcome.workspace.fmt
    for fragment in case.error:
        assert any(fmt(fragment) in e for e in errors), f"{fmt(fragment)!r} not in {errors}"
    notes = [line for line in out.splitlines() if line.startswith("note: ")]
    for fragment in case.notes:
        assert any(fmt(fragment) in n for n in notes), f"no note with {fmt(fragment)!r}:\n{out}"
    def kept(state: dict) -> dict:
        return {k: v for k, v in state.items() if not any(k.endswith(name) for name in case.may_write)}

    before, after = kept(outcome.before), kept(outcome.after)
    created = sorted(set(after) - set(before))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    removed = sorted(set(before) - set(after))
    assert not (created or changed or removed), f"created {created}, changed {changed}, removed {removed}"

