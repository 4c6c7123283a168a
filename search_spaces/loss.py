"""Loss mix, class weights, focal gamma and the auxiliary head's weight.

A mix of four weights has a redundant scale (doubling all of them changes the step size, not the
mix), so cross-entropy is the anchor at 1, the other three are searched relative to it, and
``loss.total`` rescales the four to sum to 3: the baseline CE + Lovasz 1:2 keeps its weights.
"""

from search_spaces.base import SearchSpace, choice, uniform

SPACE = SearchSpace(
    name="loss",
    description="focal/dice/Lovasz weights relative to CE (sum fixed), class weights, focal gamma, aux weight",
    params={
        "loss.focal": uniform(0.0, 3.0),
        "loss.dice": uniform(0.0, 3.0),
        "loss.lovasz": uniform(0.0, 3.0),
        "loss.class_weights": choice(["none", "report", "inverse_freq"]),
        "loss.class_weight_power": uniform(0.1, 1.0),
        "loss.focal_gamma": uniform(0.5, 4.0),
        "loss.aux_weight": uniform(0.0, 1.0),
    },
    levels={
        "loss.lovasz": [0.0, 1.0, 2.0],
        "loss.focal": [0.0, 1.0],
        "loss.dice": [0.0, 1.0],
        "loss.aux_weight": [0.0, 0.4, 1.0],
    },
    constants={"loss.ce": 1.0, "loss.total": 3.0},
)
