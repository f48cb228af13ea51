"""The pixel window of a raster that covers a map extent (the EXTENT parameter of fcls, unmix and the workflow).

A GDAL geotransform ``(x0, a, b, y0, d, e)`` maps pixel coordinates (col, row), measured from the
raster's top-left corner, to map coordinates::

    x = x0 + a col + b row,    y = y0 + d col + e row.

An extent ``(xmin, ymin, xmax, ymax)`` in the raster's CRS is taken to pixel coordinates by the
inverse map; the window is the smallest whole-pixel rectangle containing its four corners (snapped
outward, a millionth of a pixel of rounding forgiven), clipped to the raster.
"""

import math
from collections import namedtuple

import numpy as np

from ..errors import DeepGUError

#: pixel-coordinate slack when snapping: a boundary this close to a pixel edge is on the edge.
_SNAP = 1e-6


class PixelWindow(namedtuple("PixelWindow", "row0 col0 rows cols")):
    """Rows ``row0 .. row0 + rows - 1`` and columns ``col0 .. col0 + cols - 1`` of a raster."""


def extent_window(transform, rows, cols, extent, name="EXTENT"):
    """The :class:`PixelWindow` of a ``rows x cols`` raster with GDAL ``transform`` that covers ``extent``
    ``(xmin, ymin, xmax, ymax)`` (map units of the raster's CRS), snapped outward to whole pixels and clipped
    to the raster. An extent of zero width or height selects the pixels it touches. Raises
    :class:`DeepGUError` naming ``name`` when the extent is not finite, inverted, or does not intersect
    the raster."""
    xmin, ymin, xmax, ymax = (float(v) for v in extent)
    if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)) or xmin > xmax or ymin > ymax:
        raise DeepGUError("%s must be a finite extent with xmin <= xmax and ymin <= ymax (got %s)"
                          % (name, _format(extent)))
    x0, a, b, y0, d, e = transform
    inverse = np.linalg.inv(np.array([[a, b], [d, e]], dtype=np.float64))
    corners = np.array([[xmin, xmax, xmin, xmax], [ymin, ymin, ymax, ymax]]) - np.array([[x0], [y0]])
    col, row = inverse @ corners
    col0, row0 = math.floor(col.min() + _SNAP), math.floor(row.min() + _SNAP)
    col1, row1 = max(math.ceil(col.max() - _SNAP), col0 + 1), max(math.ceil(row.max() - _SNAP), row0 + 1)
    col0, row0, col1, row1 = max(col0, 0), max(row0, 0), min(col1, cols), min(row1, rows)
    if col1 <= col0 or row1 <= row0:
        raise DeepGUError("%s %s does not intersect the raster's extent %s"
                          % (name, _format(extent), _format(raster_extent(transform, rows, cols))))
    return PixelWindow(row0, col0, row1 - row0, col1 - col0)


def window_label(label, window, name="EXTENT"):
    """How errors name the pixels a job reads: ``label`` (e.g. ``INPUT 'scene.tif'``), or, for a ``window`` of it, the
    extent parameter ``name`` first (a problem of a small window is the extent's, not the raster's)."""
    if window is None:
        return label
    return "%s (its window of %d x %d pixels of %s)" % (name, window.rows, window.cols, label)


def window_transform(transform, window):
    """The GDAL geotransform of ``window``'s pixel grid (the raster's, moved to its top-left corner)."""
    x0, a, b, y0, d, e = transform
    return (x0 + a * window.col0 + b * window.row0, a, b, y0 + d * window.col0 + e * window.row0, d, e)


def raster_extent(transform, rows, cols):
    """``(xmin, ymin, xmax, ymax)`` of a ``rows x cols`` raster."""
    x0, a, b, y0, d, e = transform
    xs = [x0 + a * c + b * r for c in (0, cols) for r in (0, rows)]
    ys = [y0 + d * c + e * r for c in (0, cols) for r in (0, rows)]
    return min(xs), min(ys), max(xs), max(ys)


def _format(extent):
    return "(%s)" % ", ".join("%.10g" % float(v) for v in extent)
