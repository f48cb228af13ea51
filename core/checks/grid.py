"""Companion rasters on INPUT's grid: the same size, geotransform and CRS (to a tolerance).

A companion raster (``deepgu:metrics`` REFERENCE against ESTIMATE, ``deepgu:unmix`` INIT_ABUNDANCES and
``deepgu:bundles`` ABUNDANCES against INPUT) is read pixel for pixel with the raster it accompanies, so it must
cover the same ground with the same pixels. With GDAL geotransforms ``(x0, a, b, y0, d, e)`` (:mod:`core.files.window`):

- the sizes (rows x cols) are equal;
- the pixel vectors ``(a, d)`` and ``(b, e)`` agree to :data:`SIZE_TOLERANCE` of the pixel size (relative);
- the companion's origin ``(x0', y0')``, taken to the reference's pixel coordinates
  ``[[a, b], [d, e]]^-1 (x0' - x0, y0' - y0)``, lies within :data:`ORIGIN_TOLERANCE` pixels of ``(0, 0)``;
- the CRSs are the same (``osr.SpatialReference.IsSame``) when both rasters have one.

A raster without georeferencing (GDAL's default geotransform ``(0, 1, 0, 0, 0, 1)`` and no CRS: an array exported
without map information) can be placed nowhere, so it matches any raster of its size: only the sizes are compared.
A raster with a geotransform but no CRS is compared by its geotransform alone (its CRS is unknown, not different).
"""

import numpy as np
from osgeo import osr

from ..errors import DeepGUError

#: the geotransform GDAL reports for a raster without georeferencing.
NO_TRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
#: largest origin difference, in pixels of the reference raster.
ORIGIN_TOLERANCE = 1e-3
#: largest relative difference of the pixel vectors (of the pixel size).
SIZE_TOLERANCE = 1e-6


def georeferenced(info):
    """True when the raster has a geotransform other than GDAL's default or a CRS."""
    return bool(info.crs_wkt) or not np.allclose(info.transform, NO_TRANSFORM, rtol=0, atol=1e-12)


def _same_crs(wkt, other_wkt):
    if not wkt or not other_wkt or wkt == other_wkt:
        return True
    first, second = osr.SpatialReference(), osr.SpatialReference()
    if first.ImportFromWkt(wkt) or second.ImportFromWkt(other_wkt):
        return False
    return bool(first.IsSame(second))


def check_same_grid(info, like, name=None, like_name=None):
    """Raise :class:`DeepGUError` naming both parameters unless ``info`` lies on ``like``'s grid (module docstring).

    ``info``, ``like``: :class:`core.files.raster_io.RasterInfo` (a window of one is on that window's grid); ``name``
    and ``like_name`` default to their ``name`` (their parameter)."""
    name, like_name = name or info.name or info.path, like_name or like.name or like.path
    if (info.rows, info.cols) != (like.rows, like.cols):
        raise DeepGUError("%s is %d x %d pixels but %s is %d x %d: they must cover the same pixels"
                          % (name, info.rows, info.cols, like_name, like.rows, like.cols))
    if not (georeferenced(info) and georeferenced(like)):
        return
    x0, a, b, y0, d, e = (float(v) for v in like.transform)
    other = [float(v) for v in info.transform]
    pixel = max(abs(a), abs(b), abs(d), abs(e))
    vectors = np.array([a, b, d, e]) - np.array([other[1], other[2], other[4], other[5]])
    if pixel == 0 or np.max(np.abs(vectors)) > SIZE_TOLERANCE * pixel:
        raise DeepGUError("%s has pixels of %s map units but %s has %s: they are not on the same grid"
                          % (name, _size(other), like_name, _size(like.transform)))
    try:
        col, row = np.linalg.solve(np.array([[a, b], [d, e]]), np.array([other[0] - x0, other[3] - y0]))
    except np.linalg.LinAlgError:
        raise DeepGUError("%s has a degenerate geotransform %s" % (like_name, tuple(like.transform))) from None
    if max(abs(col), abs(row)) > ORIGIN_TOLERANCE:
        raise DeepGUError("%s starts %.6g columns and %.6g rows away from %s's top-left corner: they cover "
                          "different places (give rasters on the same grid)" % (name, col + 0.0, row + 0.0, like_name))
    if not _same_crs(info.crs_wkt, like.crs_wkt):
        raise DeepGUError("%s and %s have different coordinate reference systems (%s and %s)"
                          % (name, like_name, _crs_name(info.crs_wkt), _crs_name(like.crs_wkt)))


def _size(transform):
    return "%g x %g" % (np.hypot(transform[1], transform[4]), np.hypot(transform[2], transform[5]))


def _crs_name(wkt):
    srs = osr.SpatialReference()
    if srs.ImportFromWkt(wkt):
        return "unreadable"
    code = srs.GetAuthorityCode(None)
    return "%s:%s" % (srs.GetAuthorityName(None), code) if code else (srs.GetName() or "unnamed")
