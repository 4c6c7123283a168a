"""Tune overhead: the wall time of a search run through the project's real Tuner, divided by the time
the same trials' compute takes as a plain loop without Ray.

The Tuner is ``search_spaces.driver.build_tuner``, as ``launch.py`` builds it: ASHA, Optuna
TPE with the PRUNED coupling and its journal, a checkpoint per epoch with retention, retries,
Tune's loggers and progress output, and the experiment-state snapshot at every step that
``launch.py`` asks for (``TUNE_GLOBAL_CHECKPOINT_S=0``). Ray is started as ``launch.py`` starts it
(``start_ray``, dashboard included) before any row is timed; ``ray.init`` is timed on its own.

Two kinds of rows, measured side by side in one run:

- ``real``: trials of the face-parsing trainable on a small synthetic set at 64 px, one CPU each,
  one at a time. ASHA's grace period equals the epoch count, so no trial is stopped early and both
  sides train the same epochs. The plain loop (run after ``ray.shutdown()``, so no Ray process is
  left) replays the configurations the searcher chose, in one process with one torch thread (Ray
  gives a one-CPU trial ``OMP_NUM_THREADS=1``), calling ``build_run``, ``run_epoch`` and
  ``save_checkpoint`` exactly as the trainable does. Ratio = Tune wall / plain-loop wall. The
  epochs are chosen so that a trial takes ``--trial-seconds`` of CPU time as a plain loop (so at
  least as many seconds of wall time, however busy the machine).
- ``spin``: trials that busy-wait a fixed time per report (1, 10 or 50 reports a second), with or
  without a checkpoint (the size of the default model's: weights and AdamW state) per report,
  through the same Tuner. Ratio = Tune wall / the trials' busy time (checkpoint writes included).

Inside every trial the benchmark notes when the trainable started, when each report began and how
long the trial spent in ``tune.report`` (Ray's checkpoint upload and the wait for the driver), which
splits the overhead into: ``first`` (``fit()`` to the first trial's start: Tune's set-up, the
actor's start and its imports), ``gap`` (a trial's last report to the next trial's start),
``ms/rep`` (a report's round trip, the last one of each trial excepted) and ``tail`` (the last
report to the search's end). ``in-tr`` is the trainable's own compute inside Ray (its CPU
time is ``cpu``): against the plain loop, it shows how much the trials themselves were slowed (CPU
contention, other load on the machine), and ``w/in`` = wall / ``in-tr`` is Ray's own latency alone.

``before`` rows use the Ray settings the project had before they were tuned, ``after`` rows the
current ``RAY_SETTINGS``; a row named after one setting changes only that one.

    python -m bench.tune_overhead             # the full table (about 8 minutes on two idle cores)
    python -m bench.tune_overhead --quick     # a smoke run of the same rows, small (about 2 minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local benchmark cluster needs no token

SNAPSHOT_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
NO_TENSORBOARD_ENV = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # build_tuner names the CSV and JSON loggers itself
# the settings of search_spaces.driver before they were tuned (launch.py's snapshot period 0 kept)
BEFORE = {"reuse_actors": False, "verbose": 1}
CHECKPOINT_MB = 17.4  # the default model's checkpoint: 1.45M weights + AdamW's two moments, float32


@dataclass
class Row:
    """One timed search (or the plain loop) and what it is compared with."""

    kind: str
    name: str
    trials: int
    reports: int
    wall: float
    compute: float = math.nan  # the plain loop's time (real rows) or the trials' busy time (spin rows)
    in_trial: float = math.nan  # the trainable's own compute inside Ray (outside tune.report)
    cpu: float = math.nan  # CPU seconds of the trials' training threads (the plain loop's thread)
    driver_cpu: float = math.nan
    daemons_cpu: float = math.nan
    load: str = ""
    first: float = math.nan  # fit() start to the first trial's start
    gap: float = math.nan  # one trial's end to the next one's start, mean
    report_ms: float = math.nan  # time a trial spends in tune.report, mean per report
    tail: float = math.nan  # the last trial's end to the search's end

    @property
    def ratio(self) -> float:
        return self.wall / self.compute

    @property
    def in_ratio(self) -> float:
        """Wall over the trials' compute as timed inside Ray: Ray's own latency, whatever slowed the compute."""
        return self.wall / self.in_trial

    @property
    def per_trial(self) -> float:
        return (self.wall - self.compute) / self.trials


def machine() -> str:
    """CPU model, cores, memory and library versions."""
    import optuna
    import ray
    import torch

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{model}, {cores} cores{mem}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}, "
            f"optuna {optuna.__version__}")


def load_avg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _proc_tree() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command, CPU seconds) of every process readable under /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(d.name)] = (int(fields[1]), cmd, (int(fields[11]) + int(fields[12])) / tick)
    return out


def daemons_cpu() -> float:
    """CPU seconds used so far by the Ray processes this benchmark started, trial workers excepted
    (GCS, raylet, dashboard and its agents, log monitor)."""
    tree = _proc_tree()
    ours, changed = {os.getpid()}, True
    while changed:  # descendants of this process
        changed = False
        for pid, (ppid, _, _) in tree.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                changed = True
    return sum(cpu for pid, (_, cmd, cpu) in tree.items()
               if pid in ours and pid != os.getpid() and not cmd.startswith("ray::") and "default_worker" not in cmd)


def driver_cpu() -> float:
    """CPU seconds of this process (the Tune driver: controller loop, searcher, loggers, syncing)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_record(name: str, data_root: Path, trials: int, epochs: int, max_train: int, max_val: int):
    """The experiment record ``launch.py search --space augmentation`` builds with these sizes, one CPU
    per trial, one trial at a time, and a grace period of all epochs (ASHA stops nothing)."""
    import launch

    _, args = launch.parse(["search", "--space", "augmentation", "--num-samples", str(trials), "--max-epochs",
                            str(epochs), "--grace-period", str(epochs), "--cpus-per-trial", "1", "--gpus-per-trial",
                            "0", "--max-concurrent", "1", "--name", name, "--data", str(data_root),
                            "--set", f"data.max_train={max_train}", "--set", f"data.max_val={max_val}"])
    args.command = "bench/tune_overhead.py"
    return launch.search_record(args)


