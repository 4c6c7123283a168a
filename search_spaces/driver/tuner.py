"""The Tuner of an experiment: its scheduler and searcher over its space (ASHA + Optuna TPE unless
the record names others; FIFO over the planned configurations for an ablation), retries,
checkpoint retention, the loggers the analysis reads, and the progress a user watches (``progress.py``:
a table of trial, status, the searched parameters, epoch, metric; the trials ended, the time left and
the best trial so far).
"""

from __future__ import annotations

import os
from pathlib import Path

from search_spaces.algorithms import SCHEDULERS
from search_spaces.base import nest
from search_spaces.driver.progress import progress_reporter
from search_spaces.driver.record import ExperimentRecord
from search_spaces.driver.results import ProgressRecord, ResultRecord
from search_spaces.driver.searcher import TrialsOfRecord, make_searcher, skip_finished_trials
from search_spaces.driver.storage import storage_filesystem
from search_spaces.driver.trackers import tracker_callbacks, without_trackers
from trainable.layout import JOURNAL_FILE, remove_partial_files, trial_dir_name
from trainable.objectstore import uri_of

__all__ = ["RAY_SETTINGS", "REUSE_ON_OWN_INSTANCE", "build_tuner", "progress_reporter"]

# Ray-side settings of every search; bench/tune_overhead.py measures each against its alternative.
#
# reuse_actors: a trial takes over the actor (the worker process) of a finished trial instead of
#   starting a process that imports torch, timm and the trainable again: 8 s per trial on two cores
#   (bench/tune_overhead.py). Safe here: every trial of a search asks for the same resources;
#   train_segmentation keeps nothing between trials (it seeds and builds data, model and optimiser per
#   trial, and its DataLoader workers end with the trial); Ray resets the session, working directory and
#   checkpoint, waits for the previous trial's thread to end (were it still running after 2 s, the new
#   trial would fail once and be retried on a fresh actor), and never reuses the actor of a failed
#   trial. Files a trial leaves go through write_trial_file, because get_trial_dir() of a reused actor
#   is a folder Ray does not sync. Off here, and on where launch.py starts its own Ray instance
#   (REUSE_ON_OWN_INSTANCE): on a cluster, reuse let one actor run every trial of a short search one
#   after another while another node stayed idle (tests/test_cluster.py), and a search that does not
#   spread over the cluster costs far more than the seconds reuse saves; a private instance is one
#   machine and cannot grow.
# verbose: Tune's progress output (1: trial starts and ends, and a status table now and then).
RAY_SETTINGS: dict = {
    "reuse_actors": False,
    "verbose": 1,
}
REUSE_ON_OWN_INSTANCE = {"reuse_actors": True}


