"""The command line's vocabulary: each verb's help, positional arguments, flags and examples.

``launch.py`` maps each verb to the function that runs it; the flags are here, the shared ones
stated once, their help built from the values it cites (the spaces, searchers, schedulers, editions,
metrics and hardware defaults), so that the help never drifts from them. Light imports only: a
refused argument is reported in seconds, before torch or Ray loads.
"""

from __future__ import annotations

from search_spaces import SPACES
from search_spaces.algorithms import SCHEDULERS, SEARCHERS
from search_spaces.hardware import HARDWARE
from trainable.challenges import CHALLENGES
from trainable.config import default_of
from trainable.folders import DATA_LAYOUTS, split_folders
from trainable.layout import MODEL_FILE, RETRAIN_DIR
from trainable.metrics import DEFAULT_METRIC, SEARCH_METRICS

__all__ = ["AT_LEAST", "COMMANDS", "LEGACY", "RAY_FLAGS", "SEARCH_OWN"]

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
COMMANDS = {
    "search": ("sample and train configurations of a search space, ASHA stopping the weak ones", {}, {
        "--space": dict(required=True, help=", ".join(name for name, space in SPACES.items() if space) + "; several, "
                                            "comma separated (e.g. augmentation,loss,optimizer), run as stages, each "
                                            "starting from the best trial of the one before"),
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
        "--from": dict(dest="parent", metavar="EXP", help="start from that experiment's best trial: its config is "
                                                         "this search's baseline (its metric, data and challenge "
                                                         "too)"),
        "--trial": dict(dest="parent_trial", metavar="TRIAL",
                        help="with --from: that trial (e.g. trial_1a2b3c4d) instead of the best"),
        "--warm-start": dict(nargs="+", metavar="EXP", help="seed the Optuna study with these experiments' trials, "
                                                           "on the keys the searches share"),
        # the names as search_spaces.driver.trackers.TRACKERS has them (importing it here would load Ray)
        "--tracker": dict(nargs="+", dest="trackers", metavar="NAME",
                          help="log every trial to these experiment trackers: wandb (offline in EXP/wandb unless W&B "
                               "is configured), mlflow (EXP/mlflow.db unless MLFLOW_TRACKING_URI is set), aim (a "
                               "repo in EXP)"),
        "--ablation": dict(action="store_true", help="one factor at a time from the baseline over its levels"),
        "--seeds": dict(type=int, default=1, help="repeats of each ablation configuration"),
        "--name": dict(help="experiment name (default <space>-<date>-<time>)"),
        "--storage-path": dict(default="experiments", help="where experiments go (default ./experiments)"),
        **SHARED, **RAY}, ["--space augmentation", "--space loss --data DATA --gpus-per-trial 0.5 --num-samples 48",
                           "--space augmentation,loss,optimizer --num-samples 16",
                           "--space loss --from experiments/augmentation-20261121-101500",
                           "--space augmentation --warm-start experiments/augmentation-20261121-101500",
                           "--space augmentation --tracker wandb mlflow",
                           "--space augmentation --ablation --seeds 3",
                           "--space augmentation --scheduler pbt --num-samples 4 --perturbation-interval 2",
                           "--space model --set optim.lr=1e-3 --max-params 1821085"]),
    "resume": ("continue an interrupted search (finished trials kept, the others from their checkpoints), or "
               "give a search more trials", {"exp": f"{EXP}, or a staged search's"}, {
        "--num-samples": dict(type=int, help="trials in all, above those already run: the same Optuna study and "
                                             "ASHA rungs go on (a finished search takes more trials)"),
        **RAY}, ["experiments/augmentation-20261121-101500",
                 "experiments/augmentation-20261121-101500 --num-samples 24"]),
    "tta": ("score every subset of TTA scales, with and without flip, on a trained checkpoint",
            {"target": f"{EXP}, or a trial's checkpoint folder"},
            {"--trial": dict(help="that trial's last checkpoint instead of the best trial's"),
             **{k: SHARED[k] for k in ("--data", "--set")}},
            ["EXP", "EXP --trial trial_1a2b3c4d", "EXP/trial_1a2b3c4d/checkpoint_000007"]),
    "retrain": ("train the best (or chosen) configurations again for the full schedule",
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
    "predict": ("predict a folder of images and package the submission",
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
    "evaluate": ("score predicted masks against true masks as the course evaluator does",
                 {"pred_dir": "folder of predicted index PNGs (or one holding a single sub-folder)",
                  "truth_dir": f"folder of true masks, e.g. {COURSE.mask_dirs('DATA', 'val')[0]}"}, {},
                 [f"predictions {COURSE.mask_dirs('DATA', 'val')[0]}"]),
}
# search's flags that are not new_record's: the space, the --set list, where it goes, what it starts from
SEARCH_OWN = ("space", "set", "storage_path", "parent", "parent_trial", "warm_start")
LEGACY = {"--resume": "resume", "--retrain": "retrain", "--predict": "predict"}  # earlier spellings
AT_LEAST = {"num_samples": 1, "max_epochs": 1, "grace_period": 1, "seeds": 1, "top": 1, "epochs": 1, "size": 1,
            "cpus_per_trial": 0, "gpus_per_trial": 0, "max_concurrent": 0, "max_params": 0, "seed": 0}
