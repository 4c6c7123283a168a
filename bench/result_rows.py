"""Stress harness for the per-epoch record (result.json, progress.csv): rows lost or duplicated per run.

Runs the product's real search driver (the experiment record, the Tuner with ASHA + Optuna, its
retries, checkpoint retention and storage file system) around a fast trainable of EPOCHS epochs
with a checkpoint at every epoch but those in NO_CHECKPOINT (reports without one, as the product's
trainable makes when the disk is short), so that a restart goes back two epochs behind the last
row. The faults, each on the first attempt of every trial the first driver starts, at epoch FAIL_AT:

    raise        an exception after the epoch's report: Tune retries from the last checkpoint
    kill         SIGKILL of the worker after the report: the same, from a dead actor
    driver-kill  SIGKILL of the driver after the report, then ``resume`` in a new driver
    torn         the same, but the driver is killed in the middle of uploading its snapshot (right
                 after the first of its files is written), as a kill at a random moment now and
                 then is: then ``resume``

each with and without actor reuse (alternating runs). After every run, each trial's result.json and
progress.csv must hold epochs 1..EPOCHS exactly once, in order: a missing epoch counts as lost, a
repeated one as duplicated.

    python -m bench.result_rows                      # 50 runs of each scenario
    python -m bench.result_rows --runs 10 --scenarios raise,kill
    python -m bench.result_rows --ray-loggers        # Ray's own JSON/CSV loggers, for the figure before
    python -m bench.result_rows --slow-sync 0.5      # the driver's background sync made slow
    python -m bench.result_rows --scenarios torn --ray-snapshots   # each snapshot file published alone

``--slow-sync S`` delays every file the driver's background sync uploads by S seconds, which makes
the storage copy lag behind the rows the driver has seen: the condition in which Ray's loggers lose
rows at a restart, reproduced on every run instead of now and then.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EPOCHS = 6
FAIL_AT = 4
NO_CHECKPOINT = (3, 4)
TRIALS = 2
STEP_S = 0.05  # one "epoch"
SCENARIOS = ("raise", "kill", "driver-kill", "torn")
KILLED_DRIVER = ("driver-kill", "torn")
RESUMED = "resumed"  # the mark of a run whose driver was resumed


def make_trainable(plan: str, marks: str, epochs: int = EPOCHS, no_checkpoint: tuple[int, ...] = NO_CHECKPOINT,
                   fail_at: int = FAIL_AT, step_s: float = STEP_S):
    """The fast trainable: resumes from its checkpoint, and on a trial's first attempt fails as
    ``plan`` says (raise, kill, driver-kill or torn; anything else: no fault) after the report of
    ``fail_at``."""
    def trainable(config: dict) -> None:
        from ray import tune

        start = 0
        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as d:
                start = json.loads((Path(d) / "state.json").read_text())["epoch"]
        trial = tune.get_context().get_trial_id()
        started = Path(marks) / f"{trial}.started"
        # a trial first started by a resumed driver has no fault: nothing would kill that driver
        first = not started.exists() and not (Path(marks) / RESUMED).exists()
        started.touch()
        for epoch in range(start + 1, epochs + 1):
            time.sleep(step_s)
            metrics = {"epoch": epoch, "val_miou": float(epoch), "val_fscore": epoch / epochs,
                       "nested": {"loss": 1 / epoch}}
            if epoch in no_checkpoint:  # as the product's trainable reports when the disk is short
                tune.report(metrics)
            else:
                with tempfile.TemporaryDirectory() as d:
                    (Path(d) / "state.json").write_text(json.dumps({"epoch": epoch}))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            if first and epoch == fail_at:
                if plan == "raise":
                    raise RuntimeError(f"injected after the report of epoch {fail_at}")
                if plan == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                if plan in KILLED_DRIVER:
                    (Path(marks) / f"{trial}.kill-driver").touch()
                    time.sleep(60)  # the harness kills the driver meanwhile
    return trainable


def _slow_sync(seconds: float) -> None:
    """Every upload of the driver's background sync waits ``seconds`` first."""
    from ray.train._internal import storage

    copy = storage._pyarrow_fs_copy_files

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return copy(*args, **kwargs)

    storage._pyarrow_fs_copy_files = slow


