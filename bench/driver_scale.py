"""Driver scale: how the cost of the project's real search driver grows with the number of trials.

The driver is ``search_spaces.driver.run_search`` as ``launch.py search`` runs it: the experiment
record (``launch.search_record``, space ``augmentation``, the CPU defaults: 8 epochs, ASHA with a
grace period of 2 and a reduction factor of 3), the Tune environment it sets (the experiment-state
snapshot at every controller step, as many trials pending at once as the cluster holds), the Tuner
of ``build_tuner`` (ASHA + Optuna TPE with the PRUNED coupling and its journal, the storage file
system that replaces every file whole and publishes each snapshot whole, the loggers, the progress
table, retries, checkpoint retention) and ``settle``. Only the trainable is replaced: a near-instant
one that reports every epoch, with the real trainable's metrics and a tiny checkpoint, after
``--report-ms`` of CPU work (10 ms by default, so about 40 ms a trial as ASHA stops most trials at
epoch 2).

Every row runs in a fresh process of its own (a fresh Ray started with ``ray.init(address="local",
num_cpus=concurrent * --cpus-per-trial)``, so the cluster holds ``concurrent`` trials and
``run_search`` lets as many start at once; its peak RSS and CPU time are that row's alone). This
process watches the row's process tree (its memory, PSS where readable) and stops a row whose
machine runs short of memory. Columns:

- ``wall/tr``: wall seconds of ``run_search`` per trial (Ray's start not included);
- ``drv ms/rep``: CPU time of the driver process (``getrusage``, every thread: the controller loop,
  the searcher, the loggers, the background upload of the snapshot) per trial report (the rows of
  every trial's ``result.json``). CPU time, not wall: the machine may be shared, and other load
  inflates wall times but hardly the CPU time a piece of work takes;
- ``steps``: controller steps (``TuneController.step``); ``save ms``: CPU ms of writing the snapshot
  (``TuneController.save_to_dir``: the experiment state, the searcher's state, the callbacks'),
  mean over every step and over the last tenth of the steps; ``upl ms``: CPU ms of one upload of the
  driver's staging folder to storage (Ray's background syncer, through the storage file system, whose
  Python side runs in Arrow's I/O threads), and ``files`` the files one upload copies;
- ``state KB``: the experiment state (``experiment_state-*.json``) and the searcher's state
  (``searcher-state-*.pkl``) at the end; ``jrnl KB``: the Optuna journal; ``jrnl s``: one read of the
  whole journal, as ``skip_finished_trials`` does in every trial at its start (timed here after the
  run, on the final journal);
- ``sugg ms``: CPU ms per TPE suggestion (``PrunedOptunaSearch.suggest``), mean and last tenth;
- ``RSS MB``: the driver's peak RSS (``ru_maxrss``); ``tree GB``: the peak memory of the driver and
  every Ray process it started (the trials' actors included);
- ``analysis s``: ``python -m analysis EXP`` of the row's experiment, wall seconds (CPU seconds in the
  breakdown).

A second table splits the driver's CPU time per report between the snapshot, its upload, the
searcher (suggest and the results it is told), ASHA, the loggers (the project's two and
TensorBoard's), the progress table and the rest of the loop, then by phase and by thread.
``--profile`` runs each row under cProfile (CPU time of the driver's main thread; the upload's
threads are timed by the breakdown) and prints, for the functions with the most cumulative time,
their time per report at each size and the growth exponent of their total time between the
smallest and the largest size (1: grows with the work; 2: quadratic).

Driver CPU depends on wall time too: the controller takes a step at least every 0.1 s, and each
step writes and uploads a snapshot, so a machine loaded by other work (longer trial starts) adds
steps. Compare rows run under similar load.

    python -m bench.driver_scale                 # 50, 200, 1000 trials at 8 and 64 at once (hours)
    python -m bench.driver_scale --trials 50,200 --concurrent 8             # about 30 min, 2 busy cores
    python -m bench.driver_scale --trials 20,80 --concurrent 8 --profile    # about 13 min
    python -m bench.driver_scale --quick         # a smoke run, small sizes (about 3 minutes)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from bench.tune_overhead import load_avg, machine, output_to  # noqa: E402 (after the path it is found by)

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local benchmark cluster needs no token

MIB = 2**20
ACTOR_MB_GUESS = 450  # memory of one trial actor before a row has measured it (about 430 MB measured at 8 at once)
RAY_BASE_MB = 1500  # the driver, GCS, raylet, dashboard and its agents
MEMORY_SHARE = 0.6  # of the memory available when a row starts, what its process tree may plan to use
MEMORY_FLOOR_MB = 1536  # a row is stopped when the machine has less than this left


# ---------------------------------------------------------------- the trainable


@dataclass(frozen=True)
class Instant:
    """A near-instant trainable: ``train.epochs`` reports, each after ``report_s`` of CPU work and with a
    tiny checkpoint, carrying the metrics the real trainable reports (``trainable.run.run_epoch``),
    the score a fixed function of the configuration."""

    report_s: float
    classes: tuple[str, ...]

    def __call__(self, config: dict) -> None:
        import hashlib

        from ray import tune

        digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).digest()
        quality = 0.3 + 0.6 * int.from_bytes(digest[:4], "big") / 2**32
        for epoch in range(config["train"]["epochs"]):
            start = time.thread_time()
            while time.thread_time() - start < self.report_s:
                pass
            miou = quality * (1 - 0.6 ** (epoch + 1))
            metrics = {"epoch": epoch + 1, "val_miou": miou, "val_acc": 0.5 + miou / 2, "val_mean_f1": miou,
                       "val_fscore": miou, "val_loss": 2 - miou, "train_loss": 2.2 - miou, "lr": 1e-3,
                       "params": 1_450_000, "val_absent_classes": "",
                       "iou": {c: miou for c in self.classes}, "node": "bench", "threads": 1,
                       "device": "cpu", "gpus": ""}
            with tempfile.TemporaryDirectory() as directory:
                Path(directory, "checkpoint.pt").write_bytes(b"\0" * 1024)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


# ---------------------------------------------------------------- probes (in the row's process only)


class Probe:
    """CPU (``thread_time``) and wall time of each call of a wrapped method, in the calling thread."""

    def __init__(self, background: bool = False) -> None:
        self.background = background  # count only calls outside the main thread
        self.cpu: list[float] = []
        self.wall: list[float] = []

        self.first_process_cpu = math.nan  # the process's CPU time when the first call began
        self.last_process_cpu = math.nan  # ... and when the last call ended

    def wrap(self, fn):
        probe = self

        # functools.wraps: the wrapper takes the function's module and name, so that pickling it (Ray pickles
        # the syncer's pending command into every trial's state) finds it by reference as it finds the
        # function, not by value
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if probe.background and threading.current_thread() is threading.main_thread():
                return fn(*args, **kwargs)
            if not probe.cpu:
                probe.first_process_cpu = cpu_self()
            c, w = time.thread_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                probe.cpu.append(time.thread_time() - c)
                probe.wall.append(time.perf_counter() - w)
                probe.last_process_cpu = cpu_self()

        return timed

    def summary(self) -> dict:
        n = len(self.cpu)
        tail = self.cpu[n - max(1, n // 10):] if n else []
        return {"calls": n, "cpu": sum(self.cpu), "wall": sum(self.wall),
                "cpu_tail_mean": sum(tail) / len(tail) if tail else math.nan,
                "first_process_cpu": self.first_process_cpu, "last_process_cpu": self.last_process_cpu}


def install_probes() -> dict[str, Probe]:
    """Wrap the driver's pieces whose cost may grow with the trials, in this process only."""
    import ray.train._internal.storage as ray_storage
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.logger.tensorboardx import TBXLoggerCallback
    from ray.tune.schedulers import AsyncHyperBandScheduler

    import search_spaces.driver.results as results
    import search_spaces.driver.storage as storage
    from search_spaces.driver.progress import _Progress
    from search_spaces.driver.searcher import PrunedOptunaSearch

    probes: dict[str, Probe] = {}

    def on(owner, name: str, key: str, background: bool = False) -> None:
        probes[key] = probe = probes.get(key, Probe(background))
        setattr(owner, name, probe.wrap(getattr(owner, name)))

    on(TuneController, "step", "step")
    on(TuneController, "save_to_dir", "snapshot")
    on(TuneController, "checkpoint", "checkpoint")  # the snapshot, and the wait for the previous upload
    on(ray_storage, "_upload_to_fs_path", "upload")  # the syncer looks it up at every sync
    # the storage file system's side of an upload, in Arrow's I/O threads (its writes from the main thread,
    # the loggers', are in their own probe): each file copied whole, and the snapshot's state parsed
    for name in ("open_output_stream", "copy_file", "create_dir", "get_file_info", "get_file_info_selector"):
        on(storage.AtomicLocalHandler, name, "storage_fs", background=True)
    for name in ("write", "close"):
        on(storage._WholeFile, name, "storage_fs", background=True)
    on(storage.AtomicLocalHandler, "open_output_stream", "uploaded_files", background=True)  # (a count)
    on(PrunedOptunaSearch, "suggest", "suggest")
    on(PrunedOptunaSearch, "on_trial_result", "searcher_result")
    on(PrunedOptunaSearch, "on_trial_complete", "searcher_complete")
    on(AsyncHyperBandScheduler, "on_trial_result", "asha")
    for logger in (results.ResultRecord, results.ProgressRecord):  # (each its own wrapper: none nests)
        on(logger, "log_trial_start", "loggers")
        on(logger, "log_trial_result", "loggers")
    on(TBXLoggerCallback, "log_trial_result", "tensorboard")
    on(_Progress, "report", "progress")
    on(_Progress, "should_report", "progress")
    return probes


