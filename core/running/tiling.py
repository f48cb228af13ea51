"""Square tiles with an overlap halo, for solvers whose pixels are coupled to their neighbours.

DeepGU's TV term couples each pixel to its four neighbours, so a tile is solved
together with a ``halo`` of surrounding pixels and only its core is kept: the
influence of the cut at the halo's edge decays before it reaches the core.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Tile:
    """A core window ``[row0, row0 + rows) x [col0, col0 + cols)`` and the padded window around it."""

    row0: int
    col0: int
    rows: int
    cols: int
    pad_row0: int
    pad_col0: int
    pad_rows: int
    pad_cols: int

    @property
    def core_in_pad(self):
        """Slices selecting the core inside an array of the padded window."""
        top, left = self.row0 - self.pad_row0, self.col0 - self.pad_col0
        return slice(top, top + self.rows), slice(left, left + self.cols)


def tile_size(budget_pixels, halo):
    """Core side of square tiles whose padded area fits ``budget_pixels``."""
    return max(1, int(math.isqrt(max(int(budget_pixels), 1))) - 2 * halo)


def tiles(rows, cols, size, halo):
    """Cover a ``rows x cols`` raster with ``size``-square cores padded by ``halo`` (clipped to the raster)."""
    for row0 in range(0, rows, size):
        for col0 in range(0, cols, size):
            core_rows, core_cols = min(size, rows - row0), min(size, cols - col0)
            pad_row0, pad_col0 = max(0, row0 - halo), max(0, col0 - halo)
            pad_row1, pad_col1 = min(rows, row0 + core_rows + halo), min(cols, col0 + core_cols + halo)
            yield Tile(row0, col0, core_rows, core_cols, pad_row0, pad_col0, pad_row1 - pad_row0,
                       pad_col1 - pad_col0)
