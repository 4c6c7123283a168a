"""The defaults a search takes from the hardware it runs on: a CPU-only cluster or one with GPUs.

Which of the two a search gets, and each trial's CPUs and GPUs, follow the cluster it runs on
(``search_spaces.driver.cluster``); a flag or ``--set`` overrides any of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["HARDWARE", "Hardware"]


@dataclass(frozen=True)
class Hardware:
    """Defaults by hardware: trial config keys and search settings that a flag or ``--set`` overrides."""

    config: dict[str, Any]
    num_samples: int
    grace_period: int
    reduction_factor: float


# On a CPU the whole default search is sized to finish in about ten minutes on two cores: small
# images, a subset of the synthetic set, few epochs, more trials than rungs.
HARDWARE = {
    "cpu": Hardware(config={"data.image_size": 64, "train.epochs": 8, "train.batch_size": 8, "data.max_train": 400,
                            "data.max_val": 100, "data.num_workers": 0},
                    num_samples=12, grace_period=2, reduction_factor=3),
    "gpu": Hardware(config={"data.image_size": 512, "train.epochs": 30, "train.batch_size": 8, "data.max_train": 0,
                            "data.max_val": 0},
                    num_samples=32, grace_period=3, reduction_factor=3),
}