def _use_ray_loggers() -> None:
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from search_spaces.driver import tuner

    tuner.ProgressRecord, tuner.ResultRecord = CSVLoggerCallback, JsonLoggerCallback


def _use_ray_snapshots() -> None:
    """Each file of the driver's snapshot published on its own, as Ray's storage does."""
    from search_spaces.driver import storage, tuner

    tuner.storage_filesystem = lambda path, snapshot=(): storage.storage_filesystem(path)


def _tear_snapshot(marks: Path) -> None:
    """Once a trial asks for the driver's death, the driver dies right after it next writes a file of
    its snapshot: in the middle of uploading it."""
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.search import BasicVariantGenerator, Searcher, SearchGenerator

    from search_spaces.driver import storage

    prefixes = tuple(c.CKPT_FILE_TMPL.split("{}")[0]
                     for c in (TuneController, SearchGenerator, Searcher, BasicVariantGenerator))
    close = storage._WholeFile.close

    def close_then_die(self) -> None:
        close(self)
        if Path(self.path).name.startswith(prefixes) and any(marks.glob("*.kill-driver")):
            os.kill(os.getpid(), signal.SIGKILL)

    storage._WholeFile.close = close_then_die


def _setup(args) -> None:
    """The loggers, snapshot publishing and sync delay of this process (once)."""
    if args.ray_loggers:
        _use_ray_loggers()
    if args.ray_snapshots:
        _use_ray_snapshots()
    if args.slow_sync:
        _slow_sync(args.slow_sync)


def _reuse(on: bool) -> None:
    from search_spaces.driver import tuner

    tuner.RAY_SETTINGS["reuse_actors"] = on
    tuner.RAY_SETTINGS["verbose"] = 0  # the harness prints its own counts


def _record(name: str):
    from search_spaces.driver import new_record

    return new_record("augmentation", name=name, num_samples=TRIALS, max_epochs=EPOCHS,
                      grace_period=EPOCHS, max_concurrent=TRIALS, cpus_per_trial=1, overrides={"data.image_size": 32})


def drive(exp_dir: Path, plan: str, marks: Path, restore: bool) -> None:
    """One driver: a new search, or (``restore``) the resume of one."""
    from search_spaces.driver import read_record, run_search

    record = read_record(exp_dir, for_resume=True) if restore else _record(exp_dir.name)
    run_search(exp_dir, record, restore, trainable_fn=make_trainable(plan, str(marks)))


def count(exp_dir: Path) -> tuple[int, int, int]:
    """Rows lost and duplicated over the trials of ``exp_dir`` (both files), and the trials read."""
    lost = dup = trials = 0
    for d in sorted(exp_dir.glob("trial_*")):
        trials += 1
        json_rows, csv_rows = [], []
        if (d / "result.json").exists():
            json_rows = [json.loads(x)["epoch"] for x in (d / "result.json").read_text().splitlines()]
        if (d / "progress.csv").exists():
            with open(d / "progress.csv") as f:
                csv_rows = [int(r["epoch"]) for r in csv.DictReader(f)]
        for rows in (json_rows, csv_rows):
            lost += len(set(range(1, EPOCHS + 1)) - set(rows))
            dup += len(rows) - len(set(rows))
            if rows != sorted(rows):
                dup += 1  # out of order counts as a defect too
    return lost, dup, trials


