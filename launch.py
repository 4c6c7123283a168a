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

from search_spaces import SPACES
from search_spaces.algorithms import SCHEDULERS, SEARCHERS
from search_spaces.hardware import HARDWARE
from trainable.challenges import CHALLENGES
from trainable.cli import parse_verb
from trainable.config import default_of, parse_overrides
from trainable.errors import UserError, cli_errors
from trainable.folders import DATA_LAYOUTS, split_folders
from trainable.layout import MODEL_FILE, RETRAIN_DIR, SUBMISSION_DIR
from trainable.metrics import DEFAULT_METRIC, SEARCH_METRICS
from trainable.objectstore import local, push, uri_of

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
    from trainable.retrain import check_submission, format_results, plan_retrain
    from trainable.retrain import retrain as train_again

    exp = load_experiment(local(args.exp, checkpoints=False))
    if args.fixed and not exp.record.population:
        raise UserError(f"--fixed: {exp.path} is not a population search (--scheduler pbt or pb2), so its trials "
                        f"have no augmentation schedule to replace; drop --fixed")
    candidates = exp.retrain_candidates(args.trial, args.top)
    schedules = ({name: exp.schedule(name) for name, *_ in candidates}
                 if exp.record.population and not args.fixed else None)
    jobs = plan_retrain(candidates, Path(args.out or exp.path / RETRAIN_DIR), epochs=args.epochs, seeds=args.seeds,
                        seed=args.seed, train_on=args.train_on, data=args.data, overrides=parse_overrides(args.set),
                        schedules=schedules)
    if args.submission:
        check_submission(jobs, args.submission)  # before hours of training, not after
    results = []
    for job in jobs:
        print(job.describe(exp.record.metric_name))
        results.append({"trial": job.trial, "out": str(job.out), "search_score": job.search_score,
                        **train_again(job.cfg, job.out, threads=job.threads, schedule=job.schedule,
                                      schedule_note=job.schedule_note, metric=exp.record.metric)})
    print("\n".join(format_results(results, exp.record.metric, exp.record.challenge)))
    if args.submission:
        from trainable.predict import format_result, predict_folder

        job = jobs[0]
        print("\n".join(format_result(predict_folder(job.out / MODEL_FILE, None, job.out / SUBMISSION_DIR,
                                                     submission=args.submission))))
    for job in jobs:
        if uri_of(job.out):  # a retrain of an object store's experiment goes back into it
            print(f"uploaded to {push(job.out)}")
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


# ---- the command line: each verb's flags (the shared ones defined once), with examples ----

EXP = "an experiment folder (the one search printed as 'results')"
COURSE = DATA_LAYOUTS["course"]  # the examples' data folder
SHARED = {"--data": dict(help="data folder (course or generic layout); by default search uses the built-in "
                              "synthetic set, retrain and tta the trial's data"),
          "--set": dict(action="append", default=[], metavar="KEY=VALUE",
                        help="set a config key, e.g. --set optim.lr=1e-3 (repeatable)"),
          "--seed": dict(type=int, help="train.seed: of the sampler and every trial (default 0); for retrain, "
                                        "the first seed (default: the trial's)")}
RAY = {"--address": dict(help="join a running Ray cluster (e.g. auto) instead of starting one"),
       "--dashboard-host": dict(default="127.0.0.1", help="interface a local run's dashboard listens on")}
