"""Tiles cover the raster exactly once, halos stay inside it."""

import numpy as np

from core.running.tiling import tile_size, tiles


def test_cores_partition_the_raster_and_pads_contain_cores():
    count = np.zeros((23, 17), int)
    for t in tiles(23, 17, 5, 2):
        count[t.row0:t.row0 + t.rows, t.col0:t.col0 + t.cols] += 1
        assert 0 <= t.pad_row0 <= t.row0 and t.row0 + t.rows <= t.pad_row0 + t.pad_rows <= 23
        assert t.pad_row0 >= t.row0 - 2 and t.pad_col0 >= t.col0 - 2
        pad = np.zeros((t.pad_rows, t.pad_cols))
        rs, cs = t.core_in_pad
        assert pad[rs, cs].shape == (t.rows, t.cols)
    assert np.all(count == 1)


def test_tile_size_fits_budget():
    size = tile_size(10000, 8)
    assert (size + 16) ** 2 <= 10000 and size == 84
    assert tile_size(10, 8) == 1