def _driver_process(args, exp_dir: Path, marks: Path, restore: bool) -> subprocess.Popen:
    argv = [sys.executable, "-m", "bench.result_rows", "--driver", str(exp_dir), "--plan", args.plan, "--marks",
            str(marks),
            *(["--resume"] if restore else []), *(["--reuse"] if args.reuse else []),
            *(["--ray-loggers"] if args.ray_loggers else []), *(["--ray-snapshots"] if args.ray_snapshots else []),
            "--slow-sync", str(args.slow_sync)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    log = open(marks / f"driver{'-resumed' if restore else ''}.log", "w")
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _kill_driver_run(args, exp_dir: Path, marks: Path) -> str:
    """One killed-driver run; returns what went wrong with the run itself (empty when nothing did)."""
    proc = _driver_process(args, exp_dir, marks, restore=False)
    deadline = time.time() + 300
    while time.time() < deadline and not list(marks.glob("*.kill-driver")) and proc.poll() is None:
        time.sleep(0.05)
    if not list(marks.glob("*.kill-driver")):  # ended by itself before the fault: the run measures nothing
        return f"the driver exited ({proc.returncode}) before the fault: " + _tail(marks / "driver.log")
    if args.plan == "torn":  # it dies by itself at its next snapshot
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            return "the driver wrote no snapshot within 120 s of the fault"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
    proc.wait()
    time.sleep(1)
    (marks / RESUMED).touch()
    resumed = _driver_process(args, exp_dir, marks, restore=True)
    if resumed.wait(timeout=300):
        return f"the resumed driver failed ({resumed.returncode}): " + _tail(marks / "driver-resumed.log")
    return ""


def _tail(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-3:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=50, help="runs of each scenario (actor reuse on every other one)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--ray-loggers", action="store_true", help="Ray's JSON/CSV loggers instead of the product's")
    p.add_argument("--ray-snapshots", action="store_true",
                   help="each file of the driver's snapshot published alone, as Ray's storage does")
    p.add_argument("--slow-sync", type=float, default=0.0, help="seconds each background-sync upload waits")
    p.add_argument("--driver", help=argparse.SUPPRESS)
    p.add_argument("--plan", help=argparse.SUPPRESS)
    p.add_argument("--marks", help=argparse.SUPPRESS)
    p.add_argument("--resume", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--reuse", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("FACESEARCH_CACHE", str(Path(tempfile.gettempdir()) / "facesearch-bench-cache"))
    if args.driver:  # one driver process of a driver-kill run
        import ray

        _setup(args)
        _reuse(args.reuse)
        if args.plan == "torn" and not args.resume:
            _tear_snapshot(Path(args.marks))
        ray.init(address="local", num_cpus=TRIALS, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        drive(Path(args.driver), args.plan, Path(args.marks), args.resume)
        return 0

    import ray

    scenarios = args.scenarios.split(",")
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"--scenarios: unknown {sorted(unknown)}; valid: {', '.join(SCENARIOS)}")
    loggers = "Ray's JSON/CSV loggers" if args.ray_loggers else "the product's loggers"
    print(f"{args.runs} runs per scenario, {TRIALS} trials of {EPOCHS} epochs each, fault at epoch {FAIL_AT} "
          f"(no checkpoint at epochs {NO_CHECKPOINT}), {loggers}, snapshot files published "
          f"{'one by one' if args.ray_snapshots else 'together'}, background sync delay {args.slow_sync:g} s")
    _setup(args)
    ray.init(address="local", num_cpus=TRIALS, include_dashboard=False, log_to_driver=False, configure_logging=False)
    totals = {}
    with tempfile.TemporaryDirectory() as work:
        for scenario in scenarios:
            lost = dup = bad_runs = trials = 0
            started = time.time()
            for run in range(args.runs):
                args.reuse = run % 2 == 1
                _reuse(args.reuse)
                exp_dir, marks = Path(work) / f"{scenario}-{run}", Path(work) / f"marks-{scenario}-{run}"
                marks.mkdir()
                failed = ""
                if scenario in KILLED_DRIVER:
                    args.plan = scenario
                    failed = _kill_driver_run(args, exp_dir, marks)
                else:
                    drive(exp_dir, scenario, marks, restore=False)
                run_lost, run_dup, run_trials = count(exp_dir)
                lost, dup, trials = lost + run_lost, dup + run_dup, trials + run_trials
                bad_runs += bool(run_lost or run_dup or run_trials != TRIALS or failed)
                print(f"  {scenario} run {run + 1}{' (actor reuse)' if args.reuse else ''}: {run_lost} lost, "
                      f"{run_dup} duplicated{'; ' + failed if failed else ''}", flush=True)
            totals[scenario] = (lost, dup, bad_runs)
            print(f"{scenario:<12} {args.runs} runs ({trials} trials, {time.time() - started:.0f} s): "
                  f"{lost} rows lost, {dup} duplicated; {bad_runs} runs with a defect")
    ray.shutdown()
    worst = sum(lost + dup for lost, dup, _ in totals.values())
    print(f"rows lost or duplicated over all runs = {worst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
