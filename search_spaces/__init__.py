"""Named search spaces over the trainable's config keys.

    from search_spaces import get_space
    space = get_space("augmentation")
"""

from __future__ import annotations

from search_spaces import augmentation, jitter, loss, model, optimizer
from search_spaces.base import SearchSpace, nest
from trainable.errors import UserError

__all__ = ["SPACES", "SearchSpace", "get_space", "nest"]

_TRAINING = [augmentation.SPACE, jitter.SPACE, loss.SPACE, optimizer.SPACE, model.SPACE]
_FULL = [augmentation.SPACE, loss.SPACE, optimizer.SPACE, model.SPACE]

# "full" is the union for a long run; jitter is left out: "augmentation" already scales the jitter
FULL = SearchSpace(
    name="full",
    description="augmentation + loss + optimizer + model, for a long run",
    params={k: v for s in _FULL for k, v in s.params.items()},
    levels={k: v for s in _FULL for k, v in s.levels.items()},
    constants=loss.SPACE.constants,
)

SPACES: dict[str, SearchSpace | None] = {s.name: s for s in [*_TRAINING, FULL]}
SPACES["tta"] = None  # scored on a checkpoint, not trained: see search_spaces.tta


def get_space(name: str) -> SearchSpace | None:
    """The space called ``name`` (``None`` for ``tta``); an unknown name lists the valid ones."""
    if name not in SPACES:
        raise UserError(f"unknown search space {name!r}: valid spaces are {', '.join(SPACES)}")
    return SPACES[name]
