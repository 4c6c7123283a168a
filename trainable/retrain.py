"""Retrain one configuration for its full schedule and write what a final submission needs.

The output folder holds the weights (``model.pt``, loadable with ``torch.load(...,
weights_only=True)``, and ``model.safetensors``), the resolved config, the parameter count, the
training curves as CSV and PNG, the machine it ran on, and the val mIoU with and without the
configured test-time augmentation. No Ray: a plain loop, one configuration at a time.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from trainable.build import build_run, run_epoch
from trainable.config import Config
from trainable.loop import evaluate

__all__ = ["MODEL_FILE", "machine_info", "retrain"]

MODEL_FILE = "model.pt"
HELD_OUT_NOTE = ("trained on train+val: the val mIoU below was measured on images the model trained on and "
                 "is not a held-out estimate")


def machine_info() -> dict:
    """GPU model and count, CPU, and the torch/CUDA versions, for the report's reproducibility table."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"gpus": gpus, "gpu_count": len(gpus), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if gpus else None,
            "platform": platform.platform()}


def _write_weights(run, cfg: Config, out: Path, metrics: dict) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in run.model.state_dict().items()}
    payload = {"model": state, "config": cfg.to_dict(), "metrics": metrics,
               "normalization": {"mean": run.train_info.mean, "std": run.train_info.std}}
    torch.save(payload, out / MODEL_FILE)
    save_file(state, str(out / "model.safetensors"),
              metadata={"config": json.dumps(payload["config"]), "normalization": json.dumps(payload["normalization"])})


def _plot_curves(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(curves["epoch"], curves["train_loss"], marker="o", ms=3)
    a.set(xlabel="epoch", ylabel="training loss", title="Training loss")
    b.plot(curves["epoch"], curves["val_miou"], marker="o", ms=3, color="tab:green")
    b.set(xlabel="epoch", ylabel="val mIoU (%)", title="Validation mIoU")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def retrain(cfg: Config, out: Path, log=print) -> dict:
    """Train ``cfg`` for ``cfg.train.epochs`` and write everything into ``out`` (created, must not exist)."""
    out = Path(out)
    tta_scales, tta_flip = cfg.train.tta_scales, cfg.train.tta_flip
    # per-epoch validation is plain inference; the configured TTA is measured once at the end
    plain = replace(cfg, train=replace(cfg.train, tta_scales=(1.0,), tta_flip=False))
    run = build_run(plain)
    rows = []
    for epoch in range(cfg.train.epochs):
        m = run_epoch(run, epoch)
        rows.append({k: m[k] for k in ("epoch", "train_loss", "val_miou", "val_acc", "val_loss", "lr")})
        log(f"  epoch {m['epoch']:>3}/{cfg.train.epochs}  train loss {m['train_loss']:.4f}  "
            f"val mIoU {m['val_miou']:.2f}")
    with_tta, _ = evaluate(run.model, run.val_loader, run.device, tta_scales, tta_flip, cfg.train.amp,
                           cfg.train.channels_last)
    summary = {
        "val_miou": rows[-1]["val_miou"],
        "val_acc": rows[-1]["val_acc"],
        "val_miou_tta": with_tta.miou,
        "tta_scales": list(tta_scales),
        "tta_flip": tta_flip,
        "params": run.params,
        "epochs": cfg.train.epochs,
        "seed": cfg.train.seed,
        "train_on": cfg.data.train_on,
        "note": HELD_OUT_NOTE if cfg.data.train_on == "train+val" else "",
    }
    # write into a temporary folder and rename: an interrupted retrain leaves no half-written output
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    curves = pd.DataFrame(rows)
    curves.to_csv(tmp / "curves.csv", index=False)
    _plot_curves(curves, tmp / "curves.png")
    (tmp / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    (tmp / "machine.json").write_text(json.dumps(machine_info(), indent=2) + "\n")
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _write_weights(run, cfg, tmp, {"val_miou": summary["val_miou"], "val_acc": summary["val_acc"],
                                   "val_miou_tta": summary["val_miou_tta"]})
    os.replace(tmp, out)
    return summary