# ---------------------------------------------------------------- one row, in its own process


def make_record(name: str, data: Path, trials: int, epochs: int, cpus_per_trial: float, cluster):
    """The record ``launch.py search --space augmentation`` builds with these flags on ``cluster``."""
    import launch

    _, args = launch.parse(["search", "--space", "augmentation", "--num-samples", str(trials), "--max-epochs",
                            str(epochs), "--cpus-per-trial", str(cpus_per_trial), "--gpus-per-trial", "0",
                            "--name", name, "--data", str(data), "--set", "data.max_train=8", "--set",
                            "data.max_val=4"])
    args.command = "bench/driver_scale.py"
    return launch.search_record(args, cluster)


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's live threads, summed by thread name (``main`` for the main thread)."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    python = {t.native_id: t.name for t in threading.enumerate()}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            tid = int(task.name)
            if tid == os.getpid():
                name = "main"
            elif tid in python:
                name = f"Python thread {python[tid].split(' ')[0].split('(')[0].rstrip('-0123456789')}"
            else:
                name = (task / "comm").read_text().strip().rstrip("0123456789") or "?"  # one group per pool
                if name == "python":  # a native thread that kept the process's name: Arrow's pools
                    name = "native, unnamed (Arrow's thread pools)"
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def run_row(spec: dict) -> dict:
    """One search of ``spec["trials"]`` trials, ``spec["concurrent"]`` at once; its measurements."""
    import ray

    from search_spaces.driver import ClusterShape, run_search
    from search_spaces.driver.searcher import _ended_in_study
    from trainable.classes import CLASSES
    from trainable.layout import JOURNAL_FILE, RESULT_FILE, trial_dirs

    work, log = Path(spec["work"]), Path(spec["log"])
    trials, concurrent, cpt = spec["trials"], spec["concurrent"], spec["cpus_per_trial"]
    t = time.perf_counter()
    with open(log, "a") as out, output_to(out):
        # as start_ray starts a local cluster, with the CPUs declared
        ray.init(address="local", num_cpus=math.ceil(concurrent * cpt - 1e-9), include_dashboard=True,
                 dashboard_host="127.0.0.1", log_to_driver=False)
    ray_init_s = time.perf_counter() - t
    cluster = ClusterShape.from_ray()
    record = make_record(spec["name"], Path(spec["data"]), trials, spec["epochs"], cpt, cluster)
    exp_dir = work / "experiments" / record.name
    probes = install_probes()
    profiler = None
    if spec["profile"]:
        import cProfile

        profiler = cProfile.Profile(time.thread_time)  # CPU time, not wall: the loop's waits count nothing
    threads0, cpu0, t0 = thread_cpu(), cpu_self(), time.perf_counter()
    with open(log, "a") as out, output_to(out):
        if profiler:
            profiler.enable()
        try:
            outcome = run_search(exp_dir, record, restore=False, trainable_fn=Instant(spec["report_s"], CLASSES),
                                 cluster=cluster)
        finally:
            if profiler:
                profiler.disable()
    wall, driver_cpu = time.perf_counter() - t0, cpu_self() - cpu0
    threads1 = thread_cpu()
    threads = {k: v - threads0.get(k, 0.0) for k, v in threads1.items()}
    threads["(threads ended during the run)"] = driver_cpu - sum(threads.values())
    step = probes["step"]
    phases = {"setup": step.first_process_cpu - cpu0, "loop": step.last_process_cpu - step.first_process_cpu,
              "after": cpu0 + driver_cpu - step.last_process_cpu}
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if profiler:
        profiler.dump_stats(spec["prof"])
    with open(log, "a") as out, output_to(out):
        ray.shutdown()
    results = outcome.results
    reports = 0
    for d in trial_dirs(exp_dir):
        with contextlib.suppress(OSError):
            reports += sum(1 for line in (d / RESULT_FILE).read_text().splitlines() if line.strip())
    journal = exp_dir / JOURNAL_FILE
    c = time.process_time()
    _ended_in_study(str(journal), record.name, "no-such-trial")  # what each trial's start reads
    journal_read = time.process_time() - c

    def size(pattern: str) -> int:
        return max((p.stat().st_size for p in exp_dir.glob(pattern)), default=0)

    return {"trials": trials, "concurrent": concurrent, "finished": len(results), "errors": len(results.errors),
            "interrupted": outcome.interrupted, "reports": reports, "wall": wall, "driver_cpu": driver_cpu,
            "ray_init_s": ray_init_s, "peak_rss": peak_rss, "exp_dir": str(exp_dir),
            "state_bytes": size("experiment_state-*.json"), "searcher_bytes": size("searcher-state-*.pkl"),
            "journal_bytes": journal.stat().st_size if journal.exists() else 0, "journal_read_s": journal_read,
            "probes": {k: p.summary() for k, p in probes.items()}, "threads": threads, "phases": phases}


