"""Search face-parsing hyperparameters with Ray Tune: ASHA early stopping + Optuna TPE sampling.

    python launch.py --space augmentation                      # built-in synthetic data, this machine
    python launch.py --space loss --data DATA --gpus-per-trial 0.5
    python launch.py --space augmentation --ablation --seeds 3 # one factor at a time
    python launch.py --space tta --checkpoint PATH             # score TTA scale/flip combinations
    python launch.py --resume experiments/augmentation-...     # continue an interrupted search
    python launch.py --retrain EXP [--top 3 --seeds 3 --epochs 60 --train-on train+val]
    python launch.py --predict EXP/retrain/trial_x/model.pt --images DATA/test/test_image --out preds --zip sub.zip
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from search_spaces import SPACES, get_space
from trainable.config import flatten, parse_value
from trainable.errors import UserError, cli_errors

# Ray, torch, Optuna and the analysis modules are imported where they are first needed: a refused
# argument or data set is then reported in seconds, before any of them loads.

# Defaults by hardware. On a CPU the whole default search is sized to finish in about ten minutes
# on two cores: small images, a subset of the synthetic set, few epochs, more trials than rungs.
CPU_DEFAULTS = {"image_size": 64, "max_epochs": 8, "num_samples": 12, "grace_period": 2, "reduction_factor": 3,
                "cpus_per_trial": 1, "gpus_per_trial": 0.0, "batch_size": 8, "max_train": 400, "max_val": 100,
                "num_workers": 0}
GPU_DEFAULTS = {"image_size": 512, "max_epochs": 30, "num_samples": 32, "grace_period": 3, "reduction_factor": 3,
                "gpus_per_trial": 1.0, "batch_size": 8, "max_train": 0, "max_val": 0}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``error: ...`` line, like every other refusal here."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see python launch.py --help\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python launch.py", description=__doc__.split("\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    p.add_argument("--space", help=f"search space: {', '.join(SPACES)}")
    p.add_argument("--data", help="data folder (course or generic layout); omitted: the built-in synthetic set")
    p.add_argument("--num-samples", type=int, help="trials to sample (CPU default 12, GPU default 32)")
    p.add_argument("--max-epochs", type=int, help="epochs of a full trial (ASHA's max_t)")
    p.add_argument("--grace-period", type=int, help="epochs before ASHA may stop a trial")
    p.add_argument("--reduction-factor", type=float, help="ASHA keeps 1/reduction_factor of trials per rung")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial; fractions pack small models (e.g. 0.25)")
    p.add_argument("--max-concurrent", type=int, default=0, help="trials running at once (0 = as resources allow)")
    p.add_argument("--address", help="connect to a running Ray cluster (e.g. auto) instead of starting one")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="interface the dashboard of a local run listens on (default 127.0.0.1: this machine only)")
    p.add_argument("--storage-path", default="experiments", help="where experiments go (default ./experiments)")
    p.add_argument("--name", help="experiment name (default <space>-<date>-<time>)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial")
    p.add_argument("--resume", metavar="EXP_DIR", help="continue an interrupted experiment")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a base config key, e.g. --set optim.lr=1e-3 (repeatable)")
    p.add_argument("--max-params", type=int, help="parameter budget (default 2,000,000; 0 = none)")
    p.add_argument("--ablation", action="store_true", help="one factor at a time from the baseline over its levels")
    p.add_argument("--seeds", type=int, default=1, help="repeats of each ablation configuration")
    p.add_argument("--checkpoint", help="trained checkpoint for --space tta")
    r = p.add_argument_group("retrain the best configuration")
    r.add_argument("--retrain", metavar="EXP_DIR", help="retrain the best (or chosen) configurations of an experiment")
    r.add_argument("--trial", help="retrain this trial (e.g. trial_1a2b3c4d) instead of the best")
    r.add_argument("--top", type=int, default=1, help="retrain the best K configurations")
    r.add_argument("--epochs", type=int, help="epochs of the full schedule (default: the experiment's)")
    r.add_argument("--train-on", choices=("train", "train+val"), help="training data (train+val: no held-out val)")
    r.add_argument("--out", help="output folder (retrain default EXP_DIR/retrain; required for --predict)")
    q = p.add_argument_group("predict a folder and package the submission")
    q.add_argument("--predict", metavar="CHECKPOINT", help="model.pt of a retrain (or a trial checkpoint)")
    q.add_argument("--images", help="folder of images to predict")
    q.add_argument("--tta", help="scales, e.g. 0.75,1,1.25 (default: the checkpoint's)")
    q.add_argument("--flip", action="store_true", help="add flipped predictions (left/right labels swapped)")
    q.add_argument("--zip", help="also write the masks into this zip, under one top folder")
    q.add_argument("--size", type=int, help="mask side in pixels (default: each input image's size)")
    q.add_argument("--force", action="store_true", help="replace an existing output folder or zip")
    args = p.parse_args(argv)
    if not (args.space or args.resume or args.retrain or args.predict):
        p.error("--space is required (or --resume EXP_DIR, --retrain EXP_DIR, --predict CHECKPOINT)")
    if args.predict and not (args.images and args.out):
        p.error("--predict needs --images DIR and --out DIR")
    for name in ("top", "epochs", "size", "num_samples", "max_epochs", "grace_period", "seeds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"{_flag(name)} {value}: must be at least 1")
    for name in ("cpus_per_trial", "gpus_per_trial", "max_params", "max_concurrent", "seed"):
        value = getattr(args, name)
        if value is not None and value < 0:
            p.error(f"{_flag(name)} {value}: must not be negative")
    if args.reduction_factor is not None and args.reduction_factor <= 1:
        p.error(f"--reduction-factor {args.reduction_factor:g}: must be greater than 1 (e.g. 3 keeps a third "
                f"of the trials at each rung)")
    if args.max_epochs is not None and args.grace_period is not None and args.grace_period > args.max_epochs:
        p.error(f"--grace-period {args.grace_period}: more than --max-epochs {args.max_epochs}; ASHA could never "
                f"stop a trial early: choose at most {args.max_epochs}")
    if args.name is not None and (not args.name.strip() or args.name in (".", "..")
                                  or any(sep in args.name for sep in "/\\")):
        p.error(f"--name {args.name!r}: must be a plain folder name (no '/' or '..'); use --storage-path to "
                f"choose where it goes")
    if args.name is not None and len(args.name.encode()) > 200:  # with Ray's suffixes, under the 255-byte limit
        p.error(f"--name {args.name[:20]}...: {len(args.name.encode())} bytes long; choose a name of at most 200")
    return args


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UserError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set optim.lr=1e-3")
        out[key.strip()] = parse_value(key.strip(), value.strip())
    return out


def settings(args: argparse.Namespace, gpus: float) -> dict:
    """Hardware defaults, then the user's explicit flags."""
    s = dict(GPU_DEFAULTS if gpus else CPU_DEFAULTS)
    if gpus:
        s["cpus_per_trial"] = max(1, int((os.cpu_count() or 2) // max(1, gpus)))
    for key in ("num_samples", "max_epochs", "grace_period", "reduction_factor", "cpus_per_trial", "gpus_per_trial"):
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if gpus:  # loader workers from the trial's own CPUs, one left for the training process
        s["num_workers"] = max(1, int(s["cpus_per_trial"]) - 1)
    if args.grace_period is not None and args.grace_period > s["max_epochs"]:
        raise UserError(f"--grace-period {args.grace_period}: more than the {s['max_epochs']} epochs of a full trial "
                        f"here; ASHA could never stop a trial early: choose at most {s['max_epochs']} or raise "
                        f"--max-epochs")
    s["grace_period"] = min(s["grace_period"], s["max_epochs"])  # a hardware default longer than --max-epochs
    return s


def base_overrides(args: argparse.Namespace, s: dict, data_root: str) -> dict:
    """Config keys set by the run (hardware size, data, budget) and by ``--set``, which wins."""
    out = {"data.root": data_root, "data.image_size": s["image_size"], "data.max_train": s["max_train"],
           "data.max_val": s["max_val"], "data.num_workers": s["num_workers"], "train.epochs": s["max_epochs"],
           "train.batch_size": s["batch_size"], "train.seed": args.seed}
    if args.max_params is not None:
        out["model.max_params"] = args.max_params
    out.update(parse_overrides(args.set))
    return out


def summarize(results, exp_dir: Path, meta: dict) -> None:
    baseline = meta["baseline"]
    rows, diverged = [], []
    for r in results:
        reason = (r.metrics or {}).get("stop_reason")
        if reason:  # its loss became NaN/inf: whatever it scored before, it is no candidate for best
            diverged.append((Path(r.path).name, reason))
            continue
        df = r.metrics_dataframe
        if df is None or "val_miou" not in df or df["val_miou"].isna().all():
            continue
        flat = flatten(r.config)
        is_baseline = all(flat.get(k) == v for k, v in baseline.items())
        rows.append((Path(r.path).name, float(df["val_miou"].max()), int(df["epoch"].max()), flat, is_baseline))
    for name, reason in diverged:
        print(f"note: {name} {reason}")
    if not rows:
        print(f"no trial reported a result; see the trial logs under {exp_dir}")
        return
    name, miou, epochs, flat, _ = max(rows, key=lambda x: x[1])
    print()
    print(f"best trial      {name}: val mIoU {miou:.2f} (epochs trained {epochs})")
    for key in meta["searched"]:
        print(f"  {key:<28} {flat.get(key)}")
    for name, miou, epochs, _, is_baseline in rows:
        if is_baseline:
            print(f"baseline        {name}: val mIoU {miou:.2f} (epochs trained {epochs})")
            break
    stopped = sum(1 for row in rows if row[2] < meta["settings"]["max_epochs"])
    print(f"trials          {len(rows)} reported, {stopped} stopped before the last epoch"
          + (f", {len(diverged)} diverged" if diverged else ""))
    print(f"experiment      {exp_dir}")
    if not meta["ablation"]:
        from search_spaces.searcher import JOURNAL_NAME

        print(f"optuna study    optuna-dashboard {exp_dir / JOURNAL_NAME}")
    print("next:")
    print(f"  python -m analysis {exp_dir}")
    print(f"  python launch.py --retrain {exp_dir}")


def new_experiment(args: argparse.Namespace) -> tuple[Path, dict]:
    """The folder and the ``experiment.json`` record of a new search, after checking its data, its
    baseline model and its storage; nothing of the experiment is written yet."""
    space = get_space(args.space)
    overrides = parse_overrides(args.set)  # a bad --set is refused before torch loads or data is generated
    space.base_config(overrides)
    import torch

    gpus = torch.cuda.device_count() if args.gpus_per_trial is None or args.gpus_per_trial > 0 else 0
    s = settings(args, gpus)
    storage = Path(args.storage_path).expanduser().resolve()
    name = args.name or f"{args.space}{'-ablation' if args.ablation else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp_dir = storage / name
    if "://" not in args.storage_path:
        check_storage_early(storage)
    if exp_dir.exists():
        raise UserError(f"{exp_dir}: already exists; continue it with --resume {exp_dir} or choose another --name")
    data_root = resolve_data(args.data, s["image_size"])
    base = space.base_config(base_overrides(args, s, data_root))
    preflight(base)
    flat_base = flatten(base.to_dict())
    meta = {"space": args.space, "name": name, "ablation": args.ablation, "seeds": args.seeds, "seed": args.seed,
            "settings": s, "max_concurrent": args.max_concurrent, "base_config": base.to_dict(),
            "searched": list(space.params), "levels": space.levels,
            "baseline": {k: flat_base[k] for k in {*space.params, *space.levels}},
            "data": data_root, "synthetic": args.data is None, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(["python", "launch.py", *sys.argv[1:]])}
    from search_spaces.experiment import check_storage

    check_storage(storage, None)
    return exp_dir, meta


def run_search(args: argparse.Namespace) -> int:
    space = get_space(args.space) if args.space else None
    if args.space == "tta":
        return run_tta(args)

    resume = args.resume is not None
    if resume:
        exp_dir = Path(args.resume).expanduser().resolve()
        meta = read_experiment(exp_dir)
    else:
        if args.ablation and space is None:
            raise UserError("--ablation needs a training space")
        exp_dir, meta = new_experiment(args)

    from analysis.load import EXPERIMENT_FILE
    from search_spaces.experiment import build_tuner, check_storage, settle, start_ray

    start_ray(args.address, args.dashboard_host)
    check_storage(exp_dir.parent, args.address)
    if not resume:
        exp_dir.mkdir(parents=True)
        (exp_dir / EXPERIMENT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    s = meta["settings"]
    print(f"results:        {exp_dir}")
    mode = "ablation (one factor at a time)" if meta["ablation"] else (
        f"ASHA (max {s['max_epochs']} epochs, grace {s['grace_period']}, reduction {s['reduction_factor']}) "
        f"+ Optuna TPE (seed {meta['seed']}), {s['num_samples']} trials")
    print(f"search:         space '{meta['space']}', {mode}")
    print(f"each trial:     {s['cpus_per_trial']} CPU, {s['gpus_per_trial']} GPU, "
          f"{meta['base_config']['data']['image_size']} px")
    tuner = build_tuner(exp_dir, meta, restore=resume)
    results = tuner.fit()
    settle(results, exp_dir, meta)
    summarize(results, exp_dir, meta)
    return 0


def check_storage_early(storage: Path) -> None:
    """Refuse a storage folder that could not be created or written to, before any work and without
    creating anything (the full check, which writes a probe file, runs once the data passed)."""
    probe = storage
    try:
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
    except OSError as e:  # e.g. a name longer than the file system allows
        raise UserError(f"{storage}: storage path is not usable ({e.strerror}); pass a writable --storage-path") \
            from None
    if not probe.is_dir():
        raise UserError(f"{storage}: storage path is not writable ({probe} is not a folder); "
                        f"pass a writable --storage-path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{storage}: storage path is not writable ({probe} is read-only); "
                        f"pass a writable --storage-path")


def read_experiment(exp_dir: Path) -> dict:
    """The ``experiment.json`` record of a folder launch.py wrote; a one-line error for anything else."""
    from analysis.load import EXPERIMENT_FILE

    meta_path = exp_dir / EXPERIMENT_FILE
    hint = "pass the folder that launch.py printed as 'experiment'"
    if not meta_path.is_file():
        raise UserError(f"{exp_dir}: not an experiment directory (no {EXPERIMENT_FILE}); {hint}")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{meta_path}: unreadable ({e}); {hint}") from None
    missing = [k for k in ("space", "name", "settings", "base_config") if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise UserError(f"{meta_path}: not an experiment record written by launch.py (no {', '.join(missing)}); "
                        f"{hint}")
    return meta


def resolve_data(data: str | None, image_size: int) -> str:
    if data:
        try:
            Path(data).expanduser().is_dir()
        except OSError as e:  # e.g. a name longer than the file system allows
            raise UserError(f"{data}: not a usable data folder ({e.strerror}); pass an existing folder with --data") \
                from None
        return str(Path(data).expanduser().resolve())
    from trainable.synthetic import ensure_synthetic

    root = ensure_synthetic(size=min(image_size, 512))
    print(f"data:           no --data given: using the built-in synthetic face-parsing set at {root}")
    return str(root)


def preflight(base) -> None:
    """Check the baseline model and the data before any trial starts: errors here cost seconds.
    The model goes first: its budget check is quick, a first pass over a large data set is not."""
    from trainable.data import scan_split
    from trainable.models import build_model

    build_model(base.model, aux_head=base.loss.aux_weight > 0)
    for split in ("train", "val"):
        info = scan_split(base.data.root, split, cache_dir=base.data.cache_dir)
        for note in info.notes[:5]:
            print(f"note: {note}")


def run_tta(args: argparse.Namespace) -> int:
    from search_spaces.tta import combinations_to_score
    from trainable.tta_search import print_tta_table, score_tta

    if not args.checkpoint:
        raise UserError("--space tta needs --checkpoint PATH (a trial checkpoint folder or checkpoint.pt)")
    rows = score_tta(args.checkpoint, combinations_to_score(), data=args.data, overrides=parse_overrides(args.set))
    print_tta_table(rows)
    return 0


def run_retrain(args: argparse.Namespace) -> int:
    from analysis.load import load_experiment
    from analysis.tables import trial_summary
    from trainable.config import Config
    from trainable.retrain import retrain

    read_experiment(Path(args.retrain).expanduser())  # a one-line refusal for a folder that is not one
    exp = load_experiment(args.retrain)
    summary = trial_summary(exp.trials, exp.epochs, exp.meta["baseline"]).dropna(subset=["val_miou"])
    if args.trial:
        name = args.trial if args.trial.startswith("trial_") else f"trial_{args.trial}"
        chosen = summary[summary["trial"] == name]
        if chosen.empty:
            raise UserError(f"{exp.path}: no trial {args.trial!r} with results; trials are "
                            f"{', '.join(summary['trial'].head(8))}{' ...' if len(summary) > 8 else ''}")
    else:
        chosen = summary.sort_values("val_miou", ascending=False).head(args.top)
    out_root = Path(args.out or exp.path / "retrain").expanduser()
    overrides = parse_overrides(args.set)
    results = []
    for _, row in chosen.iterrows():
        flat = flatten(json.loads((exp.path / row["trial"] / "params.json").read_text()))
        if args.epochs:
            flat["train.epochs"] = args.epochs
        if args.train_on:
            flat["data.train_on"] = args.train_on
        flat.update(overrides)
        for k in range(args.seeds):
            cfg = Config.from_dict({**flat, "train.seed": int(flat["train.seed"]) + k})
            out = out_root / (row["trial"] + (f"-seed{cfg.train.seed}" if args.seeds > 1 else ""))
            if out.exists():
                raise UserError(f"{out}: already exists; choose another --out or remove it")
            print(f"retraining {row['trial']} (search val mIoU {row['val_miou']:.2f}), seed {cfg.train.seed}, "
                  f"{cfg.train.epochs} epochs on {cfg.data.train_on} -> {out}")
            results.append({"trial": row["trial"], "out": str(out), **retrain(cfg, out)})
    _print_retrain(results)
    return 0


def _print_retrain(results: list[dict]) -> None:
    import pandas as pd

    df = pd.DataFrame(results)
    print()
    for trial, g in df.groupby("trial", sort=False):
        scales = ",".join(f"{s:g}" for s in g["tta_scales"].iloc[0])
        tta = f"scales {scales}{' + flip' if g['tta_flip'].iloc[0] else ''}"
        if len(g) > 1:
            print(f"{trial}: val mIoU {g['val_miou'].mean():.2f} +- {g['val_miou'].std():.2f} over {len(g)} seeds, "
                  f"with TTA ({tta}) {g['val_miou_tta'].mean():.2f} +- {g['val_miou_tta'].std():.2f}")
        else:
            print(f"{trial}: val mIoU {g['val_miou'].iloc[0]:.2f}, with TTA ({tta}) {g['val_miou_tta'].iloc[0]:.2f}")
        print(f"  {g['params'].iloc[0]:,} parameters; weights: {g['out'].iloc[0]}/model.pt")
        if g["note"].iloc[0]:
            print(f"  note: {g['note'].iloc[0]}")
    best = df.loc[df["val_miou"].idxmax()]
    print("next:")
    print(f"  python launch.py --predict {best['out']}/model.pt --images DATA/test/test_image --out predictions "
          f"--zip submission.zip")


def run_predict(args: argparse.Namespace) -> int:
    from trainable.predict import predict_folder

    scales = None
    if args.tta is not None:
        from trainable.config import Config, ConfigError

        try:
            cfg = Config()
            cfg.set("train.tta_scales", parse_value("train.tta_scales", args.tta))
            scales = cfg.train.tta_scales
        except ConfigError:
            raise UserError(f"--tta {args.tta!r}: expected positive scales separated by commas, "
                            f"e.g. --tta 0.75,1,1.25") from None
        if not scales:
            raise UserError(f"--tta {args.tta!r}: expected at least one scale, e.g. --tta 1")
    result = predict_folder(args.predict, args.images, args.out, scales=scales, flip=args.flip or None,
                            size=args.size, zip_path=args.zip, force=args.force)
    for note in result["notes"][:5]:
        print(f"note: {note}")
    if len(result["notes"]) > 5:
        print(f"note: ... and {len(result['notes']) - 5} more files ignored")
    print(f"predicted {result['images']} images -> {result['out']} (scales {result['scales']}, "
          f"flip {'on' if result['flip'] else 'off'}, {result['params']:,} parameters)")
    if result["zip"]:
        print(f"zip: {result['zip']}")
    return 0


@cli_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.retrain:
        return run_retrain(args)
    if args.predict:
        return run_predict(args)
    # snapshot the experiment state at every step, not every ~10 s: a killed driver then loses
    # (almost) nothing, and --resume neither reruns nor forgets a finished trial
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    return run_search(args)


if __name__ == "__main__":
    sys.exit(main())
