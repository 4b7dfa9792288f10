"""The image-to-image uncertainty benchmark of seed 003 §5.3, rebuilt on MNIST / Fashion-MNIST.

The seed trains a U-Net to translate phase-contrast into fluorescence microscopy images and
asks whether its per-pixel uncertainty is high (i) inside boxes where out-of-distribution
objects were pasted (MSC-LNCaP, MSC-Impurities: ranking metrics, Fig. 5.2) and (ii) how
its predictions degrade when the whole image distribution shifts (LNCaP-Density: cell
density from "very sparse" to "very dense", Pearson correlation, Table 5.1). Our
stand-ins:

- *cells* are MNIST digits shrunk to ``digit_size`` pixels on a black canvas; the *density*
  is the number of digits per canvas (:func:`make_canvases`);
- the *translation task* is denoising: input = canvas + Gaussian noise, target = clean
  canvas (:func:`denoising_pair`);
- *OOD objects* are shrunk Fashion-MNIST articles pasted inside known boxes
  (:func:`paste_patches`), which also gives the ground-truth mask of OOD pixels.

Used by: chapter 10.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["make_canvases", "denoising_pair", "paste_patches", "boxes_to_mask"]


def _check_images(images):
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a non-empty float tensor (N, C, H, W), got {getattr(images, 'shape', type(images))}")
    if bool((images < 0).any()) or bool((images > 1).any()):
        raise ValueError("images must lie in [0, 1]")


def make_canvases(digits: torch.Tensor, n: int, per_canvas: int, size: int = 32, digit_size: int = 16,
                  seed: int = 0) -> torch.Tensor:
    """``n`` canvases ``(n, 1, size, size)`` with ``per_canvas`` digits each (pixel-wise max).

    Digits are drawn at random from ``digits`` (``(M, 1, H, W)`` in [0, 1]), shrunk to
    ``digit_size`` by area interpolation and placed at uniform random positions; the number
    of digits plays the role of the cell density of LNCaP-Density (seed 003 Fig. 5.3).
    """
    _check_images(digits)
    if per_canvas < 1 or n < 1 or not 1 <= digit_size <= size:
        raise ValueError("need n >= 1, per_canvas >= 1 and 1 <= digit_size <= size")
    g = torch.Generator().manual_seed(int(seed))
    small = F.interpolate(digits, size=(digit_size, digit_size), mode="area")[:, 0]
    canvas = torch.zeros(n, size, size, dtype=digits.dtype)
    ar = torch.arange(digit_size)
    rows_n = torch.arange(n)[:, None, None]
    for _ in range(per_canvas):
        pick = torch.randint(0, small.shape[0], (n,), generator=g)
        oy = torch.randint(0, size - digit_size + 1, (n,), generator=g)
        ox = torch.randint(0, size - digit_size + 1, (n,), generator=g)
        r = (oy[:, None] + ar)[:, :, None]
        c = (ox[:, None] + ar)[:, None, :]
        canvas[rows_n, r, c] = torch.maximum(canvas[rows_n, r, c], small[pick])
    return canvas[:, None]


def denoising_pair(clean: torch.Tensor, sigma: float = 0.3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noisy input, clean target)``: input ``clamp(clean + sigma * N(0, 1), 0, 1)``."""
    _check_images(clean)
    if not isinstance(sigma, (int, float)) or sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    g = torch.Generator().manual_seed(int(seed))
    noisy = (clean + sigma * torch.randn(clean.shape, generator=g).to(clean)).clamp(0, 1)
    return noisy, clean


def boxes_to_mask(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boolean mask ``(N, 1, H, W)`` of the union of boxes ``(N, B, 4)`` = (top, left, height, width)."""
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (N, B, 4), got {tuple(boxes.shape)}")
    h, w = size
    ys = torch.arange(h)[None, None, :, None]
    xs = torch.arange(w)[None, None, None, :]
    t, l, bh, bw = (boxes[..., i][..., None, None] for i in range(4))
    inside = (ys >= t) & (ys < t + bh) & (xs >= l) & (xs < l + bw)
    return inside.any(1, keepdim=True)


def paste_patches(images: torch.Tensor, patches: torch.Tensor, n_boxes: int = 2, box: int = 10,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste ``n_boxes`` OOD patches (shrunk ``patches``) into each image, inside known boxes.

    Each patch is a random image of ``patches`` shrunk to ``box x box`` pixels (area
    interpolation) that *replaces* the pixels of its box. Returns ``(images with patches,
    boxes (N, n_boxes, 4) as (top, left, height, width), mask (N, 1, H, W) of OOD
    pixels)``; the mask is the ground truth ``S_1`` of Precision@k / Recall@k (eq. 5.1).
    """
    _check_images(images)
    _check_images(patches)
    n, _, h, w = images.shape
    if n_boxes < 1 or not 1 <= box <= min(h, w):
        raise ValueError(f"need n_boxes >= 1 and 1 <= box <= {min(h, w)}")
    g = torch.Generator().manual_seed(int(seed))
    small = F.interpolate(patches, size=(box, box), mode="area")[:, 0]
    out = images.clone()
    ar = torch.arange(box)
    rows_n = torch.arange(n)[:, None, None]
    boxes = torch.zeros(n, n_boxes, 4, dtype=torch.long)
    for b in range(n_boxes):
        pick = torch.randint(0, small.shape[0], (n,), generator=g)
        oy = torch.randint(0, h - box + 1, (n,), generator=g)
        ox = torch.randint(0, w - box + 1, (n,), generator=g)
        out[rows_n, 0, (oy[:, None] + ar)[:, :, None], (ox[:, None] + ar)[:, None, :]] = small[pick]
        boxes[:, b] = torch.stack([oy, ox, torch.full_like(oy, box), torch.full_like(ox, box)], 1)
    return out, boxes, boxes_to_mask(boxes, (h, w))
