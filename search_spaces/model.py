"""Architecture, encoder and decoder width: small timm encoders that fit the 2M from-scratch budget.

Combinations over ``model.max_params`` are refused by the trial before it trains and reach the
searcher as failed. TPE leaves failed trials out of its model, so it does not learn to avoid them
and may suggest one again (a refusal costs seconds, no training); set ``--max-params 0`` to lift
the budget.
"""

from search_spaces.base import SearchSpace, choice

SPACE = SearchSpace(
    name="model",
    description="architecture, encoder and decoder width within the parameter budget",
    params={
        "model.arch": choice(["unet", "fpn", "deeplabv3plus", "upernet", "segformer"]),
        "model.encoder": choice(["tu-mobilenetv3_small_100", "tu-mobilenetv3_small_075",
                                 "tu-mobilenetv2_050", "tu-mobilenetv4_conv_small_050"]),
        "model.decoder_width": choice([32, 64, 96]),
    },
    levels={
        "model.arch": ["unet", "fpn", "deeplabv3plus", "upernet", "segformer"],
        "model.encoder": ["tu-mobilenetv3_small_100", "tu-mobilenetv3_small_075", "tu-mobilenetv2_050"],
        "model.decoder_width": [32, 64, 96],
    },
)
