"""Do the scene and the library speak the same units? A refusal before unmixing in the wrong ones.

A scene in raw digital numbers (reflectance x 10,000 with no scale factor) unmixed with a 0-1 library, or
the reverse, gives every pixel the same clamped abundances without any error; so does a library of
negative values. Two checks, before any output is written:

- **Magnitude.** A pixel is a mixture of the library's spectra ``m_p``, with abundances ``a >= 0`` summing to
  one. For non-negative spectra its norm lies between ``min_p ||m_p|| / sqrt(P)`` (from ``||sum_p a_p m_p||^2 >=
  sum_p a_p^2 ||m_p||^2 >= min_p ||m_p||^2 / P``) and ``max_p ||m_p||`` (the triangle inequality), and spectral
  variability (illumination, the paper's scaling factors) moves it by a factor of a few. The median valid pixel's
  norm in the scene's central 64 x 64 pixels, ``s``, is compared with the median norm of the library's spectra,
  ``n``: refused when ``s > FACTOR n`` or ``s < n / FACTOR``, :data:`FACTOR` = 20. Libraries span a few times
  in norm (0.5 to 4.8, 9.6x, on the accuracy scenes' libraries; the scenes' ``s / n`` is 0.86 to 0.96, 17x to
  23x from either limit: ``python bench/bench_magnitudes.py``, 2026-12-06), so 20 leaves room for a scene of
  mostly dark or mostly bright materials, while the usual unit mistakes, percent (100x) and scaled integers
  (10,000x), are far beyond it. The message names the library's parameter, both magnitudes, and the power of
  ten that would reconcile them as a scale factor.
- **Sign.** A spectrum whose negative part has more than :data:`NEGATIVE_SHARE` of its norm (``||min(m, 0)|| >
  0.1 ||m||``) is refused: reflectance and radiance are not negative, and atmospheric correction leaves at most a
  few small negative bands (noise), far below that share.
"""

import math

import numpy as np

from ..errors import DeepGUError
from ..files.raster_io import read_block

#: largest factor between the scene's typical pixel norm and the library's median norm (module docstring).
FACTOR = 20.0
#: largest share of a library spectrum's norm in its negative values.
NEGATIVE_SHARE = 0.1
#: side of the central window whose pixels measure the scene's magnitude (a few MB at hundreds of bands).
WINDOW = 64


def scene_norm(info):
    """The median L2 norm of the valid pixels of the central :data:`WINDOW` x :data:`WINDOW` pixels of ``info``
    (the whole raster when smaller); None when they are all nodata."""
    rows, cols = min(info.rows, WINDOW), min(info.cols, WINDOW)
    data, valid = read_block(info, (info.rows - rows) // 2, rows, (info.cols - cols) // 2, cols)
    pixels = data.reshape(data.shape[0], -1)[:, valid.ravel()].astype(np.float64)
    if not pixels.shape[1]:
        return None
    return float(np.median(np.linalg.norm(pixels, axis=0)))


def check_library(M, name, materials=None):
    """Refuse a library ``M`` (bands, P) with a spectrum that is negative beyond noise (module docstring);
    ``name``: its parameter, ``materials``: the names of its columns."""
    norms = np.linalg.norm(M, axis=0)
    negative = np.linalg.norm(np.minimum(M, 0.0), axis=0)
    for p in np.flatnonzero(negative > NEGATIVE_SHARE * norms):
        raise DeepGUError("%s: material '%s' is negative in %d of its %d bands (down to %.3g): spectra of reflectance "
                          "or radiance are not negative beyond noise; check the library's sign and units"
                          % (name, materials[p] if materials else p + 1, int(np.sum(M[:, p] < 0)), M.shape[0],
                             float(M[:, p].min())))


def check_magnitudes(info, M, name, scene="INPUT"):
    """Refuse the scene ``info`` with the library ``M`` (bands, P; parameter ``name``) when their magnitudes
    differ by more than :data:`FACTOR` (module docstring)."""
    typical = scene_norm(info)
    norms = np.linalg.norm(M, axis=0)
    median = float(np.median(norms))
    if typical is None or median <= 0 or typical <= 0:
        return
    ratio = typical / median
    if 1 / FACTOR <= ratio <= FACTOR:
        return
    low, high = float(norms.min()), float(norms.max())
    power = 10.0 ** round(math.log10(ratio))
    measured = ("the median pixel norm of %s central pixels is %.3g, the norms of %s spectra %.3g to %.3g"
                % (_of(scene), typical, _of(name), low, high))
    if ratio > 1:
        raise DeepGUError("%s values look about %sx larger than %s (%s): set a scale factor of %s on %s (e.g. "
                          "gdal_edit.py -scale %s) or give %s in %s units"
                          % (_of(scene), _number(power), _of(name), measured, _number(1 / power), scene,
                             _number(1 / power), name, _of(scene)))
    raise DeepGUError("%s values look about %sx smaller than %s (%s): give %s in %s units (multiply them by %s) "
                      "or set a scale factor of %s on %s" % (_of(scene), _number(1 / power), _of(name), measured, name,
                                                               _of(scene), _number(power), _number(1 / power), scene))


def _of(name):
    """``name``'s possessive: INPUT's, ENDMEMBERS'."""
    return name + ("'" if name.endswith("s") or name.endswith("S") else "'s")


def _number(value):
    return "%g" % value