@dataclass(frozen=True)
class Timed:
    """A trainable, timed from inside: at every ``tune.report`` it appends to ``timeline`` when the trial
    started, when this report began, and the time spent in the earlier reports (Ray's checkpoint upload
    and the wait for the driver) and in CPU. Written before the report, as a trial's last report may
    not return (ASHA ends a trial at its last epoch there)."""

    trainable: Callable[[dict], None]
    timeline: str

    def __call__(self, config: dict) -> None:
        import ray.tune

        real_report = ray.tune.report
        trial = ray.tune.get_context().get_trial_id()
        start, cpu = time.time(), time.thread_time()
        waited, reports = 0.0, 0

        def report(*args, **kwargs) -> None:
            nonlocal waited, reports
            with open(self.timeline, "a") as f:
                f.write(json.dumps({"trial": trial, "start": start, "at": time.time(), "waited": waited,
                                    "reports": reports + 1, "cpu": time.thread_time() - cpu}) + "\n")
            t = time.perf_counter()
            try:
                real_report(*args, **kwargs)
            finally:
                waited += time.perf_counter() - t
                reports += 1

        ray.tune.report = report  # the trainable calls tune.report through the module: this is what it finds
        try:
            self.trainable(config)
        finally:
            ray.tune.report = real_report


@dataclass(frozen=True)
class Spin:
    """A trainable that busy-waits ``interval`` seconds per report, ``train.epochs`` reports, each
    with a checkpoint of ``checkpoint_bytes`` when that is positive."""

    interval: float
    checkpoint_bytes: int

    def __call__(self, config: dict) -> None:
        from ray import tune

        payload = os.urandom(self.checkpoint_bytes) if self.checkpoint_bytes else b""
        for epoch in range(config["train"]["epochs"]):
            t = time.perf_counter()
            while time.perf_counter() - t < self.interval:
                pass
            metrics = {"epoch": epoch + 1, "val_miou": float(epoch)}
            if not payload:
                tune.report(metrics)
                continue
            with tempfile.TemporaryDirectory() as directory:
                Path(directory, "checkpoint.bin").write_bytes(payload)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