def child_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # until run_search takes it over
    row = run_row(spec)
    Path(spec["out"]).write_text(json.dumps(row))
    return 0


# ---------------------------------------------------------------- the parent: rows, memory, analysis


def mem_available_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return math.nan


def tree_memory_mb(root: int) -> float:
    """Memory of ``root`` and its descendants: PSS where readable (shared pages counted once), else RSS."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (d / "stat").read_text()
                children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(d.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        kb = None
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kb = int(line.split()[1])
                    break
        if kb is None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                kb = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        total += kb or 0
    return total / 1024


def run_child(spec: dict, timeout: float) -> dict:
    """``run_row(spec)`` in a process of its own, watched: its tree's peak memory, and a stop (SIGINT, which
    run_search turns into a saved stop; SIGKILL if that does not end it) when the machine runs short."""
    cmd = [sys.executable, "-m", "bench.driver_scale", "--child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)  # its own group: stopped as one
    try:
        peak, stopped = watch(proc, timeout)
    except BaseException:  # e.g. Ctrl-C here: the row's processes go too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    out = Path(spec["out"])
    row = json.loads(out.read_text()) if proc.returncode == 0 and out.exists() else {
        "trials": spec["trials"], "concurrent": spec["concurrent"], "failed": f"exit status {proc.returncode}"}
    row["tree_peak_mb"] = peak
    if stopped:
        row["stopped"] = stopped
    return row


def watch(proc: subprocess.Popen, timeout: float) -> tuple[float, str]:
    """Until ``proc`` ends: its tree's peak memory (MB), and why it was stopped, if it was."""
    start = time.perf_counter()
    peak, stopped, signalled = 0.0, "", 0.0
    while proc.poll() is None:
        time.sleep(1.0)
        with contextlib.suppress(Exception):
            peak = max(peak, tree_memory_mb(proc.pid))
        if not stopped and mem_available_mb() < MEMORY_FLOOR_MB:
            stopped = f"stopped: under {MEMORY_FLOOR_MB} MB of memory left on the machine"
        elif not stopped and time.perf_counter() - start > timeout:
            stopped = f"stopped: over the {timeout:.0f} s time limit"
        if stopped and not signalled:
            signalled = time.perf_counter()
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        elif signalled and time.perf_counter() - signalled > 60:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return peak, stopped


