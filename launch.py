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

import signal
import sys
from pathlib import Path

from search_spaces.commands import AT_LEAST, COMMANDS, LEGACY, RAY_FLAGS
from trainable.cli import parse_verb
from trainable.config import parse_overrides
from trainable.errors import cli_errors
from trainable.layout import RETRAIN_DIR
from trainable.objectstore import local

# Ray, torch, Optuna and the analysis are imported by the verb that needs them: a refused argument
# or data set is then reported in seconds, before any of them loads.


def search(args) -> int:
    from search_spaces.driver import create_experiment

    # flags, name, storage, model and data checked before Ray starts (a refusal costs seconds), then
    # the record built again with the hardware defaults of the cluster joined
    checked = search_record(args)
    create_experiment(checked, args.storage_path, before_ray=True)
    cluster = _join(args)
    record = search_record(args, cluster)
    cluster.check_fits(record.trial)
    exp_dir = create_experiment(record, args.storage_path, notes=record.synthetic or record.config != checked.config)
    return _fit(exp_dir, record, args, cluster, restore=False)


def search_record(args, cluster=None):  # the record of search's flags on ``cluster`` (none: the CPU defaults)
    from search_spaces.driver import new_record

    flags = {k: v for k, v in vars(args).items() if k not in ("space", "set", "storage_path", *RAY_FLAGS)}
    return new_record(args.space, cluster=cluster, overrides=parse_overrides(args.set), **flags)


def resume(args) -> int:
    from search_spaces.driver import read_record

    exp_dir = local(args.exp, checkpoints=False).resolve()  # an object store's: its mirror, pulled
    record = read_record(exp_dir, for_resume=True)
    cluster = _join(args)
    cluster.check_fits(record.trial)  # the resources the search resolved when it started
    return _fit(exp_dir, record, args, cluster, restore=True)


def _join(args):
    from search_spaces.driver import ClusterShape, start_ray

    start_ray(args.address, args.dashboard_host)
    return ClusterShape.from_ray()


def _fit(exp_dir: Path, record, args, cluster, restore: bool) -> int:
    from analysis.summary import search_summary
    from search_spaces.driver import check_storage, describe, run_search

    check_storage(exp_dir.parent, args.address)
    print("\n".join(describe(exp_dir, record, cluster)))
    try:
        interrupted = run_search(exp_dir, record, restore, cluster=cluster).interrupted
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
