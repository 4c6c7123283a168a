"""Architecture, encoder and decoder width: small timm encoders that fit the 2M from-scratch budget.

Combinations over ``model.max_params`` are refused by the trial before it trains (seconds, no
training) and reach the searcher as infeasible, so TPE learns where the budget ends and proposes
them less and less (``search_spaces.driver.searcher``); set ``--max-params 0`` to lift the budget.
Every key is a choice, so the space is finite: a search tries each combination once at most and
ends when it has tried them all (``search_spaces.unvisited``).
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
)
