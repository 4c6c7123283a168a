"""Face-parsing hyperparameter search with Ray Tune (ASHA + Optuna TPE), one verb per job.

    python launch.py search --space augmentation      # the built-in synthetic data, on this machine
    python launch.py --space augmentation             # the same: search is the verb when none is given
    python launch.py resume EXP                       # continue a search after Ctrl-C, SIGTERM or a crash
    python launch.py tta EXP                          # score TTA scales and flip on the best trial
    python launch.py retrain EXP --top 3 --seeds 3    # the best configurations, trained again in full
    python launch.py predict MODEL --images DIR --out DIR --zip submission.zip
    python launch.py predict MODEL --out submission --submission ce7454-2025   # masks/ + solution/, zipped
    python launch.py evaluate PRED_DIR TRUTH_DIR      # score predicted masks as the course does

`python launch.py VERB --help` lists a verb's flags, with examples.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from search_spaces.commands import AT_LEAST, COMMANDS, LEGACY, RAY_FLAGS, SEARCH_OWN
from trainable.cli import parse_verb
from trainable.config import parse_overrides
from trainable.errors import UserError, cli_errors
from trainable.layout import EXPERIMENT_FILE, RETRAIN_DIR
from trainable.objectstore import local, push, uri_of

# Ray, torch, Optuna and the analysis are imported by the verb that needs them: a refused argument
# or data set is then reported in seconds, before any of them loads.


def search(args) -> int:
    from search_spaces.driver import create_experiment
    from search_spaces.driver.stages import parse_spaces
    from search_spaces.driver.trackers import check_trackers

    check_trackers(args.trackers or [], args.storage_path)  # each stage of a staged search logs to them too
    if len(parse_spaces(args.space)) > 1:
        return staged(args)
    # flags, name, storage, model and data checked before Ray starts (a refusal costs seconds), then
    # the record built again with the hardware defaults of the cluster joined
    checked = search_record(args, notes=True)
    create_experiment(checked, args.storage_path, before_ray=True)
    cluster = _join(args)
    record = search_record(args, cluster)
    cluster.check_fits(record.trial)
    exp_dir = create_experiment(record, args.storage_path, notes=record.synthetic or record.config != checked.config)
    return _fit(exp_dir, record, args, cluster, restore=False)


def search_record(args, cluster=None, notes: bool = False):
    """The record of search's flags on ``cluster`` (none: the CPU defaults), after checking the experiments
    it starts from (``--from``) or is seeded with (``--warm-start``); ``notes``: print what they say."""
    from analysis.load import starting_point
    from search_spaces.driver import new_record
    from search_spaces.driver.stages import check_parent, inherited
    from search_spaces.driver.warmstart import location, seeded_trials

    flags = {k: v for k, v in vars(args).items() if k not in (*SEARCH_OWN, *RAY_FLAGS)}
    parent = None
    if args.parent:
        parent, where, trial, config = starting_point(args.parent, args.parent_trial)
        flags.update(inherited(parent, where, args.metric, args.challenge), start=config, parent=where,
                     parent_trial=trial)
    elif args.parent_trial:
        raise UserError(f"--trial {args.parent_trial}: picks the trial a search starts from; add --from EXP")
    record = new_record(args.space, cluster=cluster, overrides=parse_overrides(args.set),
                        warm_start=[location(s) for s in args.warm_start or []], **flags)
    if parent:
        check_parent(record, parent, where)
    if record.warm_start:
        _, found = seeded_trials(record, record.warm_start)  # each earlier experiment checked against this search
        for note in found if notes else []:
            print(f"note: {note}")
    return record


def staged(args) -> int:
    """A staged search (``--space a,b,c``): a folder of one search per space, run in order."""
    from search_spaces.driver.stages import StagedRun, parse_spaces
    from search_spaces.driver.warmstart import location
    from trainable.config import data_folder

    if args.warm_start:
        raise UserError("--warm-start: seeds the study of one search; give it to a search of one space")
    spaces = parse_spaces(args.space)
    search_record(argparse.Namespace(**{**vars(args), "space": spaces[0]}), notes=True)  # checked before Ray starts
    flags = {k: v for k, v in vars(args).items() if k not in ("space", "name", "storage_path", *RAY_FLAGS)}
    # the folders as absolute paths: resume RUN may run elsewhere
    flags.update(parent=args.parent and location(args.parent), data=args.data and data_folder(args.data))
    run = StagedRun.create(args.storage_path, args.name or f"{'-'.join(spaces)}-{time.strftime('%Y%m%d-%H%M%S')}",
                           spaces, flags)
    cluster = _join(args)
    run.write()
    return _run_stages(run, args, cluster)


def _run_stages(run, args, cluster) -> int:
    """Run (or resume) the stages of ``run`` in order, each from the best trial of the one before."""
    from analysis.summary import stage_summary
    from search_spaces.driver import create_experiment, read_record

    parent, parent_trial = run.flags.get("parent"), run.flags.get("parent_trial")
    for index, space in enumerate(run.spaces):
        exp_dir = run.stage_dir(index)
        print(f"\nstage {index + 1} of {len(run.spaces)}: {space}")
        if (exp_dir / EXPERIMENT_FILE).is_file():  # begun before the staged search was interrupted
            code = 0 if _finished(exp_dir) else _fit(exp_dir, read_record(exp_dir, for_resume=True), args, cluster,
                                                     restore=True)
        else:
            if exp_dir.exists():  # stopped while it was being created, before its record: created again
                shutil.rmtree(exp_dir)
            record = search_record(argparse.Namespace(**{**run.flags, "space": space, "name": exp_dir.name,
                                                         "parent": parent, "parent_trial": parent_trial}), cluster)
            cluster.check_fits(record.trial)
            create_experiment(record, str(uri_of(run.path) or run.path))
            code = _fit(exp_dir, record, args, cluster, restore=False)
        if code:
            print(f"resume the staged search with: python launch.py resume {uri_of(run.path) or run.path}")
            return code
        parent, parent_trial = str(uri_of(exp_dir) or exp_dir), None
        print("\n".join(stage_summary(run, index)))  # refuses a stage with no trial to pass on
    return 0


def resume(args) -> int:
    from analysis.summary import trial_counts
    from search_spaces.driver import read_record
    from search_spaces.driver.record import MORE_TRIALS_SINCE
    from search_spaces.driver.stages import StagedRun
    from search_spaces.driver.trackers import check_trackers

    exp_dir = local(args.exp, checkpoints=False).resolve()  # an object store's: its mirror, pulled
    shown = uri_of(exp_dir) or exp_dir
    run = StagedRun.read(exp_dir)
    if run:
        if args.num_samples is not None:
            raise UserError(f"--num-samples {args.num_samples}: {shown} is a staged search; give more trials to one "
                            f"of its stages: python launch.py resume {shown}/<stage> --num-samples N")
        if all(_finished(run.stage_dir(i)) for i in range(len(run.spaces))):
            print(f"{shown}: finished, all {len(run.spaces)} stages ended; nothing to resume")
            return 0
        check_trackers(run.flags.get("trackers") or [], exp_dir)  # the search's trackers, before Ray starts
        return _run_stages(run, args, _join(args))
    record = read_record(exp_dir, for_resume=True)
    started, _ = trial_counts(exp_dir)
    more = args.num_samples is not None and args.num_samples != record.num_samples
    if more:
        record = record.with_more_trials(args.num_samples, started, str(shown))
    if not more and _finished(exp_dir):
        print(f"{shown}: finished, all {record.planned_trials} trials ended; nothing to resume")
        if record.has_study and record.read_version >= MORE_TRIALS_SINCE:
            print(f"more trials, in the same study: python launch.py resume {shown} --num-samples "
                  f"{2 * record.planned_trials}")
        return 0
    check_trackers(record.trackers, exp_dir)  # the search's trackers, before Ray starts
    cluster = _join(args)
    cluster.check_fits(record.trial)  # the resources the search resolved when it started
    if more:
        record.write(exp_dir)  # the new total, which the restored search reads
        if uri_of(exp_dir):
            push(exp_dir / EXPERIMENT_FILE)
        print(f"trials:         {started} run, {record.num_samples} in all now, in the same study")
    return _fit(exp_dir, record, args, cluster, restore=True)


def _finished(exp_dir: Path) -> bool:
    """Whether the search in ``exp_dir`` started and ended every trial it plans."""
    from analysis.summary import trial_counts
    from search_spaces.driver import read_record

    if not (exp_dir / EXPERIMENT_FILE).is_file():
        return False
    started, ended = trial_counts(exp_dir)
    return ended == started >= read_record(exp_dir).planned_trials


def _join(args):
    from search_spaces.driver import ClusterShape, start_ray

    start_ray(args.address, args.dashboard_host)
    return ClusterShape.from_ray()


def _fit(exp_dir: Path, record, args, cluster, restore: bool) -> int:
    from analysis.summary import search_summary
    from search_spaces.driver import REUSE_ON_OWN_INSTANCE, check_storage, describe, run_search

    check_storage(exp_dir.parent, args.address)
    print("\n".join(describe(exp_dir, record, cluster)))
    try:
        interrupted = run_search(exp_dir, record, restore, cluster=cluster,
                                 ray_settings=None if args.address else REUSE_ON_OWN_INSTANCE).interrupted
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, after Tune's last saved state
        interrupted = "SIGINT twice, stopped at once"
    print("\n".join(search_summary(exp_dir, interrupted)))
    return 128 + signal.Signals[interrupted.split()[0]] if interrupted else 0  # as the shell reports a signal


def tta(args) -> int:
    from analysis.load import checkpoint_of, metric_of
    from search_spaces.tta import combinations_to_score
    from trainable.tta_search import print_tta_table, score_tta

    checkpoint = checkpoint_of(local(args.target), args.trial)
    print(f"checkpoint:     {checkpoint}")
    print_tta_table(score_tta(checkpoint, combinations_to_score(), data=args.data, overrides=parse_overrides(args.set),
                              metric=metric_of(checkpoint)))
    return 0


def retrain(args) -> int:
    from analysis.load import load_experiment
    from trainable.retrain import plan_retrain, retrain_jobs

    exp = load_experiment(local(args.exp, checkpoints=False))
    candidates = exp.retrain_candidates(args.trial, args.top)
    jobs = plan_retrain(candidates, Path(args.out or exp.path / RETRAIN_DIR), epochs=args.epochs, seeds=args.seeds,
                        seed=args.seed, train_on=args.train_on, data=args.data, overrides=parse_overrides(args.set),
                        schedules=exp.schedules([name for name, *_ in candidates], args.fixed))
    retrain_jobs(jobs, exp.record.metric, exp.record.challenge, args.submission)
    return 0


def predict(args) -> int:
    from trainable.predict import format_result, parse_scales, predict_folder

    result = predict_folder(local(args.model), args.images, args.out, scales=parse_scales(args.tta),
                            flip=args.flip or None, size=args.size, zip_path=args.zip, force=args.force,
                            submission=args.submission)
    print("\n".join(format_result(result)))
    return 0


def evaluate(args) -> int:
    from trainable.evaluate import report

    print(report(args.pred_dir, args.truth_dir))
    return 0


VERBS = {verb: (run, *COMMANDS[verb]) for verb, run in (("search", search), ("resume", resume), ("tta", tta),
                                                         ("retrain", retrain), ("predict", predict),
                                                         ("evaluate", evaluate))}


def parse(argv: list[str]):
    """The verb of ``argv`` and its arguments (``args.command``: the command line as typed)."""
    verb, args = parse_verb(argv, "python launch.py", VERBS, __doc__, "search", LEGACY, AT_LEAST)
    args.command = " ".join(["python", "launch.py", *argv])
    return verb, args


@cli_errors
def main(argv: list[str] | None = None) -> int:
    verb, args = parse(sys.argv[1:] if argv is None else argv)
    return VERBS[verb][0](args)


if __name__ == "__main__":
    sys.exit(main())
