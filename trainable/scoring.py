"""Logits scored at the masks' own resolution, band by band, without the full-resolution tensor.

Upsampled at once, 19 classes at 512 px are 20 MB per image, written and read back by every later
step; the validation pass then costs more than the training epoch it scores. ``score_logits``
instead works on a band of rows at a time (a few MB, read from cache by every step):

- The argmax is exact. It is taken over only the classes that can be the maximum somewhere in the
  band, and those are upsampled exactly as the whole image would be. An upsampled value lies
  between the smallest and largest of its four source values, so a class whose largest value
  around a cell is below another class's smallest cannot be the maximum anywhere in that cell
  (with a margin far above rounding); the argmax over the rest, in class order, is the argmax over
  all of them, ties to the first class included.
- A band is exactly the rows of the whole upsampled image when the upsampling factor is a power of
  two: bilinear source positions ``(y + 0.5) / m - 0.5`` are then exact in floating point, so a
  band's source rows and weights are the whole image's (one source row of context each side).
  Whether the kernel also rounds a band of k classes as it rounds the whole image (its vector
  paths depend on the sizes) is checked once per shape on random logits: its arithmetic does not
  depend on the values, so a probe that matches bit for bit shows every input will. A band that
  fails the probe takes its rows from the whole image; any other factor, and CUDA (where each band
  costs a host sync), take one band per image. (Non-finite logits give a prediction, not argmax's.)
- The NLL is ``log_softmax`` gathered at the target, ``min(logsumexp - z_target, -log NLL_FLOOR)``,
  over every class and every native pixel, from scores interpolated in height by one broadcast
  ``lerp`` of the logits widened once per image: equal to the upsampling up to float rounding
  (the mean NLL to about 1e-7), at a tenth of its cost.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from trainable.metrics import NLL_FLOOR
from trainable.solution import upsample

__all__ = ["BAND_VALUES", "score_logits"]

BAND_VALUES = 800_000  # upsampled values per band (3 MB): the band stays in cache between its steps
_CLAMP = -math.log(NLL_FLOOR)


def score_logits(logits: torch.Tensor, masks: torch.Tensor, band_rows: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(Predicted class ``(B, H, W)`` uint8, summed NLL float64) of ``(B, C, h, w)`` logits against
    ``(B, H, W)`` masks, upsampled bilinearly to the masks' size; ``band_rows`` source rows per band
    (default from ``BAND_VALUES``)."""
    logits = logits.float().contiguous()  # as the exactness probe is
    b, c, h, w = logits.shape
    out_h, out_w = masks.shape[-2:]
    factor = out_h // h
    rows = band_rows or max(1, BAND_VALUES // (c * out_w * max(1, factor)))
    banded = (logits.device.type == "cpu" and factor >= 1 and out_h == factor * h and factor & (factor - 1) == 0
              and rows < h)
    rows = rows if banded else h
    maybe = _candidates(logits)
    pred = torch.empty((b, out_h, out_w), dtype=torch.uint8, device=logits.device)
    out = logits.new_empty((1, c, rows + 1, factor, out_w)) if banded else None
    nll = torch.zeros((), dtype=torch.float64, device=logits.device)
    for i in range(b):
        image = logits[i:i + 1]
        whole = None if banded else upsample(image, (out_h, out_w))
        across = _edge_rows(upsample(image, (h, out_w))) if banded else None  # widened only: the NLL's rows
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            y0, y1 = (r0 * factor, r1 * factor) if banded else (0, out_h)
            classes = _band_classes(maybe[i, :, r0:r1 + 1] if banded else maybe[i])
            planes_k = _exact_count(c, len(classes), h, w, factor, out_w, rows) if banded else None
            if planes_k is not None:  # padded with classes that cannot win, where the kernel wants it
                extra = [k for k in range(c) if k not in classes][:planes_k - len(classes)]
                planes, at = _band(image[:, classes + extra], r0, r1, factor, out_w), range(len(classes))
            else:
                whole = upsample(image, (out_h, out_w)) if whole is None else whole
                planes, at = whole[:, :, y0:y1], classes
            best = planes.amax(dim=1)  # classes other than the candidates are lower everywhere in the band
            pred[i, y0:y1] = _first_at(planes, best, classes, at)[0]
            if banded:
                scores = _rows(across, r0, r1, factor, out)
            else:  # one band, so whole is not read again; but at the logits' own size it is the logits
                scores = whole.clone() if whole is image else whole
            nll += _nll(scores, best, masks[i:i + 1, y0:y1])
    return pred, nll


def _band(logits: torch.Tensor, r0: int, r1: int, factor: int, out_w: int) -> torch.Tensor:
    """Output rows ``[r0 * factor, r1 * factor)``, upsampled from source rows r0 - 1 to r1."""
    a, z = max(0, r0 - 1), min(logits.shape[2], r1 + 1)  # one source row of context each side
    band = upsample(logits[:, :, a:z], ((z - a) * factor, out_w))
    return band[:, :, (r0 - a) * factor:(r1 - a) * factor]


@lru_cache(maxsize=2)  # the whole image is 20 MB at 512 px
def _probe(c: int, h: int, w: int, factor: int, out_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    probe = torch.randn((1, c, h, w), generator=torch.Generator().manual_seed(0)) * 10
    return probe, upsample(probe, (h * factor, out_w))


@lru_cache(maxsize=256)
def _bands_exact(c: int, k: int, h: int, w: int, factor: int, out_w: int, rows: int) -> bool:
    """Are ``k`` of ``c`` classes, upsampled band by band, bit for bit the whole image's?"""
    probe, whole = _probe(c, h, w, factor, out_w)
    return all(torch.equal(_band(probe[:, :k], r0, min(h, r0 + rows), factor, out_w),
                           whole[:, :k, r0 * factor:min(h, r0 + rows) * factor]) for r0 in range(0, h, rows))


def _exact_count(c: int, k: int, h: int, w: int, factor: int, out_w: int, rows: int) -> int | None:
    """The fewest classes, at least ``k``, whose bands are exact (``_bands_exact``); None if none.
    (On one thread this kernel rounds bands of exactly 3 classes differently, for one.)"""
    return next((n for n in range(k, c + 1) if _bands_exact(c, n, h, w, factor, out_w, rows)), None)


def _edge_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its first and last rows repeated: the upsampling's clamp at the edges."""
    return torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)


def _rows(across: torch.Tensor, r0: int, r1: int, factor: int, out: torch.Tensor) -> torch.Tensor:
    """Output rows ``[r0 * factor, r1 * factor)`` of every class, interpolated in height from the
    widened logits (``_edge_rows``) into ``out`` (reused: a fresh band costs its page faults every
    time), equal to the upsampling up to rounding.

    Output rows ``factor / 2 + factor * (j - 1) + q``, q < factor, lie between source rows j - 1
    and j at weight ``(q + 0.5) / factor``: one broadcast ``lerp`` per band.
    """
    if factor == 1:
        return across[:, :, r0 + 1:r1 + 1].clone()
    weight = (torch.arange(factor, dtype=across.dtype, device=across.device) + 0.5) / factor
    start, end = across[:, :, r0:r1 + 1].unsqueeze(3), across[:, :, r0 + 1:r1 + 2].unsqueeze(3)
    pairs = torch.lerp(start, end, weight.view(1, 1, 1, factor, 1), out=out[:, :, :r1 - r0 + 1])
    half = factor // 2
    return pairs.flatten(2, 3)[:, :, half:half + (r1 - r0) * factor]


def _candidates(logits: torch.Tensor) -> torch.Tensor:
    """``(B, C, h + 1, w + 1)``: may class k be the maximum in the cell between source pixels
    (j - 1, j) and (j, j + 1)? (Edge cells repeat the edge pixel, as the upsampling clamps.)"""
    padded = F.pad(logits, (1, 1, 1, 1), mode="replicate")
    high, low = (_pairwise(_pairwise(padded, op, 2), op, 3) for op in (torch.maximum, torch.minimum))
    margin = 1e-5 * (1.0 + logits.abs().amax())  # rounding is below 1e-6 of the largest value
    return high >= low.amax(dim=1, keepdim=True) - margin


def _pairwise(x: torch.Tensor, op, dim: int) -> torch.Tensor:
    """``op`` of each element and its successor along ``dim`` (one shorter); as a 2-wide pooling
    but many times faster on the CPU."""
    n = x.shape[dim]
    return op(x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1))


def _band_classes(maybe: torch.Tensor) -> list[int]:
    classes = maybe.flatten(1).any(dim=1).nonzero().flatten().tolist()
    return classes or list(range(maybe.shape[0]))  # none only if the logits are not finite


def _first_at(planes: torch.Tensor, best: torch.Tensor, classes: list[int], at) -> torch.Tensor:
    """The first of ``classes`` (in ``planes`` at positions ``at``) whose score equals ``best`` at
    each pixel: argmax's tie rule."""
    index = torch.full(best.shape, classes[-1], dtype=torch.uint8, device=planes.device)
    for k, p in zip(reversed(classes[:-1]), reversed(at[:-1]), strict=True):
        index.masked_fill_(planes[:, p] == best, k)
    return index


def _nll(scores: torch.Tensor, best: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed NLL of the band's pixels from every class's ``scores``, which it overwrites."""
    picked = scores.gather(1, target.long().unsqueeze(1)).squeeze(1)
    lse = scores.sub_(best.unsqueeze(1)).exp_().sum(dim=1).log_().add_(best)
    return lse.sub_(picked).clamp_max_(_CLAMP).sum(dtype=torch.float64)
