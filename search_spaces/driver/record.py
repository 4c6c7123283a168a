"""The experiment record: every setting of one search, typed, built once and kept in ``experiment.json``.

The record holds the search's own settings (space, trials, ASHA's rungs, resources, the metric)
and the baseline trial ``Config``; everything else is derived from it here, never stored twice:
ASHA's ``max_t`` is the config's ``train.epochs``, the seed is ``train.seed``, the parameter
budget is ``model.max_params``, the data is ``data.root`` (empty: the built-in synthetic set, at
``data.image_size``), and the searched keys, ablation levels and baseline values come from the
space. ``search``, ``resume``, ``retrain``, ``tta`` and the analysis all read the same record.

It is built from, in order of precedence: the config defaults and the space's constants, the
hardware defaults, the challenge edition's rules (``--challenge``: the metric and the parameter
budget; pretrained weights where its rules forbid them are refused), the flags that are
shorthands for config keys (``--max-epochs`` is ``train.epochs``, ``--seed`` is ``train.seed``,
``--max-params`` is ``model.max_params``, ``--data`` is ``data.root``), and ``--set``; a
shorthand flag and a ``--set`` of the same key that disagree are refused rather than one silently
winning.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_spaces import SearchSpace, get_space
from search_spaces.algorithms import SCHEDULERS, SEARCHERS
from search_spaces.driver.cluster import ClusterShape, TrialResources
from search_spaces.driver.trackers import get_tracker
from search_spaces.hardware import HARDWARE
from search_spaces.population import POPULATION_SCHEDULERS, KeepInRange, explored
from trainable.challenges import get_challenge
from trainable.config import Config, flatten, with_flags
from trainable.errors import UserError
from trainable.layout import EXPERIMENT_FILE, has_tune_state, replacing
from trainable.metrics import DEFAULT_METRIC, search_metric

__all__ = [
    "RECORD_VERSION",
    "ExperimentRecord",
    "new_record",
    "read_record",
]

# 1: written before the record was typed (settings dict beside base_config); 2: before a search could
# start from another (parent, parent_trial), be warm-started (warm_start) or take more trials on resume
RECORD_VERSION = 3
RESUMABLE_SINCE = 2  # the Ray state of a version-1 experiment names modules this version no longer has
MORE_TRIALS_SINCE = 3  # the first version whose Ray state takes more trials (searcher.TrialsOfRecord)

TTA_IS_NOT_SEARCHED = ("--space tta: TTA is scored on a trained checkpoint, not searched: python launch.py tta EXP "
                        "(the best trial's last checkpoint) or python launch.py tta CHECKPOINT")

_HINT = "pass the folder that launch.py printed as 'results'"



@dataclass
class ExperimentRecord:
    """One search: its settings, and the baseline trial config every trial starts from."""

    name: str  # the experiment folder's name, and the Optuna study's
    space: str  # a training space of search_spaces
    config: Config  # the baseline; each trial is this with the searched keys sampled (or an ablation level)
    num_samples: int  # trials to sample (an ablation runs its planned configurations instead)
    grace_period: int  # epochs before ASHA may stop a trial
    reduction_factor: float  # ASHA keeps 1/reduction_factor of the trials at each rung
    cpus_per_trial: float
    gpus_per_trial: float
    max_concurrent: int = 0  # trials at once (0: as resources allow)
    ablation: bool = False  # one factor at a time from the baseline, FIFO, every configuration in full
    seeds: int = 1  # repeats of each ablation configuration
    metric: str = DEFAULT_METRIC  # what ASHA, Optuna, the summary, the analysis and retrain rank by
    mode: str = "max"
    challenge: str = ""  # the challenge edition whose rules the search follows (trainable.challenges)
    searcher: str = "tpe"  # what samples configurations (algorithms.SEARCHERS)
    scheduler: str = "asha"  # what stops trials early (algorithms.SCHEDULERS)
    perturbation_interval: int = 0  # PBT, PB2: epochs between exploits (0: not a population search)
    parent: str = ""  # the experiment whose trial parent_trial's config is this search's baseline (--from, stages)
    parent_trial: str = ""
    warm_start: list[str] = field(default_factory=list)  # experiments whose trials seeded the study (--warm-start)
    trackers: list[str] = field(default_factory=list)  # experiment trackers logging every trial (--tracker)
    created: str = ""
    command: str = ""
    # the version of the file this record was read from (not written: a record is always written as
    # the current version)
    read_version: int = field(default=RECORD_VERSION, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.check()

    # ---- derived, never stored ----
    @property
    def max_t(self) -> int:
        """Epochs of a full trial: ASHA's ``max_t`` and the PRUNED coupling's last step."""
        return self.config.train.epochs

    @property
    def seed(self) -> int:
        return self.config.train.seed

    @property
    def strategy(self) -> str:
        """The scheduler and the searcher with their settings, e.g. "ASHA (...) + Optuna TPE (seed 0)"."""
        values = {"max_t": self.max_t, "grace_period": self.grace_period, "reduction_factor": self.reduction_factor,
                  "seed": self.seed, "num_samples": self.num_samples,
                  "perturbation_interval": self.perturbation_interval}
        return f"{SCHEDULERS[self.scheduler].describe(**values)} + {SEARCHERS[self.searcher].describe(**values)}"

    @property
    def synthetic(self) -> bool:
        return not self.config.data.root

    @property
    def search_space(self) -> SearchSpace:
        return get_space(self.space)

    @property
    def searched(self) -> list[str]:
        return list(self.search_space.params)

    @property
    def levels(self) -> dict[str, list]:
        return self.search_space.levels

    @property
    def baseline(self) -> dict[str, Any]:
        """The searched and ablated keys at their baseline values (dotted keys)."""
        flat = flatten(self.config.to_dict())
        return {k: flat[k] for k in {*self.search_space.params, *self.levels}}

    @property
    def planned_trials(self) -> int:
        """How many trials the search runs in all."""
        if self.ablation:
            return len(self.search_space.ablation_points(self.config, self.seeds))
        return self.num_samples

    @property
    def trial(self) -> TrialResources:
        """What each trial asks Ray for."""
        return TrialResources(self.cpus_per_trial, self.gpus_per_trial)

    @property
    def metric_name(self) -> str:
        return search_metric(self.metric).name

    def check(self) -> None:
        """Settings that involve more than one value; each message names the flag that sets it."""
        if get_space(self.space) is None:
            raise UserError(TTA_IS_NOT_SEARCHED)
        if self.reduction_factor <= 1:
            raise UserError(f"--reduction-factor {self.reduction_factor:g}: must be greater than 1 (e.g. 3 keeps a "
                            f"third of the trials at each rung)")
        if not 1 <= self.grace_period <= self.max_t:
            raise UserError(f"--grace-period {self.grace_period}: more than the {self.max_t} epochs of a full trial "
                            f"(train.epochs); ASHA could never stop a trial early: choose at most {self.max_t}")
        if self.searcher not in SEARCHERS:
            raise UserError(f"--searcher {self.searcher}: valid searchers are {', '.join(SEARCHERS)}")
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"--scheduler {self.scheduler}: valid schedulers are {', '.join(SCHEDULERS)}")
        if self.population:
            self._check_population()
        elif self.perturbation_interval:
            raise UserError(f"--perturbation-interval {self.perturbation_interval}: only a population search "
                            f"exploits; add --scheduler {' or '.join(POPULATION_SCHEDULERS)}, or drop it")
        search_metric(self.metric)
        for name in self.trackers:
            get_tracker(name)  # an unknown name: one line listing the valid ones
        if self.mode not in ("max", "min"):
            raise UserError(f"mode {self.mode!r}: must be max or min")
        if self.challenge:
            rules = get_challenge(self.challenge)
            if rules.forbids(self.config.model.pretrained):
                raise UserError(f"model.pretrained={self.config.model.pretrained}: the {rules.name} rules allow no "
                                f"pretrained weights (models are trained from scratch); drop it, or choose another "
                                f"--challenge")
        if self.seeds != 1 and not self.ablation:
            raise UserError(f"--seeds {self.seeds}: repeats each configuration of an --ablation; add --ablation, "
                            f"or give a sampled search another --seed")

    @property
    def population(self) -> bool:
        """A population search (PBT, PB2): trials exploit and explore instead of being stopped."""
        return self.scheduler in POPULATION_SCHEDULERS

    @property
    def has_study(self) -> bool:
        """Whether an Optuna study samples the trials (its journal in the experiment): not for an ablation
        (planned configurations) nor a population (Tune's generator draws it)."""
        return not (self.ablation or self.population)

    def _check_population(self) -> None:
        flag = f"--scheduler {self.scheduler}"
        if self.ablation:
            raise UserError(f"{flag}: an --ablation runs its planned configurations in full; drop one of the two")
        if self.searcher != "random":
            raise UserError(f"--searcher {self.searcher}: {flag} draws its first population at random (Ray takes "
                            f"no search algorithm beside a population scheduler); drop --searcher")
        if self.num_samples < 2:
            raise UserError(f"--num-samples {self.num_samples}: a population of {self.num_samples} has no better "
                            f"trial to copy; use at least 2 (4 to 8 is typical)")
        keys = explored(self.search_space)
        if not keys or (self.scheduler == "pb2" and not KeepInRange.of(self.search_space).bounds):
            kind = "continuous augmentation keys (aug.*) for PB2's bandit" if keys else "augmentation keys (aug.*)"
            raise UserError(f"--space {self.space}: {flag} has nothing to change during training (it explores "
                            f"{kind}; this space searches {', '.join(self.searched)}); use --space augmentation, "
                            f"or --scheduler asha")
        if not 1 <= self.perturbation_interval < self.max_t:
            raise UserError(f"--perturbation-interval {self.perturbation_interval}: not shorter than the "
                            f"{self.max_t} epochs of training (train.epochs), so no trial would ever exploit; "
                            f"choose 1..{self.max_t - 1}")

    def with_more_trials(self, num_samples: int, started: int, where: str) -> ExperimentRecord:
        """This record with ``num_samples`` trials in all (``resume EXP --num-samples N``): the same study
        and rungs go on; ``started``: the trials the search has already started; ``where``: the experiment."""
        flag = f"--num-samples {num_samples}"
        if self.ablation or self.population:
            what = "an ablation runs its planned configurations" if self.ablation else \
                f"a population search ({self.scheduler}) trains a fixed population"
            raise UserError(f"{flag}: {where} is not a sampled search ({what}); start a new search with more "
                            f"trials instead")
        if self.read_version < MORE_TRIALS_SINCE:
            raise UserError(f"{flag}: {where} was started by an earlier version of facesearch, whose saved Ray "
                            f"state cannot take more trials; start a new search seeded with its trials: python "
                            f"launch.py search --space {self.space} --warm-start {where}")
        if num_samples < started:
            raise UserError(f"{flag}: below the {started} trials {where} has already started; give more than "
                            f"{started} to add trials")
        return dataclasses.replace(self, num_samples=num_samples)

    # ---- on disk ----
    def to_dict(self) -> dict:
        out = {"version": RECORD_VERSION}
        for f in dataclasses.fields(self):
            if f.name != "read_version":
                value = getattr(self, f.name)
                out[f.name] = value.to_dict() if isinstance(value, Config) else value
        return out

    @classmethod
    def from_dict(cls, d: dict, where: str = EXPERIMENT_FILE) -> ExperimentRecord:
        """A record from its JSON form (of this version or the previous one); a bad key or value is a
        one-line error naming ``where``."""
        if not isinstance(d, dict) or not ("version" in d or {"space", "settings", "base_config"} <= set(d)):
            raise UserError(f"{where}: not an experiment record written by launch.py (no version or settings); "
                            f"{_HINT}")
        version = d.get("version", 1)
        if version == 1:
            d = _from_version_1(d)
        elif version not in range(2, RECORD_VERSION + 1):
            raise UserError(f"{where}: experiment record version {version!r}, written by another version of "
                            f"facesearch (this one reads versions 1 to {RECORD_VERSION}); use that version")
        known = {f.name for f in dataclasses.fields(cls)} - {"read_version"}
        given = {k: v for k, v in d.items() if k != "version"}
        unknown = sorted(set(given) - known)
        if unknown:
            raise UserError(f"{where}: unknown key {unknown[0]!r} in the experiment record; valid keys are "
                            f"{', '.join(sorted(known))}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name in known and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING and f.name not in given)
        if missing:
            raise UserError(f"{where}: the experiment record has no {', '.join(missing)}; {_HINT}")
        for f in dataclasses.fields(cls):
            if f.name in given and f.name != "config":
                given[f.name] = _typed(where, f.name, f.type, given[f.name])
        if not isinstance(given["config"], dict):
            raise UserError(f"{where}: config={given['config']!r} in the experiment record: expected an object")
        try:
            given["config"] = Config.from_dict(given["config"])
            return cls(**given, read_version=version)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None

    def write(self, exp_dir: Path) -> None:
        with replacing(Path(exp_dir) / EXPERIMENT_FILE) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _typed(where: str, key: str, kind: str, value: Any) -> Any:
    kinds = {"str": str, "int": int, "float": (int, float), "bool": bool, "list[str]": list}
    if (isinstance(value, bool) and kind != "bool") or not isinstance(value, kinds[kind]) or \
            (kind == "list[str]" and not all(isinstance(v, str) for v in value)):
        raise UserError(f"{where}: {key}={value!r} in the experiment record: expected {kind}")
    return float(value) if kind == "float" else value


def _from_version_1(d: dict) -> dict:
    """A version-1 record (a ``settings`` dict beside ``base_config``) in the current form. Its
    ``max_epochs`` setting (ASHA's ``max_t``) and the config's ``train.epochs`` could disagree: a
    trial then ended at the shorter of the two, which is what a full trial's length is here."""
    s = d["settings"] if isinstance(d["settings"], dict) else {}
    config = copy.deepcopy(d["base_config"]) if isinstance(d["base_config"], dict) else d["base_config"]
    out = {"name": d.get("name"), "space": d["space"], "config": config}
    for key in ("num_samples", "grace_period", "reduction_factor", "cpus_per_trial", "gpus_per_trial"):
        if key in s:
            out[key] = s[key]
    for key in ("max_concurrent", "ablation", "seeds", "created", "command"):
        if key in d:
            out[key] = d[key]
    train = config.get("train") if isinstance(config, dict) else None
    if isinstance(train, dict) and isinstance(s.get("max_epochs"), int):
        train["epochs"] = min(train.get("epochs", s["max_epochs"]), s["max_epochs"])
        if isinstance(out.get("grace_period"), int):
            out["grace_period"] = min(out["grace_period"], train["epochs"])
    return out


def read_record(exp_dir: str | Path, for_resume: bool = False) -> ExperimentRecord:
    """The record of an experiment folder; a one-line error for a folder that holds none.

    ``for_resume`` also refuses a folder that an earlier version of this tool ran (record version 1)
    once Ray saved its state: that state names the search driver's old modules, which this version
    cannot load. Such an experiment stays readable by the analysis, ``retrain`` and ``tta``.
    """
    exp_dir = Path(exp_dir).expanduser()
    path = exp_dir / EXPERIMENT_FILE
    try:
        is_file = path.is_file()
    except OSError as e:  # e.g. a name longer than the file system allows
        raise UserError(f"{exp_dir}: not usable as an experiment directory ({e.strerror}); {_HINT}") from None
    if not is_file:
        raise UserError(f"{exp_dir}: not an experiment directory (no {EXPERIMENT_FILE}); {_HINT}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e}); {_HINT}") from None
    record = ExperimentRecord.from_dict(data, str(path))
    if for_resume and record.read_version < RESUMABLE_SINCE and has_tune_state(exp_dir):
        raise UserError(f"{exp_dir}: run by an earlier version of facesearch (experiment record version "
                        f"{record.read_version}), whose saved Ray state this version cannot restore; its trials "
                        f"stay usable: python -m analysis {exp_dir}, python launch.py retrain {exp_dir}")
    return record


def new_record(space: str, *, name: str | None = None, cluster: ClusterShape | None = None,
               overrides: dict[str, Any] | None = None, data: str | None = None, seed: int | None = None,
               max_epochs: int | None = None, max_params: int | None = None, num_samples: int | None = None,
               grace_period: int | None = None, reduction_factor: float | None = None,
               cpus_per_trial: float | None = None, gpus_per_trial: float | None = None, max_concurrent: int = 0,
               ablation: bool = False, seeds: int = 1, metric: str | None = None, challenge: str | None = None,
               searcher: str | None = None, scheduler: str = "asha", perturbation_interval: int | None = None,
               command: str = "", start: dict | None = None, parent: str = "", parent_trial: str = "",
               warm_start: list[str] | None = None, trackers: list[str] | None = None) -> ExperimentRecord:
    """The record of a new search from its flags; the hardware defaults follow ``cluster``, the Ray
    cluster the search runs on (``ClusterShape.from_ray()`` once joined; none: the CPU defaults, unless
    ``gpus_per_trial`` asks for GPUs). ``start``: the config of trial ``parent_trial`` of experiment
    ``parent``, which is then the baseline in place of the defaults and the hardware's (the space's
    constants and the flags still apply); ``warm_start``: the experiments whose trials seed the study;
    ``trackers``: the experiment trackers that log every trial (each once, in the order given)."""
    search_space = get_space(space)
    if search_space is None:
        raise UserError(TTA_IS_NOT_SEARCHED)
    trial = (cluster or ClusterShape(())).trial_resources(cpus_per_trial, gpus_per_trial)
    hw = HARDWARE[trial.kind]
    rules = get_challenge(challenge) if challenge else None
    # below the flags: explicit ones win; a search started from another's trial keeps that trial's budget
    preset = {"model.max_params": rules.max_params} if rules and not start else {}
    given = with_flags(overrides, max_epochs=max_epochs, seed=seed, max_params=max_params, data=data)
    # a GPU trial's loader workers: all of its CPUs but the one that drives the GPU
    derived = {"data.num_workers": max(1, int(trial.cpus) - 1)} if trial.gpus else {}
    config = search_space.base_config({**({} if start else hw.config), **derived, **preset, **given}, start=start)
    if grace_period is None:  # the hardware's, within a full trial
        grace_period = min(hw.grace_period, config.train.epochs)
    elif max_epochs is not None and grace_period > max_epochs:
        raise UserError(f"--grace-period {grace_period}: more than --max-epochs {max_epochs}; ASHA could never stop "
                        f"a trial early: choose at most {max_epochs}")
    name = name or f"{space}{'-ablation' if ablation else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    population = scheduler in POPULATION_SCHEDULERS
    if population and perturbation_interval is None:  # a few exploits over the training of a trial
        perturbation_interval = max(1, config.train.epochs // 4)
    return ExperimentRecord(
        name=name, space=space, config=config,
        num_samples=hw.num_samples if num_samples is None else num_samples, grace_period=grace_period,
        reduction_factor=float(hw.reduction_factor if reduction_factor is None else reduction_factor),
        cpus_per_trial=trial.cpus, gpus_per_trial=trial.gpus, max_concurrent=max_concurrent,
        ablation=ablation, seeds=seeds, metric=metric or (rules.metric if rules else DEFAULT_METRIC),
        challenge=challenge or "", searcher=searcher or ("random" if population else "tpe"), scheduler=scheduler,
        perturbation_interval=perturbation_interval or 0, created=time.strftime("%Y-%m-%d %H:%M:%S"), command=command,
        parent=parent, parent_trial=parent_trial, warm_start=list(warm_start or []),
        trackers=list(dict.fromkeys(trackers or [])))


