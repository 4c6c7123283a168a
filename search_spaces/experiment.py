"""Running a search space as a Ray Tune experiment: the Tuner (ASHA + Optuna), Ray start-up,
storage checks, and settling the books after a run. ``launch.py`` is the command line around it.
"""

from __future__ import annotations

import os
from pathlib import Path

from search_spaces import get_space
from search_spaces.searcher import JOURNAL_NAME, make_searcher, skip_finished_trials
from trainable.errors import UserError

__all__ = ["build_tuner", "check_storage", "settle", "start_ray"]


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


def start_ray(address: str | None) -> None:
    import ray

    if address:
        ctx = ray.init(address=address, log_to_driver=False)
    else:
        # the dashboard binds to localhost; Ray's token authentication stays on unless the user opts out
        ctx = ray.init(include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False)
    if ctx.dashboard_url:
        print(f"Ray dashboard:  http://{ctx.dashboard_url}")
        if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
            print("                if it asks for a token: `ray get-auth-token` prints it")


def resources(s: dict) -> dict:
    return {"cpu": s["cpus_per_trial"], "gpu": s["gpus_per_trial"]}


def build_tuner(exp_dir: Path, meta: dict, restore: bool, trainable_fn=None):
    """The experiment's Tuner (new, or restored from ``exp_dir``); ``trainable_fn`` replaces the
    face-parsing trainable (benchmarks and fault-injection tests wrap it)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import BasicVariantGenerator

    from trainable.config import Config
    from trainable.ray_trainable import train_segmentation

    space = get_space(meta["space"])
    s = meta["settings"]
    base = Config.from_dict(meta["base_config"])
    fn = trainable_fn or train_segmentation
    if not meta["ablation"]:
        fn = skip_finished_trials(fn, exp_dir / JOURNAL_NAME, meta["name"])
    trainable = tune.with_resources(fn, resources(s))
    if restore:
        return tune.Tuner.restore(str(exp_dir), trainable, resume_unfinished=True, resume_errored=True)

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
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=exp_dir.name, storage_path=str(exp_dir.parent),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_miou",
                                                    checkpoint_score_order="max"),
            failure_config=tune.FailureConfig(max_failures=2),
            verbose=1,
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
