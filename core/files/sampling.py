"""A seeded random sample of a raster's valid pixels, read block by block."""

import numpy as np

from ..defaults import MEMORY_MB
from ..errors import DeepGUError
from ..feedback import ensure
from .raster_io import block_rows, iter_blocks, read_block


def sample_pixels(info, n_samples, seed=0, memory_mb=MEMORY_MB, feedback=None):
    """Draw up to ``n_samples`` valid pixels uniformly at random (seeded), streaming the raster.

    When the raster has at most ``n_samples`` pixels every valid pixel is taken.
    Returns ``(Y (bands, n) float32, flat_index (n,) int64)`` with row-major
    flat indices ``row * cols + col``, in increasing order. Memory: one block
    plus the sample.
    """
    feedback = ensure(feedback)
    total = info.rows * info.cols
    if n_samples >= total:
        chosen = None
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(total, size=n_samples, replace=False))
    spectra, indices = [], []
    for row0, n_rows in iter_blocks(info, block_rows(info, memory_mb)):
        feedback.check_canceled()
        first, last = row0 * info.cols, (row0 + n_rows) * info.cols
        if chosen is None:
            local = np.arange(last - first)
        else:
            local = chosen[np.searchsorted(chosen, first):np.searchsorted(chosen, last)] - first
            if local.size == 0:
                continue
        data, valid = read_block(info, row0, n_rows)
        local = local[valid.ravel()[local]]
        spectra.append(data.reshape(info.n_bands, -1)[:, local])
        indices.append(local + first)
        feedback.set_progress(100.0 * (row0 + n_rows) / info.rows)
    if not indices or sum(i.size for i in indices) == 0:
        raise DeepGUError("%s has no valid pixels (all nodata or non-finite)" % info.label)
    return np.concatenate(spectra, axis=1), np.concatenate(indices)
