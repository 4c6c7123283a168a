"""Augmentation: rotation, cutout, colour-jitter magnitude, rescale-crop range and flip."""

from search_spaces.base import SearchSpace, choice, randint, uniform

SPACE = SearchSpace(
    name="augmentation",
    description="rotation, cutout, colour jitter (one magnitude), rescale-crop and flip",
    params={
        "aug.rotate_limit": uniform(0.0, 35.0),
        "aug.cutout_p": uniform(0.0, 0.6),
        "aug.cutout_holes": randint(1, 4),
        "aug.cutout_max": uniform(0.0625, 0.25),
        "aug.jitter_scale": uniform(0.0, 2.0),
        "aug.scale_max": uniform(1.0, 1.5),
        "aug.flip_p": choice([0.0, 0.5]),
    },
    levels={
        "aug.rotate_limit": [0.0, 15.0, 25.0, 35.0],
        "aug.cutout_p": [0.0, 0.3, 0.5],
        "aug.jitter_scale": [0.0, 1.0, 2.0],
        "aug.scale_max": [1.0, 1.25, 1.5],
        "aug.flip_swap": [True, False],
    },
)
