"""Trial cost benchmark: what scoring at the masks' own resolution costs against the training it scores.

    python -m bench.trial_cost [--n-train 400] [--n-val 100] [--threads 1]

At the CPU defaults (64 px training, batch 8, the config's model and loss), on synthetic sets
written with 512 px masks (as CelebAMask-HQ) and with 64 px masks, side by side in one run: one
training epoch and the validation pass after it (scored at each mask's own resolution, as the
graders do), each timed after a first untimed epoch (which builds the decoded-array cache), the
timed epochs of the two interleaved and the fastest of each kept. The last line is the ratio the
target is stated on.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from bench.data_pipeline import machine, rates
from search_spaces.hardware import HARDWARE
from trainable.config import Config
from trainable.loop import evaluate, train_one_epoch
from trainable.run import build_run
from trainable.synthetic import generate


def trial_cost(root: Path, cache: Path, repeat: int) -> tuple[float, float]:
    """(training epoch, validation pass) in seconds on the set at ``root``, at the CPU defaults."""
    cfg = Config()
    for key, value in HARDWARE["cpu"].config.items():
        cfg.set(key, value)
    cfg.set("data.root", str(root))
    cfg.set("data.cache_dir", str(cache))
    run = build_run(cfg)

    def train() -> None:
        train_one_epoch(run.model, run.train_loader, run.criterion, run.optimizer, run.scheduler, run.device,
                        cfg.train, run.aux_criterion, cfg.loss.aux_weight)

    def validate() -> None:
        evaluate(run.model, run.val_loader, run.device, amp=cfg.train.amp, channels_last=cfg.train.channels_last)

    train(), validate()  # the first epoch decodes every image into the array cache
    per_second = rates({"train": train, "validate": validate}, 1, repeat)  # interleaved, the fastest of each
    return 1 / per_second["train"], 1 / per_second["validate"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=400, help="training pairs (the CPU default uses 400)")
    ap.add_argument("--n-val", type=int, default=100, help="validation pairs (the CPU default uses 100)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a trial on one CPU)")
    ap.add_argument("--repeat", type=int, default=3, help="timed epochs of each, interleaved, the fastest kept")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}; {args.threads} torch thread(s)")
    print(f"{args.n_train} training pairs at 64 px, batch 8; {args.n_val} validation pairs scored at their masks' size")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mask_px in (64, 512):
            root = generate(Path(tmp) / f"set{mask_px}", n_train=args.n_train, n_val=args.n_val, n_test=0,
                            size=mask_px, seed=0)
            rows[mask_px] = trial_cost(root, Path(tmp) / "cache", args.repeat)
    print(f"{'masks':>8} {'training epoch':>15} {'validation pass':>16} {'ratio':>6}")
    for mask_px, (train_s, val_s) in rows.items():
        print(f"{mask_px:>5} px {train_s:>14.2f}s {val_s:>15.2f}s {val_s / train_s:>6.3f}")
    (train_s, val_s) = rows[512]
    print(f"validation pass 512 px / 64 px masks = {val_s / rows[64][1]:.2f}")
    print(f"validation pass / training epoch = {val_s / train_s:.3f} (512 px masks)")


if __name__ == "__main__":
    main()
