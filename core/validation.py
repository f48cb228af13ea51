"""Checks at the door: parameter numbers, declared sizes, value ranges and spectral contrast.

Every check raises :class:`DeepGUError` with one line that names the
parameter (the Processing name, e.g. ``LAMBDA_A``) and the problem. The limits:

- numbers: finite, within the range each job states; integers within int32
  (what QGIS, numpy and torch all take without wrapping);
- rasters: at most :data:`MAX_PIXELS` pixels and :data:`MAX_VALUES` values as
  declared by the header, checked before anything is allocated or read;
- values: ``|value| <= MAX_ABS_VALUE`` (squares of sums stay far inside float32
  and float64), in images and spectral libraries alike;
- materials: at most :data:`MAX_MATERIALS`, the exact FCLS/A-step limit;
- contrast: a scene needs at least as many distinct valid pixels as materials
  (a constant or all-zero scene has one) and a non-zero pixel.
"""

import contextlib
import math

import numpy as np

from .errors import DeepGUError

INT32_MAX = 2 ** 31 - 1
#: exact FCLS/A-step enumerate all 2^P supports: the materials any step accepts.
MAX_MATERIALS = 12
#: largest magnitude of an image or library value.
MAX_ABS_VALUE = 1e12
#: pixels (rows x cols) and values (x bands) a raster may declare.
MAX_PIXELS = 2 ** 32
MAX_VALUES = 2 ** 40

# Ranges of the Processing parameters (the algorithms declare them as minValue/maxValue too).
MAX_EPOCHS = 100_000
MAX_BETA = 1000.0
MAX_LAMBDA = 1e6
MAX_ITERATIONS = 10_000
MAX_LATENT = 16
#: cap on a bundle of core.extraction.bundles' "angle" method (its nearest pixels are kept), bounding memory.
MAX_ANGLE_PIXELS = 5000
#: rows and columns of a synthetic scene (it is generated in memory).
MAX_SYNTHETIC_SIDE = 5000
MAX_SYNTHETIC_PIXELS = 4_000_000
#: MEMORY_MB at most (the dialogs' int32 maximum).
MAX_MEMORY_MB = INT32_MAX


def finite(name, value, low=None, high=None, low_open=False):
    """``value`` as a float, refused unless finite and in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise DeepGUError("%s must be a number (got %r)" % (name, value)) from None
    if not math.isfinite(value):
        raise DeepGUError("%s must be a finite number (got %s)" % (name, value))
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        raise DeepGUError("%s must be %s%s and at most %s (got %g)" % (
            name, "greater than " if low_open else "at least ", low, high, value))
    return value


def integer(name, value, low=0, high=INT32_MAX):
    """``value`` as an int, refused unless a whole number in ``[low, high]`` (default: a non-negative int32)."""
    if isinstance(value, (float, np.floating)) and not (math.isfinite(value) and float(value).is_integer()):
        raise DeepGUError("%s must be a whole number (got %s)" % (name, value))
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise DeepGUError("%s must be a whole number (got %r)" % (name, value)) from None
    if number < low or number > high:
        raise DeepGUError("%s must be between %d and %d (got %d)" % (name, low, high, number))
    return number


@contextlib.contextmanager
def as_parameter(name):
    """Prefix ``"NAME: "`` to any :class:`DeepGUError` raised inside, unless the message already names it."""
    try:
        yield
    except DeepGUError as error:
        message = str(error)
        if name in message:
            raise
        raise DeepGUError("%s: %s" % (name, message)) from None


def check_declared_size(what, rows, cols, bands):
    """Refuse a raster whose header declares more than :data:`MAX_PIXELS` pixels or :data:`MAX_VALUES` values."""
    pixels = rows * cols
    if pixels > MAX_PIXELS or pixels * bands > MAX_VALUES:
        raise DeepGUError("%s declares %d x %d pixels x %d bands, more than DeepGU processes (%d pixels, %d values)"
                          % (what, rows, cols, bands, MAX_PIXELS, MAX_VALUES))


def check_value_range(what, data):
    """Refuse values beyond :data:`MAX_ABS_VALUE` (``data``: finite array of the valid values)."""
    if data.size and float(np.abs(data).max()) > MAX_ABS_VALUE:
        raise DeepGUError("%s has values up to %.3g; DeepGU takes |values| <= %g (rescale it or set its nodata)"
                          % (what, float(np.abs(data).max()), MAX_ABS_VALUE))


def check_materials(what, n_materials):
    """Refuse more than :data:`MAX_MATERIALS` materials."""
    if n_materials > MAX_MATERIALS:
        raise DeepGUError("%s has %d materials; DeepGU handles at most %d" % (what, n_materials, MAX_MATERIALS))


class ContrastCheck:
    """Streamed test that a scene can be unmixed into ``n_materials``: it has a non-zero pixel and at least
    ``n_materials`` distinct pixels.

    Pixels are told apart by a fixed random projection ``h = w^T y`` (distinct
    spectra give distinct ``h`` with probability one); at most ``n_materials``
    distinct values are kept, so memory is O(P) whatever the scene size.
    """

    def __init__(self, n_bands, n_materials):
        self.n_materials = max(int(n_materials), 1)
        self.w = np.random.default_rng(12345).standard_normal(n_bands)
        self.seen = np.empty(0)
        self.nonzero = False
        self.any_valid = False

    def update(self, Y):
        """Add the valid pixels ``Y`` (bands, n)."""
        if not Y.size or self.seen.size >= self.n_materials and self.nonzero:
            return
        self.any_valid = True
        self.nonzero |= bool(np.any(Y))
        h = self.w @ np.asarray(Y, dtype=np.float64)
        self.seen = np.unique(np.concatenate([self.seen, np.unique(h)[:self.n_materials]]))[:self.n_materials]

    def merge(self, other):
        """Add what another check (of other pixels, same bands and materials) has seen."""
        self.any_valid |= other.any_valid
        self.nonzero |= other.nonzero
        self.seen = np.unique(np.concatenate([self.seen, other.seen]))[:self.n_materials]

    def check(self, what):
        """Raise unless the pixels seen so far have the contrast asked for (call after every block)."""
        if not self.any_valid:
            raise DeepGUError("%s has no valid pixels (all nodata or non-finite)" % what)
        if not self.nonzero:
            raise DeepGUError("%s is zero at every valid pixel: there is nothing to unmix" % what)
        if self.seen.size < self.n_materials:
            raise DeepGUError("%s has only %d distinct valid pixel(s), fewer than the %d materials: no spectral "
                              "contrast to unmix" % (what, self.seen.size, self.n_materials))
