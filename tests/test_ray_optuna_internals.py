"""The private parts of Ray Tune and Optuna the search driver relies on, one test each.

``pyproject.toml`` bounds Ray and Optuna above at the versions these pass on. Before raising a
bound, run this file on the new version: a failure names the use to rework (each use in the code
points at its test here).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from types import SimpleNamespace

import optuna
from ray.train._internal.storage import StorageContext
from ray.tune import CLIReporter
from ray.tune.execution.tune_controller import TuneController
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler
from ray.tune.schedulers.pbt import _PBTTrialState

from search_spaces import get_space
from search_spaces.driver import build_tuner, new_record
from search_spaces.driver.searcher import TrialsOfRecord, make_searcher
from search_spaces.driver.storage import _RAY_TEMPORARY
from search_spaces.population import pbt


def test_optuna_search_keeps_its_study_its_trials_and_the_ended_ones(tmp_path):
    # searcher.PrunedOptunaSearch tells the study itself: _ot_study, _ot_trials, _completed_trials
    space = get_space("augmentation")
    base = space.base_config()
    searcher = make_searcher(tmp_path / "s.journal", "s", 0, [], max_t=3, n_startup_trials=3)
    searcher.set_search_properties("val_miou", "max", space.param_space(base))
    searcher.suggest("t1")
    assert isinstance(searcher._ot_study, optuna.Study)
    assert isinstance(searcher._ot_trials["t1"], optuna.Trial)
    assert isinstance(searcher._completed_trials, set)
    # PrunedOptunaSearch.moved_to opens the study again where the experiment is: _storage, _study_name, _trial_id
    assert searcher._study_name == "s" and isinstance(searcher._storage, optuna.storages.BaseStorage)
    assert isinstance(searcher._ot_trials["t1"]._trial_id, int)
    searcher.on_trial_complete("t1", {"val_miou": 1.0, "training_iteration": 3})
    assert "t1" in searcher._completed_trials


def test_the_search_generator_keeps_its_experiment_and_total_and_the_tuner_its_search_algorithm(tmp_path):
    # searcher.TrialsOfRecord sets the total and moves the experiment's storage; tuner.build_tuner reaches it
    record = new_record("augmentation", name="exp", max_epochs=2)
    (tmp_path / "exp").mkdir()
    record.write(tmp_path / "exp")
    tuner = build_tuner(tmp_path / "exp", record, restore=False)
    search_alg = tuner._local_tuner._tune_config.search_alg
    assert isinstance(search_alg, TrialsOfRecord)
    state = search_alg.get_state()
    state["total_samples"], state["experiment"] = 1, SimpleNamespace(spec={})
    search_alg.set_state(state)
    assert search_alg._total_samples == record.num_samples and search_alg._experiment.spec == {}
    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp")
    assert Path(storage.experiment_fs_path) == tmp_path / "exp"
    assert storage.storage_fs_path == str(tmp_path) and storage.experiment_dir_name == "exp"


def test_asha_keeps_each_trials_bracket_its_time_attribute_max_t_and_metric():
    # asha.RestoredASHA replays a restored trial's results (trial.storage, trial.last_result) into its bracket
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=4, grace_period=1, reduction_factor=2)
    scheduler.set_search_properties("val_miou", "max")
    trial = Trial("__fake", config={}, stub=True)
    scheduler.on_trial_add(None, trial)
    assert trial.trial_id in scheduler._trial_info
    assert (scheduler._time_attr, scheduler._max_t, scheduler._metric) == ("training_iteration", 4, "val_miou")
    assert isinstance(trial.last_result, dict)
    storage = StorageContext(storage_path="/tmp", experiment_dir_name="e", trial_dir_name="t")
    assert storage.storage_filesystem is not None and storage.trial_fs_path == "/tmp/e/t"


def test_synchronous_pbt_keeps_per_trial_state_and_its_next_boundary():
    # population._Resumable restores a trial's PBT state from its last result and holds trials at the boundary
    scheduler = pbt(get_space("augmentation"), perturbation_interval=2, seed=0, epochs=4)
    scheduler.set_search_properties("val_miou", "max")
    trial = Trial("__fake", config={}, stub=True)
    scheduler.on_trial_add(SimpleNamespace(search_alg=None), trial)
    assert isinstance(scheduler._trial_state[trial], _PBTTrialState)
    assert (scheduler._time_attr, scheduler._metric, scheduler._metric_op) == ("training_iteration", "val_miou", 1.0)
    assert scheduler._perturbation_interval == 2 and isinstance(scheduler._next_perturbation_sync, (int, float))
    state = scheduler._trial_state[trial]
    for name in ("last_score", "last_result", "last_train_time", "last_perturbation_time", "last_checkpoint"):
        assert hasattr(state, name), name


def test_the_tune_controller_sets_a_trial_status_and_names_its_state_file():
    # population._Resumable pauses a pending trial; storage publishes the experiment state by its file name
    assert list(inspect.signature(TuneController._set_trial_status).parameters) == ["self", "trial", "status"]
    assert TuneController.CKPT_FILE_TMPL.format("x").startswith("experiment_state")


def test_the_cli_reporter_renders_its_table_apart_from_printing_it():
    # progress._Progress prints Tune's table without its staging-folder line
    assert list(inspect.signature(CLIReporter._progress_str).parameters)[:4] == ["self", "trials", "done", "sys_info"]
    assert "self._progress_str(" in inspect.getsource(CLIReporter.report)


def test_the_cli_reporter_asks_a_method_for_its_best_trial():
    # progress._Progress overrides _current_best_trial so that Tune renders no best trial line of its own
    source = inspect.getsource(CLIReporter._progress_str)
    assert "self._current_best_trial(trials)" in source and "if current_best_trial:" in source
    assert list(inspect.signature(CLIReporter._current_best_trial).parameters) == ["self", "trials"]


def test_a_search_algorithm_state_is_staged_under_the_name_storage_recognises(tmp_path, monkeypatch):
    # storage._RAY_TEMPORARY: the staging file of Ray's _atomic_save, never uploaded on its own
    from ray.tune.utils import util

    staged = []
    real_replace = util.os.replace
    monkeypatch.setattr(util.os, "replace", lambda a, b: (staged.append(a), real_replace(a, b)))
    util._atomic_save({"a": 1}, str(tmp_path), "searcher-state.pkl", "tmp-searcher-state.pkl")
    assert len(staged) == 1 and _RAY_TEMPORARY.match(Path(staged[0]).name), staged
    assert (tmp_path / "searcher-state.pkl").is_file()


def test_hyperband_keeps_its_time_attribute_and_max_t():
    # search_spaces.hyperband.LastRungEnds lets a trial at max_t end instead of pausing it
    from search_spaces.hyperband import LastRungEnds

    scheduler = LastRungEnds(time_attr="training_iteration", max_t=4, reduction_factor=2)
    assert (scheduler._time_attr, scheduler._max_t_attr) == ("training_iteration", 4)


def test_the_checkpoint_manager_saves_through_a_function_and_keeps_its_storage():
    # storage.snapshots_after_uploads waits for the previous upload inside sync_up_experiment_state's save
    from ray.tune.execution.experiment_state import _ExperimentCheckpointManager

    assert list(inspect.signature(_ExperimentCheckpointManager.sync_up_experiment_state).parameters) == [
        "self", "save_fn", "force", "wait"]
    from ray.train._internal.storage import _FilesystemSyncer

    storage = SimpleNamespace(syncer=None)
    assert _ExperimentCheckpointManager(storage=storage, checkpoint_period=0)._storage is storage
    assert "timeout" in inspect.signature(_FilesystemSyncer.wait).parameters  # wait() alone waits for the upload


def test_a_restored_tuner_runs_the_callbacks_pickled_with_its_run_config(tmp_path):
    # trackers: resume logs to the search's trackers through the callbacks Tune pickled into tuner.pkl
    # (Tuner.restore takes no callbacks); read back through the private _local_tuner
    from ray import tune
    from ray.tune.logger import LoggerCallback

    def trainable(config):
        pass

    assert "callbacks" not in inspect.signature(tune.Tuner.restore).parameters
    marker = LoggerCallback()
    marker.where = "the search's"
    tune.Tuner(trainable, run_config=tune.RunConfig(name="e", storage_path=str(tmp_path), callbacks=[marker]))
    restored = tune.Tuner.restore(str(tmp_path / "e"), trainable)
    [callback] = restored._local_tuner.get_run_config().callbacks
    assert type(callback) is LoggerCallback and callback.where == "the search's"
    # tuner.build_tuner replaces the trackers' among them: fit passes on the callbacks of that same run config
    assert restored._local_tuner.get_run_config() is restored._local_tuner._run_config
    from ray.tune.impl.tuner_internal import TunerInternal

    assert "callbacks=self._run_config.callbacks" in inspect.getsource(TunerInternal)


def test_the_tracker_callbacks_keep_their_open_runs(tmp_path):
    # trackers.WandbCallback ends the runs an interrupt left open: _trial_queues, _signal_logging_actor_stop
    # (Ray's own on_experiment_end only waits, up to the upload timeout, for the runs to end)
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.air.integrations.wandb import WandbLoggerCallback, _QueueItem

    wandb = WandbLoggerCallback(project="p", api_key="k", mode="offline")
    queue = []
    wandb._trial_queues = {"trial": SimpleNamespace(put=queue.append)}
    wandb._signal_logging_actor_stop(trial="trial")
    assert queue == [(_QueueItem.END, None)]
    assert "_cleanup_logging_actors(timeout=self._upload_timeout" in inspect.getsource(
        WandbLoggerCallback.on_experiment_end)
    # trackers.MLflowCallback ends those runs KILLED: _trial_runs (trial -> run id), mlflow_util.end_run
    mlflow = MLflowLoggerCallback(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment_name="e")
    mlflow.setup()
    assert mlflow._trial_runs == {}
    assert list(inspect.signature(mlflow.mlflow_util.end_run).parameters) == ["status", "run_id"]
