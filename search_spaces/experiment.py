"""Running a search space as a Ray Tune experiment: the Tuner (ASHA + Optuna), Ray start-up,
storage checks, and settling the books after a run. ``launch.py`` is the command line around it.
"""

from __future__ import annotations

import os
from pathlib import Path

from search_spaces import get_space
from search_spaces.searcher import JOURNAL_NAME, make_searcher, skip_finished_trials
from search_spaces.storage import remove_partial_files, storage_filesystem
from trainable.errors import UserError

__all__ = ["RAY_SETTINGS", "build_tuner", "check_storage", "settle", "start_ray"]

# Ray-side settings of every search; bench/tune_overhead.py measures each against its alternative.
#
# reuse_actors: a trial takes over the actor (the worker process) of a finished trial instead of
#   starting a process that imports torch, timm and the trainable again: seconds per trial. Safe here:
#   every trial of a search asks for the same resources; train_segmentation keeps nothing between
#   trials (it seeds and builds data, model and optimiser per trial, and its DataLoader workers end
#   with the trial); Ray resets the session, working directory and checkpoint, waits for the previous
#   trial's thread to end (were it still running after 2 s, the new trial would fail once and be
#   retried on a fresh actor), and never reuses the actor of a failed trial. Files a trial leaves go
#   through write_trial_file, because get_trial_dir() of a reused actor is a folder Ray does not sync.
#   Off by default all the same: on a two-node cluster, reuse let one actor run every trial of a
#   short search one after another while the other node stayed idle (tests/test_cluster.py), and a
#   search that does not spread over the cluster costs far more than the seconds reuse saves.
#   Turn it on for many short trials on one machine.
# verbose: Tune's progress output (1: trial starts and ends, and a status table now and then).
RAY_SETTINGS: dict = {
    "reuse_actors": False,
    "verbose": 1,
}


def check_storage(path: Path, address: str | None) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{path}: storage path is not writable ({e.strerror}); "
                        f"pass a writable --storage-path") from None
    if address:
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        if len(nodes) > 1 and "://" not in str(path):
            print(f"note: {len(nodes)} nodes in the cluster: {path} must be the same shared folder (NFS) on every "
                  f"node, or pass --storage-path s3://... / gs://...; a node-local path loses trials' results")


def start_ray(address: str | None, dashboard_host: str = "127.0.0.1") -> None:
    """Join the cluster at ``address``, or start a private local one whose dashboard listens on
    ``dashboard_host`` only (localhost unless the user asks otherwise)."""
    import ray

    if address:
        ctx = ray.init(address=address, log_to_driver=False)
    else:
        # "local": a private instance even when `ray start` left one running on this machine (joining
        # it would ignore dashboard_host); Ray's token authentication stays on unless the user opts out
        ctx = ray.init(address="local", include_dashboard=True, dashboard_host=dashboard_host, log_to_driver=False)
        if dashboard_host not in ("127.0.0.1", "localhost", "::1"):
            print(f"note: the dashboard listens on {dashboard_host}: anyone who can reach this machine can open it "
                  f"(it still asks for the token)")
    if ctx.dashboard_url:
        print(f"Ray dashboard:  http://{ctx.dashboard_url}")
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
            print("                if it asks for a token: `ray get-auth-token` prints it")


def resources(s: dict) -> dict:
    return {"cpu": s["cpus_per_trial"], "gpu": s["gpus_per_trial"]}


def build_tuner(exp_dir: Path, meta: dict, restore: bool, trainable_fn=None, ray_settings: dict | None = None):
    """The experiment's Tuner (new, or restored from ``exp_dir``); ``trainable_fn`` replaces the
    face-parsing trainable (benchmarks and fault-injection tests wrap it); ``ray_settings``
    overrides entries of ``RAY_SETTINGS`` (the benchmark compares them)."""
    unknown = set(ray_settings or {}) - set(RAY_SETTINGS)
    if unknown:
        raise ValueError(f"unknown Ray settings {sorted(unknown)}; known: {sorted(RAY_SETTINGS)}")
    rs = {**RAY_SETTINGS, **(ray_settings or {})}
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    from trainable.config import Config
    from trainable.ray_trainable import train_segmentation

    space = get_space(meta["space"])
    s = meta["settings"]
    base = Config.from_dict(meta["base_config"])
    fn = trainable_fn or train_segmentation
    # a trial may end without a report (refused by the rules, or already ended in the study when a
    # search resumes); Tune's strict check for the metric would fail the whole run on it
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    if not meta["ablation"]:
        fn = skip_finished_trials(fn, exp_dir / JOURNAL_NAME, meta["name"])
    trainable = tune.with_resources(fn, resources(s))
    if restore and not any(exp_dir.glob("experiment_state-*.json")):
        restore = False  # the driver was killed before Tune first saved its state: start over in this folder
    if restore:
        remove_partial_files(exp_dir)  # left by a driver or worker killed while writing
        return tune.Tuner.restore(str(exp_dir), trainable, resume_unfinished=True, resume_errored=True,
                                  storage_filesystem=storage_filesystem(exp_dir))

    if meta["ablation"]:
        points = space.ablation_points(base, meta["seeds"])
        search_alg = BasicVariantGenerator(points_to_evaluate=points)
        scheduler, num_samples = FIFOScheduler(), len(points)
        param_space = base.to_dict()
    else:
        search_alg = make_searcher(exp_dir / JOURNAL_NAME, meta["name"], meta["seed"], [space.baseline_point(base)],
                                   max_t=s["max_epochs"], n_startup_trials=max(3, s["num_samples"] // 3))
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=s["max_epochs"],
                                  grace_period=s["grace_period"], reduction_factor=s["reduction_factor"])
        num_samples = s["num_samples"]
        param_space = space.param_space(base)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="val_miou", mode="max", search_alg=search_alg, scheduler=scheduler,
                                    num_samples=num_samples, max_concurrent_trials=meta["max_concurrent"] or None,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                    reuse_actors=rs["reuse_actors"]),
        run_config=tune.RunConfig(
            name=exp_dir.name, storage_path=str(exp_dir.parent),
            storage_filesystem=storage_filesystem(exp_dir),  # files replaced whole: a kill truncates none
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_miou",
                                                    checkpoint_score_order="max"),
            failure_config=tune.FailureConfig(max_failures=2),
            # the loggers the project reads (progress.csv: results' metrics_dataframe; result.json: the
            # analysis), named so that TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1 drops only TensorBoard's
            callbacks=[CSVLoggerCallback(), JsonLoggerCallback()],
            verbose=rs["verbose"],
        ),
    )


def _trial_name(trial) -> str:
    return f"trial_{trial.trial_id}"


def settle(results, exp_dir: Path, meta: dict) -> None:
    """Close the books after a run: a trial the driver started but never recorded (it was killed in
    between) is moved to ``orphaned/`` and failed in the Optuna study, so every trial ends once."""
    known = {Path(r.path).name for r in results if r.path}
    for d in sorted(exp_dir.glob("trial_*")):
        if d.name not in known:
            (exp_dir / "orphaned").mkdir(exist_ok=True)
            d.rename(exp_dir / "orphaned" / d.name)
            print(f"note: {d.name} was started before the driver stopped but never recorded; moved to orphaned/")
    if not meta["ablation"]:
        import optuna

        from search_spaces.searcher import journal_storage

        study = optuna.load_study(study_name=meta["name"], storage=journal_storage(exp_dir / JOURNAL_NAME))
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
