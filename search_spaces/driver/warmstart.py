"""Warm starts: a new search's Optuna study seeded with the trials of earlier experiments (``search
--warm-start EXP [EXP ...]``), through Optuna's own ``add_trial``.

A seeded trial keeps its state (COMPLETE with its final score, PRUNED with its per-epoch values,
refused as infeasible; failed trials are left out, as TPE leaves them out) and its values of the
keys the new search samples: a key the earlier search held fixed takes the value it was held at.
Scores are comparable only between searches that train and validate alike, so an experiment whose
metric, data, image size or epochs differ is refused, not seeded; one that varied keys this search
holds fixed is seeded with a note (its scores were measured at other values of those keys).
"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search.optuna import OptunaSearch

from search_spaces.driver.record import ExperimentRecord, read_record
from search_spaces.driver.searcher import REFUSED_CONSTRAINT, TUNE_TRIAL_ATTR, journal_storage
from trainable.errors import UserError
from trainable.layout import JOURNAL_FILE
from trainable.objectstore import is_uri, local

__all__ = ["WARM_START_ATTR", "location", "seed_study", "seeded_trials"]

WARM_START_ATTR = "warm_start"  # a seeded trial's user attribute: "<experiment>#<its number there>"
# settings that make two searches' scores comparable: (what a user reads, the record's value)
_ALIKE = {"metric": lambda r: r.metric, "data": lambda r: r.config.data.root or "the built-in synthetic set",
          "data.image_size": lambda r: r.config.data.image_size, "train.epochs": lambda r: r.max_t}


def location(source: str) -> str:
    """Where experiment ``source`` is, as a record keeps it: an object store's URI, else an absolute path."""
    return source if is_uri(source) else str(Path(source).expanduser().resolve())


def seeded_trials(record: ExperimentRecord, sources: list[str]) -> tuple[list[FrozenTrial], list[str]]:
    """The trials of the experiments ``sources`` as trials of ``record``'s study, and notes on what was
    left out or differs; an experiment that cannot seed this search gets a one-line error."""
    space = record.search_space
    distributions = OptunaSearch.convert_search_space(space.param_space(record.config))
    baseline = space.baseline_point(record.config)
    trials, notes = [], []
    for source in dict.fromkeys(sources):  # each experiment once
        path, where = local(source, checkpoints=False), location(source)
        try:
            earlier = read_record(path)
        except UserError as e:
            raise UserError(f"--warm-start {source}: {e}") from None
        for setting, of in _ALIKE.items():
            if of(earlier) != of(record):
                raise UserError(f"--warm-start {source}: searched with {setting} {of(earlier)}, this search with "
                                f"{of(record)}; their scores do not compare: give this search the same {setting}, or "
                                f"leave that experiment out")
        shared = sorted(set(earlier.searched) & set(record.searched))
        if not shared or not earlier.has_study:
            why = (f"it searched {', '.join(earlier.searched)}, this search {', '.join(record.searched)}" if not shared
                   else "an ablation or a population search keeps no Optuna study")
            raise UserError(f"--warm-start {source}: no trials to seed this search with ({why}); warm-start from a "
                            f"sampled search of the same space, e.g. --space {earlier.space}")
        study = optuna.load_study(study_name=earlier.name, storage=journal_storage(Path(path) / JOURNAL_FILE))
        fixed = [k for k in earlier.searched if k not in record.searched]
        own_keys = {k.replace(".", "/") for k in earlier.searched}
        kept = outside = 0
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if WARM_START_ATTR in t.user_attrs:
                continue  # seeded there from another experiment: warm-start from that one to have it
            params = {name: t.params[name] if name in own_keys else baseline[name] for name in distributions}
            if any(name in own_keys and name not in t.params for name in distributions) or \
                    not all(_inside(distributions[n], v) for n, v in params.items()):
                outside += 1
                continue
            trials.append(optuna.trial.create_trial(
                state=t.state, value=t.value if t.state == TrialState.COMPLETE else None, params=params,
                distributions=distributions, intermediate_values=dict(t.intermediate_values),
                constraints={REFUSED_CONSTRAINT: 1.0} if _refused(t) else None,
                user_attrs={**{k: v for k, v in t.user_attrs.items() if k != TUNE_TRIAL_ATTR},
                            WARM_START_ATTR: f"{where}#{t.number}"}))
            kept += 1
        notes.append(f"warm start: {kept} trials of {where}" + (f" ({outside} left out: values outside this "
                                                                  f"search's ranges)" if outside else ""))
        if fixed and kept:
            notes.append(f"they varied {', '.join(fixed)}, which this search holds at its baseline: their scores "
                         f"were measured at other values")
    return trials, notes


def _inside(distribution, value) -> bool:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return value in distribution.choices
    return distribution.low <= value <= distribution.high


def _refused(trial: FrozenTrial) -> bool:
    return any(name == REFUSED_CONSTRAINT and value > 0 for name, value in (trial.constraints or {}).items())


def seed_study(journal: Path, record: ExperimentRecord, trials: list[FrozenTrial]) -> None:
    """Create ``record``'s study in ``journal`` with ``trials`` in it, before the searcher opens it (once:
    a search started over keeps the trials it was seeded with)."""
    study = optuna.create_study(study_name=record.name, storage=journal_storage(journal),
                                direction="maximize" if record.mode == "max" else "minimize", load_if_exists=True)
    if not any(WARM_START_ATTR in t.user_attrs for t in study.get_trials(deepcopy=False)):
        study.add_trials(trials)
