"""Optimiser: learning rate and weight decay (log scale), batch size, schedule and warmup."""

from search_spaces.base import SearchSpace, choice, loguniform, uniform

SPACE = SearchSpace(
    name="optimizer",
    description="learning rate, weight decay, batch size, schedule and warmup",
    params={
        "optim.lr": loguniform(1e-4, 1e-2),
        "optim.weight_decay": loguniform(1e-5, 1e-1),
        "train.batch_size": choice([4, 8, 16]),
        "optim.schedule": choice(["poly", "cosine"]),
        "optim.warmup_epochs": uniform(0.0, 3.0),
    },
    levels={
        "optim.lr": [5e-4, 2e-3, 5e-3],
        "optim.weight_decay": [1e-4, 1e-2],
    },
)
