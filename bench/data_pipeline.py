"""Data pipeline benchmark: is the training-sample path as fast as bare albumentations?

    python -m bench.data_pipeline [--size 512] [--n 160] [--batch 8]

Measured side by side in one run, on a synthetic set written as JPEG images and PNG masks:

- the training-sample path (decode + augment + normalise, one process) with and without the
  decoded-array cache, against the same albumentations chain applied to arrays decoded beforehand;
- decoding a pair (JPEG + PNG, resize) against reading it from the decoded-array cache;
- a DataLoader with 2 workers against twice the throughput of one worker.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import albumentations
import torch
from torch.utils.data import DataLoader

from trainable.array_cache import build_array_cache, cache_bytes
from trainable.augment import train_transform
from trainable.config import AugConfig
from trainable.dataset import FaceParsingDataset
from trainable.decode import decode_pair
from trainable.loaders import EpochBatchSampler
from trainable.scan import scan_split
from trainable.synthetic import generate


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}, "
            f"albumentations {albumentations.__version__}")


def rate(fn, n: int, repeat: int = 3) -> float:
    """Items per second of ``fn()`` processing ``n`` items, best of ``repeat`` (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def rates(fns: dict, n: int, repeat: int = 5) -> dict:
    """``rate`` of each of ``fns`` (name: function), their runs interleaved: a machine that slows
    down or speeds up mid-run moves every figure alike, not only the ones measured then."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: n / seconds for name, seconds in best.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="image side, as CelebAMask-HQ masks (default 512)")
    ap.add_argument("--n", type=int, default=160, help="training pairs (default 160)")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(tmp / "data", n_train=args.n, n_val=1, n_test=0, size=args.size, seed=0)
        info = scan_split(root, "train")
        images, masks = info.images, info.masks
        transform = train_transform(AugConfig(cutout_p=0.5), args.size, info.mean, info.std)

        start = time.perf_counter()
        arrays = build_array_cache(images, masks, args.size, False, tmp / "cache", workers=os.cpu_count() or 1)
        build_s = time.perf_counter() - start

        decoded = [decode_pair(i, m, args.size, False) for i, m in zip(images, masks, strict=True)]
        plain = FaceParsingDataset(images, masks, transform, size=args.size)
        cached = FaceParsingDataset(images, masks, transform, size=args.size, arrays=arrays)
        sampler = EpochBatchSampler(len(images), args.batch, shuffle=True, drop_last=False)

        def bare() -> None:
            for image, mask in decoded:
                transform(image=image, mask=mask)

        def project(dataset: FaceParsingDataset):
            def samples() -> None:  # each sample dropped once made, as bare() drops its own
                for batch in sampler:
                    for key in batch:
                        dataset[key]
            return samples

        def loader_rate(workers: int) -> float:
            loader = DataLoader(cached, batch_sampler=sampler, num_workers=workers, persistent_workers=True,
                                prefetch_factor=4)
            list(loader)  # start the workers and warm the page cache
            return rate(lambda: list(loader), len(images))

        n = len(images)
        r_bare, r_cache_path, r_decode_path = rates(
            {"bare": bare, "cache": project(cached), "decode": project(plain)}, n).values()
        def decode_each() -> None:
            for image, mask in zip(images, masks, strict=True):
                decode_pair(image, mask, args.size, False)

        def read_each() -> None:
            for i in range(n):
                arrays[i]

        r_decode, r_read = rates({"decode": decode_each, "read": read_each}, n).values()
        r_one, r_two = loader_rate(1), loader_rate(2)

    rows = [
        ("bare albumentations chain on decoded arrays", f"{r_bare:.0f}", "1.00 (reference)"),
        ("training-sample path, decoded-array cache", f"{r_cache_path:.0f}", f"{r_cache_path / r_bare:.2f} x bare"),
        ("training-sample path, decoding each file", f"{r_decode_path:.0f}", f"{r_decode_path / r_bare:.2f} x bare"),
        ("decode JPEG + PNG and resize", f"{r_decode:.0f}", "1.00 (reference)"),
        ("read from the decoded-array cache", f"{r_read:.0f}", f"{r_read / r_decode:.1f} x decode"),
        ("DataLoader, 1 worker (cache)", f"{r_one:.0f}", "1.00 (reference)"),
        ("DataLoader, 2 workers (cache)", f"{r_two:.0f}", f"{r_two / (2 * r_one):.2f} x 2 x one worker"),
    ]
    print(f"machine: {machine()}")
    print(f"data: {n} synthetic pairs, {args.size} px JPEG + PNG; train augmentation with cutout; batches of "
          f"{args.batch}; cache built in {build_s:.1f} s "
          f"({cache_bytes(n, args.size, (args.size, args.size)) / 2**20:.0f} MiB)")
    print()
    print(f"| {'path':<45} | {'samples/s':>9} | {'ratio':<24} |")
    print(f"|{'-' * 47}|{'-' * 11}|{'-' * 26}|")
    for name, value, ratio in rows:
        print(f"| {name:<45} | {value:>9} | {ratio:<24} |")


if __name__ == "__main__":
    main()
