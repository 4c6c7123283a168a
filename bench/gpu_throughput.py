"""GPU benchmark: training images/s by precision and memory format, input-pipeline headroom, MFU,
and fractional-GPU sharing.

    python -m bench.gpu_throughput                 # on a CUDA machine, about 5 minutes
    python -m bench.gpu_throughput --smoke         # a few steps on whatever device there is

Rows, measured side by side in one run:

1. ResNet-50 DeepLabV3+ and the small from-scratch Unet (mobilenetv3_small) at 512 px: fp32 eager
   vs bf16 autocast + channels_last, and the latter under ``torch.compile``; model FLOPs per image
   from ``torch.utils.flop_counter`` and the model FLOPs utilisation against the GPU's bf16 peak.
2. The project's real epoch (``loop.train_one_epoch``) fed by its DataLoader (decoded-array cache,
   workers, pinned memory) vs the same loop fed by a batch already on the GPU.
3. Aggregate images/s of 1, 2 and 4 small-model trainings sharing one GPU through Ray's
   fractional GPUs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

from trainable.config import Config, ModelConfig
from trainable.loop import train_one_epoch
from trainable.models import build_model
from trainable.run import build_run

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}  # dense
MODELS = {
    "resnet50-deeplabv3plus": ModelConfig(arch="deeplabv3plus", encoder="tu-resnet50", decoder_width=256,
                                          max_params=0),
    "small-unet": ModelConfig(),
}


def peak_tflops(device: torch.device, given: float) -> float:
    if given or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 0.0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_fn(model, optimizer, bf16: bool, channels_last: bool):
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(images: torch.Tensor, masks: torch.Tensor) -> None:
        images = images.to(memory_format=memory_format)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def flops_per_image(cfg: ModelConfig, size: int, device: torch.device) -> float:
    """Model FLOPs of one training step (forward + backward) per image, as torch counts them."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg).to(device).train()
    images = torch.randn(2, 3, size, size, device=device)
    masks = torch.randint(0, 19, (2, size, size), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(images), masks).backward()
    return counter.get_total_flops() / 2


