"""Colour jitter with each magnitude searched separately (``augmentation`` scales them together)."""

from search_spaces.base import SearchSpace, uniform

SPACE = SearchSpace(
    name="jitter",
    description="brightness, contrast, saturation and hue magnitudes and the jitter probability",
    params={
        "aug.jitter_brightness": uniform(0.0, 0.4),
        "aug.jitter_contrast": uniform(0.0, 0.6),
        "aug.jitter_saturation": uniform(0.0, 0.6),
        "aug.jitter_hue": uniform(0.0, 0.15),
        "aug.jitter_p": uniform(0.2, 1.0),
    },
    levels={
        "aug.jitter_brightness": [0.0, 0.125, 0.25],
        "aug.jitter_contrast": [0.0, 0.25, 0.5],
        "aug.jitter_saturation": [0.0, 0.25, 0.5],
        "aug.jitter_hue": [0.0, 0.05, 0.1],
    },
)