@contextlib.contextmanager
def output_to(log) -> None:
    """Send this process's stdout and stderr (file descriptors, so Ray's log handlers too) to ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


def custom_storage() -> bool:
    """Whether build_tuner hands Ray a storage filesystem of its own (whole-file writes)."""
    import search_spaces.driver.tuner as tuner

    return callable(getattr(tuner, "storage_filesystem", None))


@contextlib.contextmanager
def ray_storage_filesystem() -> None:
    """build_tuner with Ray's own choice of storage filesystem instead of the project's."""
    import search_spaces.driver.tuner as tuner

    own = tuner.storage_filesystem
    tuner.storage_filesystem = lambda path, snapshot=(): None
    try:
        yield
    finally:
        tuner.storage_filesystem = own


def run_search(work: Path, record, ray_settings: dict, env: dict[str, str], log,
               trainable: Callable | None = None) -> tuple[Row, list]:
    """Build the experiment's Tuner around ``trainable`` (default: the face-parsing trainable), fit and
    settle it as ``launch.py`` does; returns its row (all but the compute column) and its results."""
    from search_spaces.driver import build_tuner, settle
    from trainable.ray_trainable import train_segmentation

    exp_dir = work / record.name
    exp_dir.mkdir(parents=True)
    record.write(exp_dir)
    timeline = work / f"{record.name}.timeline.jsonl"
    fn = Timed(trainable or train_segmentation, str(timeline))
    cpu0, daemons0 = driver_cpu(), daemons_cpu()
    with patch.dict(os.environ, {SNAPSHOT_ENV: "0", **env}), output_to(log):
        t0, start = time.time(), time.perf_counter()
        results = build_tuner(exp_dir, record, False, trainable_fn=fn, ray_settings=ray_settings).fit()
        settle(results, exp_dir, record)
        wall, t1 = time.perf_counter() - start, time.time()
    if results.errors or len(results) != record.num_samples:
        raise RuntimeError(f"{record.name}: {len(results.errors)} trials failed (see {log.name}): {results.errors}")
    last: dict[str, dict] = {}  # each trial's last report
    for line in timeline.read_text().splitlines():
        t = json.loads(line)
        last[t["trial"]] = max(last.get(t["trial"], t), t, key=lambda x: x["at"])
    trials = sorted(last.values(), key=lambda t: t["start"])
    waited = sum(t["waited"] for t in trials)  # the last reports' round trips fall in the gaps and the tail
    row = Row("", "", len(trials), sum(t["reports"] for t in trials), wall, driver_cpu=driver_cpu() - cpu0,
              daemons_cpu=daemons_cpu() - daemons0, load=load_avg(),
              in_trial=sum(t["at"] - t["start"] for t in trials) - waited, cpu=sum(t["cpu"] for t in trials),
              first=trials[0]["start"] - t0, tail=t1 - trials[-1]["at"],
              report_ms=1000 * waited / max(1, sum(t["reports"] - 1 for t in trials)),
              gap=sum(b["start"] - a["at"] for a, b in itertools.pairwise(trials)) / max(1, len(trials) - 1))
    return row, list(results)


def plain_loop(configs: list[str]) -> dict[str, tuple[float, float]]:
    """The trials' compute without Ray, exactly what ``train_segmentation`` does per trial; the wall
    time and CPU time of each configuration (as JSON)."""
    from trainable.checkpoints import save_checkpoint
    from trainable.config import Config
    from trainable.run import build_run, run_epoch

    times = {}
    for config in configs:
        start, cpu = time.perf_counter(), time.thread_time()
        cfg = Config.from_dict(json.loads(config))
        run = build_run(cfg)
        for epoch in range(cfg.train.epochs):
            metrics = run_epoch(run, epoch)
            with tempfile.TemporaryDirectory() as directory:
                save_checkpoint(run, epoch + 1, directory, metrics)
        times[config] = time.perf_counter() - start, time.thread_time() - cpu
    return times


def calibrate(cfg, seconds: float) -> int:
    """Epochs for a trial of at least ``seconds`` as a plain loop, from the CPU time (which other load
    on the machine does not inflate) of the baseline configuration: a first build fills the data
    caches, then a build and two epochs with their checkpoints are timed."""
    from trainable.checkpoints import save_checkpoint
    from trainable.run import build_run, run_epoch

    build_run(cfg)
    start = time.thread_time()
    run = build_run(cfg)
    build = time.thread_time() - start
    epochs = []
    for epoch in range(2):
        start = time.thread_time()
        metrics = run_epoch(run, epoch)
        with tempfile.TemporaryDirectory() as directory:
            save_checkpoint(run, epoch + 1, directory, metrics)
        epochs.append(time.thread_time() - start)
    return max(2, math.ceil((seconds - build) / min(epochs)))


HEADER = (f"{'kind':<5} {'row':<36} {'K':>2} {'reps':>4} {'wall s':>6} {'comp s':>6} {'ratio':>6} {'in-tr s':>7} "
          f"{'cpu s':>6} {'w/in':>5} {'s/trial':>7} {'first':>5} {'gap':>5} {'ms/rep':>6} {'tail':>5} {'drv':>4} "
          f"{'dmn':>4}  load")


def _f(x: float, fmt: str, width: int) -> str:
    return f"{'-':>{width}}" if math.isnan(x) else f"{x:>{width}{fmt}}"


def format_row(row: Row) -> str:
    return (f"{row.kind:<5} {row.name:<36} {row.trials:>2} {row.reports:>4} {row.wall:>6.1f} "
            f"{_f(row.compute, '.1f', 6)} {_f(row.ratio, '.3f', 6)} {_f(row.in_trial, '.1f', 7)} "
            f"{_f(row.cpu, '.1f', 6)} {_f(row.in_ratio, '.2f', 5)} {_f(row.per_trial, '.2f', 7)} "
            f"{_f(row.first, '.2f', 5)} {_f(row.gap, '.2f', 5)} {_f(row.report_ms, '.0f', 6)} "
            f"{_f(row.tail, '.2f', 5)} {_f(row.driver_cpu, '.1f', 4)} {_f(row.daemons_cpu, '.1f', 4)}  {row.load}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=5, help="trials of the real 'after' row (default 5)")
    p.add_argument("--before-trials", type=int, default=2, help="trials of the real 'before' row (default 2)")
    p.add_argument("--trial-seconds", type=float, default=21.0,
                   help="CPU seconds of a real trial as a plain loop (so at least as many wall seconds); sets "
                        "the epochs from timed ones (default 21)")
    p.add_argument("--epochs", type=int, help="epochs per real trial (default: from --trial-seconds)")
    p.add_argument("--max-train", type=int, default=96, help="training images per epoch (default 96)")
    p.add_argument("--max-val", type=int, default=32, help="validation images per epoch (default 32)")
    p.add_argument("--spin-trials", type=int, default=3, help="trials per spin row (default 3)")
    p.add_argument("--spin-seconds", type=float, default=2.0, help="busy seconds per spin trial (default 2)")
    p.add_argument("--quick", action="store_true", help="small rows: a smoke run of the same table")
    p.add_argument("--only", choices=("real", "spin"), help="run only these rows")
    p.add_argument("--work", help="folder for the data, experiments and Tune's output (default: a temporary "
                                  "one, removed at the end)")
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.before_trials, args.epochs, args.max_train, args.max_val = 2, 2, 2, 16, 8
        args.spin_trials, args.spin_seconds = 2, 1.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ray
    import torch

    from search_spaces.driver import RAY_SETTINGS, start_ray
    from trainable.scan import scan_split
    from trainable.synthetic import generate

    torch.set_num_threads(1)  # as Ray gives a one-CPU trial (OMP_NUM_THREADS=1)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="tune-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["FACESEARCH_CACHE"] = str(work / "cache")
    log = open(work / "tune.log", "w")  # Tune's progress output and warnings, out of the table
    started = time.perf_counter()
    print(f"machine:   {machine()}")
    print(f"load:      {load_avg()} (1/5/15 min) at start; Tune's output goes to {log.name}")
    print(f"settings:  after {RAY_SETTINGS}, before {BEFORE}; {SNAPSHOT_ENV}=0 (as launch.py sets it) unless "
          f"a row names another")

    data = generate(work / "data", n_train=args.max_train, n_val=args.max_val, n_test=1, size=64, seed=0)
    for split in ("train", "val"):  # the statistics cache that both sides then read
        scan_split(data, split)
    if args.only != "spin":
        if not args.epochs:
            base = make_record("calibration", data, 1, 1, args.max_train, args.max_val).config
            args.epochs = calibrate(base, args.trial_seconds)
        print(f"real:      {args.max_train} training and {args.max_val} validation images at 64 px, batch 8, "
              f"{args.epochs} epochs a trial (a checkpoint each); ASHA's grace period = all epochs")
    t = time.perf_counter()
    with output_to(log):
        start_ray(None)
    print(f"ray.init:  {time.perf_counter() - t:.1f} s (start_ray, dashboard included; in no row)")
    print()
    print(HEADER, flush=True)
    rows: list[Row] = []
    names = iter(range(1000))

    def spin(name: str, per_s: float, checkpoint: bool, ray_settings: dict, env: dict | None = None,
             trials: int | None = None, ray_storage: bool = False) -> Row:
        reports = max(2, round(args.spin_seconds * per_s))
        record = make_record(f"spin-{next(names)}", data, trials or args.spin_trials, reports, args.max_train,
                             args.max_val)
        fn = Spin(1 / per_s, int(CHECKPOINT_MB * 2**20) if checkpoint else 0)
        with ray_storage_filesystem() if ray_storage else contextlib.nullcontext():
            row, _ = run_search(work, record, ray_settings, env or {}, log, trainable=fn)
        row.kind, row.name, row.compute = "spin", name, row.in_trial
        return row

    def show(row: Row) -> None:
        rows.append(row)
        print(format_row(row), flush=True)

    spin("warm-up", 5, False, {}, trials=1)  # Ray's first actor of the session; not shown

    if args.only != "real":
        show(spin("1/s, before", 1, False, BEFORE))
        show(spin("1/s", 1, False, {}))
        show(spin("1/s + checkpoint", 1, True, {}))
        show(spin("10/s + checkpoint", 10, True, {}))
        show(spin(f"10/s + checkpoint, {SNAPSHOT_ENV}=auto", 10, True, {}, {SNAPSHOT_ENV: "auto"}))
        if custom_storage():
            show(spin("10/s + checkpoint, Ray's storage filesystem", 10, True, {}, ray_storage=True))
        show(spin("50/s", 50, False, {}))
        show(spin(f"50/s, {SNAPSHOT_ENV}=auto", 50, False, {}, {SNAPSHOT_ENV: "auto"}))
        show(spin("50/s, no TensorBoard logger", 50, False, {}, {NO_TENSORBOARD_ENV: "1"}))
        show(spin("50/s, verbose=0", 50, False, {"verbose": 0}))

    real: list[tuple[Row, list[str]]] = []
    if args.only != "spin":
        for name, settings, trials in (("before", BEFORE, args.before_trials), ("after", {}, args.trials)):
            record = make_record(f"real-{name}", data, trials, args.epochs, args.max_train, args.max_val)
            row, results = run_search(work, record, settings, {}, log)
            row.kind, row.name = "real", name
            real.append((row, [json.dumps(r.config, sort_keys=True) for r in results]))
            print(format_row(row), flush=True)

    ray.shutdown()  # the plain loop runs with no Ray process left
    plain: dict[str, tuple[float, float]] = {}
    if real:
        plain = plain_loop(real[-1][1])  # the configurations of the 'after' search, one after another
        walls, cpus = [w for w, _ in plain.values()], [c for _, c in plain.values()]
        rows.insert(0, Row("plain", "loop, no Ray", len(plain), len(plain) * args.epochs, sum(walls), cpu=sum(cpus),
                           load=load_avg()))
        print(format_row(rows[0]), flush=True)
        for row, configs in real:
            missing = [c for c in configs if c not in plain]
            if missing:  # the searcher is seeded: every search samples the same configurations
                print(f"note: the {row.name} search sampled {len(missing)} configurations the plain loop did not run")
            row.compute = sum(plain[c][0] if c in plain else math.nan for c in configs)
        rows[:0] = [row for row, _ in real]

    print()
    trial_s = sum(w for w, _ in plain.values()) / max(1, len(plain))
    if real:
        print(f"real rows: trials of the face-parsing trainable, {trial_s:.1f} s each as a plain loop, "
              f"{args.epochs} reports (epochs) each")
    print(f"spin rows: {args.spin_trials} trials of {args.spin_seconds:g} s busy at the named reports a second")
    print("ratio = wall / compute (real: the plain loop; spin: busy time); in-tr = the trainable's compute timed "
          "inside Ray (outside tune.report);\ncpu = CPU time of the training threads; w/in = wall / in-tr (Ray's "
          "own latency, whatever slowed the compute); s/trial = (wall - compute) / trials;\nfirst = fit() to the "
          "first trial's start; gap = a trial's last report to the next trial's start; ms/rep = time in "
          "tune.report per report;\ntail = last report to the search's end (s); drv / dmn = CPU seconds of the "
          "Tune driver / of Ray's daemons; load = 1/5/15-minute load average after the row")
    print(HEADER)
    for row in rows:
        print(format_row(row))
    if real:
        after = real[-1][0]
        verdict = "met" if after.ratio <= 1.05 and trial_s >= 20 else "NOT met"
        print(f"acceptance (Tune overhead <= 1.05 on trials of >= 20 s): {verdict}: {after.ratio:.3f} over "
              f"{after.trials} trials of {trial_s:.1f} s")
        # Ray's own time (wall - in-tr) over the plain loop: what the ratio would be had the trials' compute
        # run inside Ray as fast as in the plain loop, i.e. without the load on the machine changing between
        # the two (their CPU times, in the cpu column, tell whether the compute itself was the same)
        ray_time = after.wall - after.in_trial
        gaps = after.gap * (after.trials - 1)
        reports = ray_time - after.first - gaps - after.tail
        print(f"Ray's own time: {ray_time:.1f} s = first {after.first:.1f} (once per search) + gaps {gaps:.1f} + "
              f"reports {reports:.1f} + tail {after.tail:.1f}; (compute + Ray's own time) / compute = "
              f"{(after.compute + ray_time) / after.compute:.3f}, without the one-off start "
              f"{(after.compute + ray_time - after.first) / after.compute:.3f}")
    print(f"total {time.perf_counter() - started:.0f} s; load {load_avg()} at end")
    log.close()
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