def run_analysis(exp_dir: str, out: Path, log: Path) -> tuple[float, float]:
    """``python -m analysis EXP``: wall and CPU seconds (the subprocess and its children)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    with open(log, "a") as f:
        done = subprocess.run([sys.executable, "-m", "analysis", exp_dir, "--out", str(out)], cwd=ROOT,
                              stdout=f, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return (wall, cpu) if done.returncode == 0 else (math.nan, math.nan)


def fitting_concurrency(wanted: int, actor_mb: float) -> tuple[int, str]:
    """The most trials at once (up to ``wanted``) whose actors fit in the memory available now."""
    available = mem_available_mb()
    budget = MEMORY_SHARE * available - RAY_BASE_MB
    fits = max(1, int(budget // actor_mb))
    if wanted <= fits:
        return wanted, ""
    return fits, (f"{wanted} at once means {wanted} actor processes of about {actor_mb:.0f} MB each "
                  f"({wanted * actor_mb / 1024:.1f} GB) beside Ray's {RAY_BASE_MB / 1024:.1f} GB, over "
                  f"{MEMORY_SHARE:.0%} of the {available / 1024:.1f} GB available now: ran {fits} at once instead")


# ---------------------------------------------------------------- output


def _f(x, fmt: str, width: int) -> str:
    return f"{'-':>{width}}" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:>{width}{fmt}}"


HEADER = (f"{'trials':>6} {'conc':>4} {'reps':>5} {'wall s':>7} {'wall/tr':>7} {'drv s':>7} {'drv ms/rep':>10} "
          f"{'steps':>6} {'save ms':>7} {'last':>6} {'upl ms':>6} {'files':>5} {'state KB':>8} {'srch KB':>7} "
          f"{'sugg ms':>7} {'last':>6} {'jrnl KB':>7} {'jrnl s':>6} {'RSS MB':>6} {'tree GB':>7} "
          f"{'analysis s':>10}")


def ms(probe: dict, key: str = "cpu") -> float:
    return 1000 * probe[key] / probe["calls"] if probe["calls"] else math.nan


def upload_ms(p: dict) -> float:
    """CPU ms of one upload of the staging folder: the syncer's thread and the storage file system's."""
    return 1000 * (p["upload"]["cpu"] + p["storage_fs"]["cpu"]) / p["upload"]["calls"] if p["upload"]["calls"] \
        else math.nan


def files_per_upload(p: dict) -> float:
    return p["uploaded_files"]["calls"] / p["upload"]["calls"] if p["upload"]["calls"] else math.nan


def format_row(r: dict) -> str:
    if "failed" in r:
        return f"{r['trials']:>6} {r['concurrent']:>4}  failed: {r['failed']} {r.get('stopped', '')}"
    p = r["probes"]
    per_rep = 1000 * r["driver_cpu"] / max(1, r["reports"])
    return (f"{r['trials']:>6} {r['concurrent']:>4} {r['reports']:>5} {r['wall']:>7.1f} "
            f"{r['wall'] / r['trials']:>7.2f} {r['driver_cpu']:>7.1f} {per_rep:>10.1f} {p['step']['calls']:>6} "
            f"{_f(ms(p['snapshot']), '.2f', 7)} {_f(1000 * p['snapshot']['cpu_tail_mean'], '.2f', 6)} "
            f"{_f(upload_ms(p), '.1f', 6)} {_f(files_per_upload(p), '.0f', 5)} {r['state_bytes'] / 1024:>8.0f} "
            f"{r['searcher_bytes'] / 1024:>7.0f} "
            f"{_f(ms(p['suggest']), '.1f', 7)} {_f(1000 * p['suggest']['cpu_tail_mean'], '.1f', 6)} "
            f"{r['journal_bytes'] / 1024:>7.0f} {r['journal_read_s']:>6.2f} {r['peak_rss'] / MIB:>6.0f} "
            f"{r['tree_peak_mb'] / 1024:>7.1f} {_f(r.get('analysis_s'), '.1f', 10)}"
            + (f"  ({r['finished']} finished, {r['errors']} errors, {r['interrupted'] or 'not interrupted'})"
               if r["errors"] or r["interrupted"] or r["finished"] != r["trials"] else "")
            + (f"  {r['stopped']}" if r.get("stopped") else ""))


def label(r: dict) -> str:
    return f"{r['trials']}x{r['concurrent']}"


PARTS = (("snapshot", "snapshot write (save_to_dir)"), ("upload", "snapshot upload (syncer thread)"),
         ("storage_fs", "snapshot upload (storage fs, Arrow threads)"),
         ("suggest", "TPE suggest"), ("searcher_result", "searcher told a result (journal)"),
         ("searcher_complete", "searcher told an end (journal)"), ("asha", "ASHA on_trial_result"),
         ("loggers", "result.json + progress.csv"), ("tensorboard", "TensorBoard logger"),
         ("progress", "progress table"))


def breakdown(rows: list[dict]) -> list[str]:
    """Driver CPU ms per report by part, by phase and by thread, one column per row."""
    rows = [r for r in rows if "probes" in r]
    if not rows:
        return []
    lines = [f"{'driver CPU, ms per report':<44}" + "".join(f"{label(r):>11}" for r in rows)]

    def line(text: str, values) -> None:
        lines.append(f"{text:<44}" + "".join(f"{1000 * v / max(1, r['reports']):>11.2f}"
                                             for v, r in zip(values, rows, strict=True)))

    for key, part in PARTS:
        line(part, [r["probes"][key]["cpu"] for r in rows])
    # the main loop less the parts measured inside it (the upload runs beside it, in a thread)
    background = ("upload", "storage_fs")
    line("rest of the controller steps (main thread)",
         [r["probes"]["step"]["cpu"] - sum(r["probes"][k]["cpu"] for k, _ in PARTS if k not in background)
          for r in rows])
    line("outside the steps, and other threads",
         [r["driver_cpu"] - r["probes"]["step"]["cpu"] - sum(r["probes"][k]["cpu"] for k in background)
          for r in rows])
    line("total (getrusage)", [r["driver_cpu"] for r in rows])
    lines.append("by phase (every thread):")
    line("  setup: run_search to the first step", [r["phases"]["setup"] for r in rows])
    line("  the loop: first step to last step", [r["phases"]["loop"] for r in rows])
    line("  after the loop (Tune's end, settle)", [r["phases"]["after"] for r in rows])
    lines.append("by thread (during the run):")
    names: dict[str, float] = {}
    for r in rows:
        for name, cpu in r["threads"].items():
            names[name] = max(names.get(name, 0.0), cpu / max(1, r["reports"]))
    for name in sorted(names, key=names.get, reverse=True)[:8]:
        line(f"  {name}", [r["threads"].get(name, 0.0) for r in rows])
    lines.append(f"{'analysis CPU s (python -m analysis)':<44}" + "".join(_f(r.get("analysis_cpu"), ".1f", 11)
                                                                           for r in rows))
    return lines


def _short(key: tuple) -> str:
    path, line, func = key
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{line}({func})" if line else func


def profile_growth(rows: list[dict], top: int) -> list[str]:
    """Cumulative time per report of the largest size's top functions, at every size, and its growth."""
    import pstats

    rows = sorted((r for r in rows if r.get("prof") and Path(r["prof"]).exists() and r.get("reports")),
                  key=lambda r: r["trials"])
    if not rows:
        return []
    stats = [pstats.Stats(r["prof"]).stats for r in rows]  # key -> (cc, nc, tt, ct, callers)
    big, small = rows[-1], rows[0]
    keys = sorted(stats[-1], key=lambda k: stats[-1][k][3], reverse=True)
    keys = [k for k in keys if not k[2].startswith("<built-in method builtins.exec")][:top]
    lines = [f"profile (cProfile, CPU time of the driver's main thread; cumulative ms per report; growth = log(total "
             f"{big['trials']} / total {small['trials']}) / log({big['trials']} / {small['trials']}))",
             "".join(f"{label(r):>10}" for r in rows) + f"{'growth':>8}  {'calls':>8}  function"]
    for k in keys:
        cts = [s[k][3] if k in s else 0.0 for s in stats]
        cells = "".join(f"{1000 * ct / r['reports']:>10.2f}" for ct, r in zip(cts, rows, strict=True))
        growth = (math.log(cts[-1] / cts[0]) / math.log(big["trials"] / small["trials"])
                  if len(rows) > 1 and cts[0] > 0 and cts[-1] > 0 else math.nan)
        lines.append(f"{cells}{_f(growth, '.2f', 8)}  {stats[-1][k][1]:>8}  {_short(k)}")
    return lines


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", default="50,200,1000", help="trial counts, comma separated (default 50,200,1000)")
    p.add_argument("--concurrent", default="8,64",
                   help="trials at once, comma separated (default 8,64): the cluster is declared with "
                        "concurrent * --cpus-per-trial CPUs; lowered, with the reason printed, where the actors "
                        "would not fit in memory")
    p.add_argument("--cpus-per-trial", type=float, default=0.25, help="CPUs each trial asks for (default 0.25)")
    p.add_argument("--epochs", type=int, default=8, help="epochs (reports) of a full trial (default 8, the CPU "
                                                         "default; ASHA stops most trials at epoch 2)")
    p.add_argument("--report-ms", type=float, default=10.0, help="CPU ms of work before each report (default 10)")
    p.add_argument("--profile", action="store_true", help="run each row under cProfile and print where the "
                                                           "driver's time goes, size against size")
    p.add_argument("--top", type=int, default=40, help="functions in the profile table (default 40)")
    p.add_argument("--row-timeout", type=float, default=1800, help="stop a row after this many seconds (default "
                                                                  "1800)")
    p.add_argument("--no-analysis", action="store_true", help="skip python -m analysis")
    p.add_argument("--quick", action="store_true", help="small sizes (4 and 12 trials, 4 at once): a smoke run")
    p.add_argument("--work", help="folder for the data, experiments, logs and profiles (default: a temporary one, "
                                  "removed at the end)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.trials, args.concurrent = "4,12", "4"
    args.trial_counts = sorted({int(x) for x in args.trials.split(",") if x.strip()})
    args.concurrencies = sorted({int(x) for x in args.concurrent.split(",") if x.strip()})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.child)
    from trainable.scan import scan_split
    from trainable.synthetic import generate

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="driver-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"machine:   {machine()}")
    print(f"load:      {load_avg()} (1/5/15 min) at start; memory available {mem_available_mb() / 1024:.1f} GB; "
          f"work folder {work}")
    print(f"search:    space augmentation, {args.epochs} epochs a full trial (ASHA grace 2, reduction 3), "
          f"{args.cpus_per_trial:g} CPU a trial, a trainable of {args.report_ms:g} ms CPU per report with a 1 kB "
          f"checkpoint; each row a fresh process and a fresh Ray"
          + ("; profiled (cProfile inflates the CPU times)" if args.profile else ""))
    print("note:      driver CPU is getrusage CPU time of the driver process (all its threads): other work on the "
          "machine inflates wall times far more than CPU times,\n           but not only wall: the loop steps at "
          "least every 0.1 s and snapshots at every step, so a slower run also takes more steps")
    data = generate(work / "data", n_train=8, n_val=4, n_test=1, size=64, seed=0)
    for split in ("train", "val"):
        scan_split(data, split)
    print()
    print(HEADER, flush=True)
    rows: list[dict] = []
    actor_mb = ACTOR_MB_GUESS
    notes: list[str] = []
    for wanted in args.concurrencies:
        for trials in args.trial_counts:
            concurrent, why = fitting_concurrency(wanted, actor_mb)
            concurrent = min(concurrent, trials)
            if why:
                note = f"note: {trials} trials: {why}"
                notes.append(note)
                print(note, flush=True)
            name = f"scale-{trials}x{concurrent}"
            spec = {"name": name, "trials": trials, "concurrent": concurrent, "cpus_per_trial": args.cpus_per_trial,
                    "epochs": args.epochs, "report_s": args.report_ms / 1000, "work": str(work),
                    "data": str(data), "log": str(work / f"{name}.log"), "out": str(work / f"{name}.json"),
                    "profile": args.profile, "prof": str(work / f"{name}.prof")}
            row = run_child(spec, args.row_timeout)
            row["wanted"], row["prof"] = wanted, spec["prof"] if args.profile else ""
            if "exp_dir" in row and not args.no_analysis:
                row["analysis_s"], row["analysis_cpu"] = run_analysis(row["exp_dir"], work / f"{name}-analysis",
                                                                      work / f"{name}-analysis.log")
            if "probes" in row and concurrent > 1:  # the memory of one actor, from what this row used
                actor_mb = max(actor_mb, (row["tree_peak_mb"] - RAY_BASE_MB) / concurrent)
            rows.append(row)
            print(format_row(row), flush=True)

    print()
    print("wall/tr = run_search wall s per trial; drv = driver process CPU (getrusage); save = CPU ms per "
          "snapshot write (mean, last tenth); upl = CPU ms per upload of the staging folder, files = files it "
          "copies;\nstate/srch = "
          "experiment state / searcher state at the end; sugg = CPU ms per TPE suggestion (mean, last tenth); "
          "jrnl s = one read of the whole journal (each trial's start);\nRSS = driver peak RSS; tree = peak memory "
          "of the driver and every Ray process it started; analysis = python -m analysis wall s")
    print(HEADER)
    for row in rows:
        print(format_row(row))
    print()
    for line in breakdown(rows):
        print(line)
    if args.profile:
        for concurrent in sorted({r["concurrent"] for r in rows}):
            lines = profile_growth([r for r in rows if r["concurrent"] == concurrent], args.top)
            if lines:
                print()
                print("\n".join(lines))
    for note in notes:
        print(note)
    print(f"total {time.perf_counter() - started:.0f} s; load {load_avg()} at end")
    print(verdict(rows))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def verdict(rows: list[dict]) -> str:
    """The last line: driver CPU per report at the largest size over the smallest, at the lowest concurrency
    that ran both (1000 / 50 when both ran)."""
    done = [r for r in rows if "probes" in r and r["reports"] and not r.get("stopped") and not r["interrupted"]]
    for wanted in sorted({r["wanted"] for r in done}):
        same = sorted((r for r in done if r["wanted"] == wanted), key=lambda r: r["trials"])
        if len(same) >= 2:
            small, big = same[0], same[-1]
            x = (big["driver_cpu"] / big["reports"]) / (small["driver_cpu"] / small["reports"])
            exponent = math.log(big["driver_cpu"] / small["driver_cpu"]) / math.log(big["trials"] / small["trials"])
            extra = ""
            if big["trials"] < 1000:
                at_1000 = big["driver_cpu"] * (1000 / big["trials"]) ** exponent
                extra = (f"\n(1000 trials not run: total driver CPU grows as n^{exponent:.2f} from "
                         f"{small['trials']} to {big['trials']} trials; at that rate 1000 trials would take "
                         f"{at_1000:.0f} s of driver CPU, "
                         f"{at_1000 / small['driver_cpu'] / (1000 / small['trials']):.1f}x the {small['trials']}-trial "
                         f"figure per trial)")
            loop = (big["phases"]["loop"] / big["reports"]) / (small["phases"]["loop"] / small["reports"])
            return (f"total driver CPU ~ n^{exponent:.2f} ({small['trials']} -> {big['trials']} trials, "
                    f"{big['concurrent']} at once){extra}\n"
                    f"the controller loop alone (no one-off setup): CPU per trial-report, {big['trials']} / "
                    f"{small['trials']} trials = {loop:.2f}\n"
                    f"driver CPU per trial-report, {big['trials']} / {small['trials']} trials = {x:.2f}")
    return "driver CPU per trial-report: fewer than two sizes ran at one concurrency; no ratio"


if __name__ == "__main__":
    sys.exit(main())
