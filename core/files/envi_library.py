"""ENVI spectral libraries: a binary ``.sli`` file and its ``.hdr`` text header.

The data file holds ``lines`` spectra of ``samples`` bands each, one spectrum per line
(``bands = 1``), i.e. a ``(spectra, bands)`` array; the header gives its size, data type and
byte order, ``spectra names`` (the material of each spectrum), ``wavelength`` and
``wavelength units``. Written here: ``file type = ENVI Spectral Library``, float64
little-endian, wavelengths in nanometres, and for bundles the pixel each spectrum came
from as two extra fields ``pixel row`` and ``pixel col`` (readers ignore fields they do
not know). Read: any data type ENVI defines for numbers, either byte order, a header
offset and a ``reflectance scale factor``. The header is ``<stem>.hdr`` (or ``<file>.hdr``).
"""

import os
import re

import numpy as np

from .atomic import atomic_output, together
from ..errors import DeepGUError
from .formats import to_nanometres

#: ENVI ``data type`` code -> numpy type (without byte order).
DATA_TYPES = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
_NO_WAVELENGTH_UNITS = ("index",)      # band numbers, not wavelengths


def paths(path):
    """``(data file, header)`` of the library named by its ``.sli`` (or any data file) or its ``.hdr``."""
    stem, extension = os.path.splitext(path)
    if extension.lower() == ".hdr":
        return stem + ".sli", path
    header = stem + ".hdr"
    if not os.path.exists(header) and os.path.exists(path + ".hdr"):
        header = path + ".hdr"
    return path, header


def _braced(values):
    return "{%s}" % ", ".join(values)


def write(path, spectra, materials, wavelengths=None, rows=None, cols=None, what="OUTPUT"):
    """Write ``spectra`` ``(bands, n)`` named by ``materials`` as an ENVI spectral library: both files appear
    together or neither (``what``: the parameter named in errors)."""
    bad = [m for m in materials if re.search(r"[,{}\n]", str(m))]
    if bad:
        raise DeepGUError("cannot write %s '%s': ENVI spectra names cannot hold ',', '{' or '}' (%s)"
                          % (what, path, bad[0]))
    data_path, header_path = paths(path)
    spectra = np.asarray(spectra, dtype="<f8")
    lines = [
        "ENVI",
        "description = {DeepGU spectral library}",
        "samples = %d" % spectra.shape[0],
        "lines = %d" % spectra.shape[1],
        "bands = 1",
        "header offset = 0",
        "file type = ENVI Spectral Library",
        "data type = 5",
        "interleave = bsq",
        "byte order = 0",
        "spectra names = " + _braced(str(m) for m in materials),
    ]
    if wavelengths is not None:
        lines += ["wavelength units = Nanometers", "wavelength = " + _braced("%.9g" % w for w in wavelengths)]
    if rows is not None:
        lines += ["pixel row = " + _braced(str(int(r)) for r in rows),
                  "pixel col = " + _braced(str(int(c)) for c in cols)]
    with together():
        with atomic_output(data_path, "wb", what=what) as data:
            data.write(np.ascontiguousarray(spectra.T).tobytes())
        with atomic_output(header_path, "w", what=what) as header:
            header.write("\n".join(lines) + "\n")


def parse_header(text, path):
    """ENVI header text -> ``{lower-case key: value}``; braced values may span lines and keep their braces."""
    if not text.lstrip().startswith("ENVI"):
        raise DeepGUError("%s is not an ENVI header (it must start with 'ENVI')" % path)
    fields = {}
    for match in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text.split("ENVI", 1)[1], re.M):
        fields[match.group(1).lower()] = match.group(2).strip()
    return fields


def _items(value):
    return [item.strip() for item in value.strip().lstrip("{").rstrip("}").split(",") if item.strip()]


def _integer(fields, key, path, default=None):
    if key not in fields:
        if default is not None:
            return default
        raise DeepGUError("%s: the ENVI header has no '%s'" % (path, key))
    try:
        return int(fields[key])
    except ValueError:
        raise DeepGUError("%s: '%s = %s' is not an integer" % (path, key, fields[key])) from None


def _numbers(fields, key, count, path):
    try:
        values = np.array([float(v) for v in _items(fields[key])])
    except ValueError:
        raise DeepGUError("%s: '%s' holds a value that is not a number" % (path, key)) from None
    if len(values) != count:
        raise DeepGUError("%s: '%s' has %d values, expected %d" % (path, key, len(values), count))
    return values


def read(path):
    """Read an ENVI spectral library: ``(spectra (bands, n), materials, wavelengths or None, rows, cols)``."""
    data_path, header_path = paths(path)
    for name, what in ((data_path, "data file"), (header_path, "header")):
        if not os.path.isfile(name):
            raise DeepGUError("ENVI spectral library %s not found: %s" % (what, name))
    try:
        with open(header_path, encoding="utf-8", errors="replace") as f:
            fields = parse_header(f.read(), header_path)
    except OSError as error:
        raise DeepGUError("cannot read %s (%s)" % (header_path, error.strerror)) from None
    n_bands, n_spectra = _integer(fields, "samples", header_path), _integer(fields, "lines", header_path)
    if _integer(fields, "bands", header_path, default=1) != 1:
        raise DeepGUError("%s: a spectral library has 'bands = 1' (this looks like an image; open it as a raster)"
                          % header_path)
    code = _integer(fields, "data type", header_path)
    if code not in DATA_TYPES:
        raise DeepGUError("%s: ENVI data type %d is not a real number type" % (header_path, code))
    dtype = np.dtype((">" if _integer(fields, "byte order", header_path, default=0) else "<") + DATA_TYPES[code])
    offset = _integer(fields, "header offset", header_path, default=0)
    expected = offset + n_bands * n_spectra * dtype.itemsize
    if os.path.getsize(data_path) < expected:
        raise DeepGUError("%s holds %d bytes, the header describes %d (truncated?)"
                          % (data_path, os.path.getsize(data_path), expected))
    values = np.fromfile(data_path, dtype=dtype, count=n_bands * n_spectra, offset=offset)
    spectra = values.reshape(n_spectra, n_bands).T.astype(np.float64)
    if "reflectance scale factor" in fields:
        spectra /= _numbers(fields, "reflectance scale factor", 1, header_path)[0]
    if not np.isfinite(spectra).all():
        raise DeepGUError("%s holds values that are not finite" % data_path)
    materials = _items(fields.get("spectra names", ""))
    if len(materials) != n_spectra:
        raise DeepGUError("%s: 'spectra names' has %d names for %d spectra" % (header_path, len(materials), n_spectra))
    wavelengths = None
    units = fields.get("wavelength units", "").strip().lower()
    if "wavelength" in fields and units not in _NO_WAVELENGTH_UNITS:
        wavelengths = to_nanometres(_numbers(fields, "wavelength", n_bands, header_path), units)
    rows = cols = None
    if "pixel row" in fields and "pixel col" in fields:
        rows, cols = (_numbers(fields, key, n_spectra, header_path).astype(np.int64)
                      for key in ("pixel row", "pixel col"))
    return spectra, materials, wavelengths, rows, cols