RAY_FLAGS = [flag[2:].replace("-", "_") for flag in RAY]
VERBS = {
    "search": (search, "sample and train configurations of a search space, ASHA stopping the weak ones", {}, {
        "--space": dict(required=True, help=", ".join(name for name, space in SPACES.items() if space)),
        "--num-samples": dict(type=int, help=f"trials to sample (default {HARDWARE['cpu'].num_samples} on a cluster "
                                             f"without GPUs, {HARDWARE['gpu'].num_samples} with)"),
        "--max-epochs": dict(type=int, help="epochs of a full trial: ASHA's max_t (train.epochs)"),
        "--grace-period": dict(type=int, help="epochs before ASHA may stop a trial"),
        "--reduction-factor": dict(type=float, help="ASHA keeps 1/reduction_factor of the trials per rung"),
        "--searcher": dict(help=f"what samples configurations: {', '.join(SEARCHERS)} (default tpe; a population "
                                f"scheduler draws its first population at random)"),
        "--scheduler": dict(default="asha", help=f"what stops trials early, or (pbt, pb2) trains a population that "
                                                 f"exploits and explores: {', '.join(SCHEDULERS)} (default asha)"),
        "--perturbation-interval": dict(type=int, help="pbt, pb2: epochs between exploits (default a quarter of "
                                                       "train.epochs); --num-samples is the population"),
        "--cpus-per-trial": dict(type=float, help="CPUs per trial (default: with GPUs, the GPU nodes' CPUs per "
                                                  "trial slot, one left to Ray; else 1)"),
        "--gpus-per-trial": dict(type=float, help="GPUs per trial (default 1 when the cluster has GPUs, else 0); "
                                                  "fractions pack small models (e.g. 0.25)"),
        "--max-concurrent": dict(type=int, default=0, help="trials running at once (0: as resources allow)"),
        "--max-params": dict(type=int, help=f"parameter budget (model.max_params; default "
                                            f"{default_of('model.max_params'):,}; 0: none)"),
        "--challenge": dict(help=f"follow an edition's rules (metric, budget, weights): {', '.join(CHALLENGES)}"),
        "--metric": dict(help="what the scheduler, the searcher and the ranking maximise: " + ", ".join(
            f"{key} ({metric.name})" for key, metric in SEARCH_METRICS.items()) + " (default: the edition's, else "
            f"{DEFAULT_METRIC})"),
        "--ablation": dict(action="store_true", help="one factor at a time from the baseline over its levels"),
        "--seeds": dict(type=int, default=1, help="repeats of each ablation configuration"),
        "--name": dict(help="experiment name (default <space>-<date>-<time>)"),
        "--storage-path": dict(default="experiments", help="where experiments go (default ./experiments)"),
        **SHARED, **RAY}, ["--space augmentation", "--space loss --data DATA --gpus-per-trial 0.5 --num-samples 48",
                           "--space augmentation --ablation --seeds 3",
                           "--space augmentation --scheduler pbt --num-samples 4 --perturbation-interval 2",
                           "--space model --set optim.lr=1e-3 --max-params 1821085"]),
    "resume": (resume, "continue an interrupted search: finished trials kept, the others from their checkpoints",
               {"exp": EXP}, RAY, ["experiments/augmentation-20261121-101500"]),
    "tta": (tta, "score every subset of TTA scales, with and without flip, on a trained checkpoint",
            {"target": f"{EXP}, or a trial's checkpoint folder"},
            {"--trial": dict(help="that trial's last checkpoint instead of the best trial's"),
             **{k: SHARED[k] for k in ("--data", "--set")}},
            ["EXP", "EXP --trial trial_1a2b3c4d", "EXP/trial_1a2b3c4d/checkpoint_000007"]),
    "retrain": (retrain, "train the best (or chosen) configurations again for the full schedule",
                {"exp": EXP}, {
        "--trial": dict(help="retrain this trial (e.g. trial_1a2b3c4d) instead of the best"),
        "--top": dict(type=int, help="retrain the best K configurations (default 1)"),
        "--epochs": dict(type=int, help="epochs of the schedule (default: the trial's)"),
        "--seeds": dict(type=int, default=1, help="seeds per configuration, counting up from the trial's"),
        "--train-on": dict(choices=("train", "train+val"), help="training data (train+val: val not held out)"),
        "--out": dict(help="output folder (default EXP/retrain)"),
        "--fixed": dict(action="store_true", help="a population search (pbt, pb2): train with the trial's final "
                                                  "augmentation settings throughout instead of replaying its "
                                                  "schedule"),
        "--submission": dict(metavar="CHALLENGE", help="then predict the data's test split into this challenge's "
                                                       "submission, OUT/<trial>/submission.zip (rules checked first)"),
        **SHARED},
        ["EXP", "EXP --trial trial_1a2b3c4d", "EXP --top 3 --seeds 3 --epochs 60 --train-on train+val",
         "EXP --train-on train+val --submission ce7454-2025"]),
    "predict": (predict, "predict a folder of images and package the submission",
                {"model": f"{MODEL_FILE} of a retrain, or a trial's checkpoint"}, {
        "--images": dict(help=f"folder of images to predict (default: the test split of the checkpoint's data, "
                              f"{split_folders('test')})"),
        "--out": dict(required=True, help="folder for the masks"),
        "--tta": dict(help="scales, e.g. 0.75,1,1.25 (default: the checkpoint's)"),
        "--flip": dict(action="store_true", help="add flipped predictions (left/right labels swapped)"),
        "--zip": dict(help="also write the masks into this zip, under one top folder (with --submission: the "
                           "zip's path, default OUT.zip)"),
        "--submission": dict(metavar="CHALLENGE", help="write and zip the layout this challenge takes, after checking "
                                                       "the model against its rules (ce7454-2025: masks/ + solution/)"),
        "--size": dict(type=int, help="mask side in pixels (default: each input image's size)"),
        "--force": dict(action="store_true", help="replace an existing output folder or zip")},
        [f"EXP/{RETRAIN_DIR}/trial_1a2b3c4d/{MODEL_FILE} --images {COURSE.image_dir('DATA', 'test')} --out preds "
         f"--zip submission.zip",
         f"EXP/{RETRAIN_DIR}/trial_1a2b3c4d/{MODEL_FILE} --out submission --submission ce7454-2025"]),
    "evaluate": (evaluate, "score predicted masks against true masks as the course evaluator does",
                 {"pred_dir": "folder of predicted index PNGs (or one holding a single sub-folder)",
                  "truth_dir": f"folder of true masks, e.g. {COURSE.mask_dirs('DATA', 'val')[0]}"}, {},
                 [f"predictions {COURSE.mask_dirs('DATA', 'val')[0]}"]),
}
LEGACY = {"--resume": "resume", "--retrain": "retrain", "--predict": "predict"}  # earlier spellings
AT_LEAST = {"num_samples": 1, "max_epochs": 1, "grace_period": 1, "seeds": 1, "top": 1, "epochs": 1, "size": 1,
            "cpus_per_trial": 0, "gpus_per_trial": 0, "max_concurrent": 0, "max_params": 0, "seed": 0}


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
