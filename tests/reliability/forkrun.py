"""Run ``launch.py`` as ``python launch.py ARGS`` does, many times, without paying its imports each time.

    python -m tests.reliability.forkrun < jobs.jsonl > results.jsonl     (in the repository root)

One job per input line: ``{"id", "argv", "env", "stdout", "stderr", "timeout"}``. The server imports
what launch.py loads once, then forks a child per job that runs ``launch.py`` as ``__main__`` with
``sys.argv = ["launch.py", *argv]`` in the repository root, its stdout and stderr going to the job's
files, and exits as the interpreter would: ``SystemExit``'s code, or 1 with the traceback printed
for any other exception. One result line per job: ``{"id", "returncode"}`` (``-9`` when killed
after its timeout). A child that the interpreter would run identically, only sooner: the real
command line is compared with it in the tests.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_CHILDREN = 2


WARM = ("launch", "search_spaces.driver", "trainable.scan", "trainable.splits", "trainable.models", "trainable.predict",
        "trainable.retrain", "trainable.synthetic", "trainable.tta_search", "analysis.load", "analysis.tables")


def _warm_imports() -> None:
    # everything launch.py may import before it refuses; importing torch runs no parallel op, so
    # forking afterwards is safe (OpenMP's thread pool does not exist yet)
    for name in WARM:
        importlib.import_module(name)


def _child(job: dict) -> None:
    os.setsid()  # its own process group, so that a timeout can stop whatever it started
    os.chdir(ROOT)
    os.environ.update(job["env"])
    out = os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.argv = ["launch.py", *job["argv"]]
    sys.path[0] = str(ROOT)
    code = 0
    try:
        import runpy

        runpy.run_path(str(ROOT / "launch.py"), run_name="__main__")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve(jobs: list[dict]) -> None:
    _warm_imports()
    pending, running = list(jobs), {}
    while pending or running:
        while pending and len(running) < MAX_CHILDREN:
            job = pending.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(job)
            running[pid] = (job, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            for child, (job, start) in list(running.items()):
                if time.monotonic() - start > job["timeout"]:
                    try:
                        os.killpg(child, signal.SIGKILL)  # the group this server's child leads
                    except ProcessLookupError:
                        pass
            time.sleep(0.02)
            continue
        job, _ = running.pop(pid)
        print(json.dumps({"id": job["id"], "returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve([json.loads(line) for line in sys.stdin if line.strip()])