def images_per_second(cfg: ModelConfig, size: int, batch: int, steps: int, device: torch.device, bf16: bool,
                      channels_last: bool, compile_model: bool) -> float:
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    step = train_step_fn(torch.compile(model) if compile_model else model, optimizer, bf16, channels_last)
    images = torch.randn(batch, 3, size, size, device=device)
    masks = torch.randint(0, 19, (batch, size, size), device=device)
    for _ in range(max(3, steps // 5)):  # warm-up: cudnn autotuning, compilation, allocator
        step(images, masks)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(images, masks)
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def model_rows(args, device: torch.device, peak: float) -> list[tuple]:
    rows = []
    cuda = device.type == "cuda"
    for name, cfg in MODELS.items():
        batch = args.batch or (16 if "resnet" in name else 32)
        flops = flops_per_image(cfg, args.size, device)
        variants = [("fp32 eager", False, False, False), ("bf16 + channels_last", cuda, cuda, False)]
        if args.compile:
            variants.append(("bf16 + channels_last + compile", cuda, cuda, True))
        base = None
        for label, bf16, cl, comp in variants:
            try:
                ips = images_per_second(cfg, args.size, batch, args.steps, device, bf16, cl, comp)
            except Exception as e:  # e.g. no compiler for torch.compile: report, do not stop the run
                rows.append((name, label, "failed", type(e).__name__, "", ""))
                continue
            base = base or ips
            mfu = f"{100 * ips * flops / (peak * 1e12):.1f}%" if peak else "n/a"
            rows.append((name, label, f"{ips:.1f}", f"{ips / base:.2f}", f"{flops / 1e9:.0f}", mfu))
    return rows


def pipeline_rows(args, device: torch.device) -> list[tuple]:
    """The real epoch, loader-fed vs fed one batch already on the device."""
    cfg = Config.from_dict({"data": {"image_size": args.size, "num_workers": max(1, (os.cpu_count() or 2) - 1),
                                     "max_train": args.loader_images, "max_val": 8},
                            "train": {"batch_size": args.batch or 16, "epochs": 1},
                            "model": {"max_params": 0}, "loss": {"aux_weight": 0.0}})
    run = build_run(cfg)
    train_one_epoch(run.model, run.train_loader, run.criterion, run.optimizer, run.scheduler, run.device,
                    cfg.train)  # warm-up: workers, cudnn autotuning, page cache
    images, masks = next(iter(run.train_loader))
    fixed = [(images.to(device), masks.to(device))] * len(run.train_loader)
    n = len(run.train_loader) * cfg.train.batch_size
    rates = {}
    for label, source in (("synthetic batch on the device", fixed), ("DataLoader (cache, workers, pinned)",
                                                                      run.train_loader)):
        start = time.perf_counter()
        train_one_epoch(run.model, source, run.criterion, run.optimizer, run.scheduler, run.device, cfg.train)
        rates[label] = n / (time.perf_counter() - start)  # train_one_epoch syncs once at its end
    base = rates["synthetic batch on the device"]
    return [("small-unet (real epoch)", label, f"{r:.1f}", f"{r / base:.2f}", "", "") for label, r in rates.items()]


def sharing_rows(args) -> list[tuple]:
    """Aggregate images/s of k concurrent small-model trainings, each on 1/k of the GPU."""
    import ray

    ray.init(num_gpus=1, include_dashboard=False, log_to_driver=False)

    @ray.remote
    def train_for(cfg: ModelConfig, size: int, batch: int, start_at: float, seconds: float) -> int:
        dev = torch.device("cuda")
        model = build_model(cfg).to(dev).to(memory_format=torch.channels_last).train()
        step = train_step_fn(model, torch.optim.AdamW(model.parameters(), lr=1e-4), True, True)
        images = torch.randn(batch, 3, size, size, device=dev)
        masks = torch.randint(0, 19, (batch, size, size), device=dev)
        while time.time() < start_at:  # warm up until every task is ready, then count together
            step(images, masks)
            torch.cuda.synchronize()
        done = 0
        while time.time() < start_at + seconds:
            step(images, masks)
            done += batch
        torch.cuda.synchronize()
        return done

    rows, base = [], None
    for k in (1, 2, 4):
        start_at = time.time() + 30
        refs = [train_for.options(num_gpus=1 / k).remote(MODELS["small-unet"], args.size, 16, start_at,
                                                            args.share_seconds) for _ in range(k)]
        total = sum(ray.get(refs)) / args.share_seconds
        base = base or total
        rows.append(("small-unet", f"{k} trial(s) x {1 / k:.2g} GPU", f"{total:.1f}", f"{total / base:.2f}", "", ""))
    ray.shutdown()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=0, help="0 = 16 for ResNet-50, 32 for the small model")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows")
    ap.add_argument("--loader-images", type=int, default=800)
    ap.add_argument("--share-seconds", type=float, default=20.0)
    ap.add_argument("--peak-tflops", type=float, default=0.0, help="bf16 dense peak for MFU (default: by GPU name)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, any device: checks the script runs")
    args = ap.parse_args()
    if args.smoke:
        args = replace_args(args, size=64, batch=2, steps=2, compile=False, loader_images=8, share_seconds=1.0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    peak = peak_tflops(device, args.peak_tflops)
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU (CPU)"
    print(f"machine: {what}; {os.cpu_count()} CPU cores; {platform.platform()}; torch {torch.__version__}; "
          f"bf16 peak {peak or 'unknown'} TFLOPS")
    print(f"{args.size} px, {args.steps} timed steps; fp32 eager uses PyTorch's defaults (TF32 convolutions)")
    rows = model_rows(args, device, peak) + pipeline_rows(args, device)
    if device.type == "cuda":
        rows += sharing_rows(args)
    header = ("model", "setting", "images/s", "ratio", "GFLOP/img", "MFU")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")


def replace_args(args: argparse.Namespace, **changes) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), **changes})


if __name__ == "__main__":
    main()
