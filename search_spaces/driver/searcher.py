"""Optuna TPE for Ray Tune with the right coupling to ASHA.

Ray's ``OptunaSearch`` tells Optuna that a trial ASHA stopped early was COMPLETE, with its
half-trained score, so TPE learns from early-rung scores as if they were final. Here such a trial
is told PRUNED: Optuna keeps its per-epoch intermediate values (reported every epoch) and TPE
treats it as a pruned trial, exactly as Optuna's own pruners do. Trials that reach the last epoch
are COMPLETE with their final score; errored ones FAIL, and so do diverged ones (a NaN/inf loss:
the trial's last report has a ``stop_reason``, kept as the Optuna trial's user attribute of that
name). A trial whose configuration the rules refused (no report, no error) is PRUNED with the
constraint ``refused`` violated: infeasible, which TPE ranks below every feasible trial rather than
leaving it out of its model. On a finite space the sampler draws no configuration twice
(``search_spaces.unvisited``), and the search ends once it has tried them all. The study lives in
a journal file in the experiment directory (``layout.JOURNAL_FILE``) so ``optuna-dashboard`` can
open it during and after the run.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import Searcher, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from search_spaces.algorithms import SEARCHERS
from search_spaces.base import rounded
from search_spaces.unvisited import Unvisited, tried_all
from trainable.layout import JOURNAL_FILE
from trainable.metrics import DEFAULT_METRIC
from trainable.objectstore import push, uri_of

__all__ = ["REFUSED_CONSTRAINT", "TUNE_TRIAL_ATTR", "PrunedOptunaSearch", "TrialsOfRecord", "journal_storage",
           "make_searcher", "skip_finished_trials"]

TUNE_TRIAL_ATTR = "tune_trial_id"
REFUSED_CONSTRAINT = "refused"  # the Optuna constraint a refused configuration violates
logger = logging.getLogger(__name__)


def journal_storage(path: str | Path) -> JournalStorage:
    """The study kept in the journal file ``path``; in an object store's mirror, each change is also
    uploaded whole, so the store holds every trial the study has been told of."""
    return JournalStorage((_UploadedJournal if uri_of(path) else JournalFileBackend)(str(path)))


class _UploadedJournal(JournalFileBackend):
    """A journal file in an object store's mirror, uploaded whole after every append (a few kB, one PUT)."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path)
        self.local = Path(file_path)

    def append_logs(self, logs: list[dict]) -> None:
        super().append_logs(logs)
        push(self.local)


class PrunedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that reports scheduler-stopped trials to Optuna as PRUNED."""

    # reads OptunaSearch's private _ot_study, _ot_trials, _completed_trials, _storage and _study_name, and
    # Optuna's Trial._trial_id: tests/test_ray_optuna_internals.py

    def __init__(self, *args, max_t: int, journal: str | Path = "", **kwargs):
        super().__init__(*args, **kwargs)
        self._max_t = max_t
        self.journal = str(journal)

    def moved_to(self, journal: Path) -> None:
        """Go on with the study in ``journal``, the experiment's journal where the experiment is now: a
        restored searcher still holds the study of the folder the search ran in."""
        if not self.journal or Path(self.journal) == journal or self._ot_study is None:
            return
        self.journal, self._storage = str(journal), journal_storage(journal)
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                           sampler=self._ot_study.sampler, pruner=self._ot_study.pruner)
        self._ot_trials = {tid: optuna.trial.Trial(self._ot_study, t._trial_id) for tid, t in self._ot_trials.items()}

    def suggest(self, trial_id: str) -> dict | str | None:
        if (trial_id not in self._ot_trials and self._ot_study is not None
                and isinstance(self._ot_study.sampler, Unvisited) and tried_all(self._ot_study)):
            # a trial trains with the search's seed: another would copy a result the study holds
            logger.warning("every configuration of the finite search space has been tried (warm-started trials "
                           "included): no more trials start")
            return Searcher.FINISHED
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:  # lets a resumed trial find its own record in the journal
            self._ot_trials[trial_id].set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        # a trial trains the value a person reads and pastes (search_spaces.base.rounded); the study keeps
        # the draw, closer than the search can tell apart
        return rounded(config) if isinstance(config, dict) else config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value = result.get(self.metric)
        if value is not None and not math.isfinite(value):
            return  # a diverged trial's last report: on_trial_complete records it as failed
        try:
            super().on_trial_result(trial_id, result)
        except RuntimeError as exc:  # e.g. the study already recorded this trial's end
            logger.warning("could not record a result of trial %s in the Optuna study: %s", trial_id, exc)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        result = result or {}
        value, step = result.get(self.metric), result.get("training_iteration")
        ot_trial = self._ot_trials[trial_id]
        if value is not None and step is not None and math.isfinite(value) and not self._reported(ot_trial, step):
            # the result that ends a trial may reach on_trial_complete only: keep it as a step too
            try:
                ot_trial.report(value, step)
            except RuntimeError:
                pass  # already ended in the study: tell() below logs it
        # a trial that stops before max_t was stopped by the scheduler (Tune marks that result done too)
        stopped_early = step is not None and step < self._max_t
        if not error and value is None and step is None:
            # no report at all (Tune's last result has no training_iteration) and no error: the rules
            # refused its configuration (ray_trainable). Infeasible, not failed: TPE leaves FAIL trials
            # out of its model, but ranks an infeasible PRUNED one below every feasible trial, so it
            # learns where the budget ends
            state = TrialState.PRUNED
            try:
                ot_trial.set_constraint(REFUSED_CONSTRAINT, 1.0)
            except RuntimeError:
                pass  # already ended in the study: tell() below logs it
        elif error or value is None or not math.isfinite(value):
            state, value = TrialState.FAIL, None
            if result.get("stop_reason"):
                try:
                    ot_trial.set_user_attr("stop_reason", str(result["stop_reason"]))
                except RuntimeError:
                    pass  # already ended in the study: tell() below logs it
        elif stopped_early:
            state, value = TrialState.PRUNED, None  # Optuna keeps the intermediate values
        else:
            state = TrialState.COMPLETE
        try:
            self._ot_study.tell(ot_trial, value, state=state)
        except (ValueError, RuntimeError) as exc:  # e.g. a resumed trial the study had already ended
            logger.warning("could not record trial %s in the Optuna study: %s", trial_id, exc)
        self._completed_trials.add(trial_id)


    def _reported(self, ot_trial: optuna.Trial, step: int) -> bool:
        # Optuna warns on every second report of a step (a UserWarning on the console at each trial's end)
        return step in self._ot_study.get_trials(deepcopy=False)[ot_trial.number].intermediate_values


class TrialsOfRecord(SearchGenerator):
    """Tune's generator of a searcher's trials, whose total is the experiment record's ``num_samples``
    also when the search is restored: Tune restores the total it saved, so a finished search could
    never take more trials (``resume EXP --num-samples N`` raises the record's total, then restores).

    It also creates the trials of a restored search in the experiment's folder where it is now: Tune
    moves the trials it restores to a moved folder, but creates new ones in the folder its saved
    state names (``exp_dir``, set again as the search is restored: ``tuner.build_tuner``)."""

    # reads SearchGenerator's private _experiment and _total_samples: tests/test_ray_optuna_internals.py
    def __init__(self, searcher, exp_dir: str | Path) -> None:
        super().__init__(searcher)
        self.exp_dir = str(exp_dir)

    def set_state(self, state: dict) -> None:
        from search_spaces.driver.record import read_record

        super().set_state(state)
        self._total_samples = read_record(self.exp_dir).planned_trials
        storage = self._experiment.spec.get("storage") if self._experiment else None
        here = Path(self.exp_dir)
        if storage is not None and not uri_of(here) and Path(storage.experiment_fs_path) != here:
            moved = copy.copy(storage)  # as Tune updates the trials it restores
            moved.storage_fs_path, moved.experiment_dir_name = str(here.parent), here.name
            self._experiment.spec["storage"] = moved

    def restore_from_dir(self, dirpath: str) -> None:
        super().restore_from_dir(dirpath)
        searcher = self.searcher
        while hasattr(searcher, "searcher"):  # a concurrency limit's
            searcher = searcher.searcher
        if isinstance(searcher, PrunedOptunaSearch):
            searcher.moved_to(Path(self.exp_dir) / JOURNAL_FILE)


def make_searcher(journal: str | Path, study_name: str, seed: int, points_to_evaluate: list[dict],
                  max_t: int, n_startup_trials: int, metric: str = DEFAULT_METRIC, mode: str = "max",
                  sampler: str = "tpe") -> PrunedOptunaSearch:
    """A seeded searcher (``algorithms.SEARCHERS[sampler]``, TPE by default) with the PRUNED coupling,
    its study persisted in ``journal``."""
    sampler = SEARCHERS[sampler].build(seed, n_startup_trials)
    return PrunedOptunaSearch(metric=metric, mode=mode, sampler=sampler, storage=journal_storage(journal),
                              study_name=study_name, points_to_evaluate=points_to_evaluate, max_t=max_t,
                              journal=journal)


def skip_finished_trials(trainable: Callable[[dict], None], journal: str | Path, study_name: str) -> Callable:
    """Wrap a function trainable so that a trial the study already recorded as ended does not train
    again.

    A driver killed between telling Optuna that a trial ended (written at once to the journal) and
    Ray's next experiment-state snapshot leaves that trial "running" in Ray's state; on ``resume``
    Ray would continue it. Likewise ``resume`` restarts trials that errored (out of retries), which
    the study recorded as failed. The journal is the record that was written first, so it decides:
    every trial ends once, with the state the study gave it.
    """
    journal = str(journal)

    def guarded(config: dict) -> None:
        from ray import tune

        if _ended_in_study(journal, study_name, tune.get_context().get_trial_id()):
            return
        return trainable(config)

    guarded.__name__ = getattr(trainable, "__name__", "trainable")
    return guarded


def _ended_in_study(journal: str, study_name: str, trial_id: str) -> bool:
    if not Path(journal).is_file():
        return False
    study = optuna.load_study(study_name=study_name, storage=journal_storage(journal))
    return any(t.user_attrs.get(TUNE_TRIAL_ATTR) == trial_id and t.state.is_finished()
               for t in study.get_trials(deepcopy=False))