def build_tuner(exp_dir: Path, record: ExperimentRecord, restore: bool, trainable_fn=None,
                ray_settings: dict | None = None):
    """The experiment's Tuner (new, or restored from ``exp_dir``); ``trainable_fn`` replaces the
    face-parsing trainable (benchmarks and fault-injection tests wrap it); ``ray_settings``
    overrides entries of ``RAY_SETTINGS`` (the benchmark compares them)."""
    unknown = set(ray_settings or {}) - set(RAY_SETTINGS)
    if unknown:
        raise ValueError(f"unknown Ray settings {sorted(unknown)}; known: {sorted(RAY_SETTINGS)}")
    rs = {**RAY_SETTINGS, **(ray_settings or {})}
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher, SearchGenerator

    from trainable.ray_trainable import train_segmentation

    space, base = record.search_space, record.config
    # the files Ray saves the search algorithm's state in, published with the experiment state (storage.py)
    snapshot = ((BasicVariantGenerator.CKPT_FILE_TMPL,) if not record.has_study
                else (SearchGenerator.CKPT_FILE_TMPL, Searcher.CKPT_FILE_TMPL))
    journal = exp_dir / JOURNAL_FILE
    fn = trainable_fn or train_segmentation
    # a trial may end without a report (refused by the rules, or already ended in the study when a
    # search resumes); Tune's strict check for the metric would fail the whole run on it
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    if record.has_study:
        fn = skip_finished_trials(fn, journal, record.name)
    trainable = tune.with_resources(fn, {"cpu": record.cpus_per_trial, "gpu": record.gpus_per_trial})
    uri = uri_of(exp_dir)  # an experiment in an object store: Ray writes there, the driver's files to the mirror
    if restore:
        if not uri:
            remove_partial_files(exp_dir)  # left by a driver or worker killed while writing
        tuner = tune.Tuner.restore(uri or str(exp_dir), trainable, resume_unfinished=True, resume_errored=True,
                                   storage_filesystem=storage_filesystem(uri or exp_dir, snapshot))
        # the generator reads its total from the record where the experiment is now, wherever it ran
        # (Tune's private chain to it: tests/test_ray_optuna_internals.py)
        search_alg = tuner._local_tuner._tune_config.search_alg
        if isinstance(search_alg, TrialsOfRecord):
            search_alg.exp_dir = str(exp_dir)
        # where it runs now decides, not where it started (a search begun on a laptop resumed on a cluster)
        tuner._local_tuner._tune_config.reuse_actors = rs["reuse_actors"]
        if record.trackers:  # the pickled ones log where the experiment was when it started: built here afresh
            run_config = tuner._local_tuner.get_run_config()
            run_config.callbacks = [*without_trackers(run_config.callbacks), *tracker_callbacks(exp_dir, record)]
        return tuner

    if record.ablation:
        points = space.ablation_points(base, record.seeds)
        search_alg = BasicVariantGenerator(points_to_evaluate=points, max_concurrent=record.max_concurrent)
        scheduler, num_samples = FIFOScheduler(), len(points)
        param_space = base.to_dict()
    elif record.population:
        # Ray allows no search algorithm beside PBT: its generator draws the first population, seeded,
        # the baseline one of them
        baseline = nest({k.replace("/", "."): v for k, v in space.baseline_point(base).items()})
        # (no concurrency limit: a synchronous population trains together, and a trial paused at a boundary
        # would keep the rest of it from starting; --max-concurrent staggers its starts, see search._pending)
        search_alg = BasicVariantGenerator(points_to_evaluate=[baseline], random_state=record.seed)
        scheduler, num_samples = SCHEDULERS[record.scheduler].build(record), record.num_samples
        param_space = space.param_space(base)
    else:
        searcher = make_searcher(journal, record.name, record.seed, [space.baseline_point(base)],
                                 max_t=record.max_t, n_startup_trials=max(3, record.num_samples // 3),
                                 metric=record.metric, mode=record.mode, sampler=record.searcher)
        # the generator Tune would build, with its total kept in the record (Tune applies a concurrency
        # limit only to a bare searcher, so it is applied here)
        search_alg = TrialsOfRecord(ConcurrencyLimiter(searcher, record.max_concurrent) if record.max_concurrent
                                    else searcher, exp_dir)
        scheduler = SCHEDULERS[record.scheduler].build(record)
        num_samples = record.num_samples
        param_space = space.param_space(base)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=record.metric, mode=record.mode, search_alg=search_alg,
                                    scheduler=scheduler, num_samples=num_samples,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                    reuse_actors=rs["reuse_actors"]),
        run_config=tune.RunConfig(
            name=exp_dir.name, storage_path=uri.rsplit("/", 1)[0] if uri else str(exp_dir.parent),
            # files replaced whole, snapshots published whole: a kill truncates or tears none
            storage_filesystem=storage_filesystem(uri or exp_dir, snapshot),
            # a population keeps every checkpoint: a trial exploits another's checkpoint of the boundary,
            # which the best-two rule could delete while the exploiting trial waits for a CPU
            checkpoint_config=(tune.CheckpointConfig() if record.population else
                               tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute=record.metric,
                                                     checkpoint_score_order=record.mode)),
            failure_config=tune.FailureConfig(max_failures=2),
            # the loggers the project reads (progress.csv: results' metrics_dataframe; result.json: the
            # analysis), written straight to storage and rewound at a restart (see results.py); Tune
            # adds TensorBoard's
            callbacks=[ProgressRecord(), ResultRecord(), *tracker_callbacks(exp_dir, record)],
            progress_reporter=progress_reporter(record),
            verbose=rs["verbose"],
        ),
    )


def _trial_name(trial) -> str:
    return trial_dir_name(trial.trial_id)
