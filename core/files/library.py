"""Spectral library files: endmember sets and bundles as CSV a person can open.

One format serves both. The header's first cell is ``wavelength`` (nm) or
``band`` (1-based index, when wavelengths are unknown); the other header cells
name the material of each column. Two optional rows keyed ``row`` and ``col``
follow with the pixel each spectrum came from. Then one row per band::

    wavelength,soil,soil,tree        <- a bundle: several spectra per material
    row,12,40,3
    col,7,9,55
    400.0,0.112,0.120,0.041
    ...

An endmember set is the same file with one column per material.

Files named ``.sli`` (or their ``.hdr``) are ENVI spectral libraries instead
(:mod:`core.files.envi_library`); the format follows the extension (:func:`core.files.formats.library_format`).

Reading (either format) accepts a UTF-8 byte-order mark (CSV) and refuses, naming the file: more
than :data:`.validation.MAX_MATERIALS` distinct materials, values beyond
:data:`.validation.MAX_ABS_VALUE`, and material names starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return, which a spreadsheet opening the
file would run as a formula (OWASP "CSV injection"); writing refuses such names
too, so no file DeepGU writes carries one.
"""

import csv
import os
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from . import envi_library, formats
from .atomic import atomic_output
from ..errors import DeepGUError
from ..validation import MAX_ABS_VALUE, check_materials

#: first characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class SpectralSet:
    """Spectra ``(bands, spectra)`` with the material of each column and, optionally, its pixel."""

    spectra: np.ndarray
    materials: list
    wavelengths: np.ndarray = None
    rows: np.ndarray = None
    cols: np.ndarray = None

    @property
    def n_bands(self):
        return self.spectra.shape[0]

    def material_names(self):
        """Distinct material names, in order of first appearance."""
        return list(dict.fromkeys(self.materials))

    def by_material(self):
        """``[(name, spectra (bands, n_p), rows or None, cols or None), ...]`` per material."""
        groups = []
        materials = np.array(self.materials, dtype=object)
        for name in self.material_names():
            pick = materials == name
            groups.append((
                name,
                self.spectra[:, pick],
                None if self.rows is None else self.rows[pick],
                None if self.cols is None else self.cols[pick],
            ))
        return groups

    def as_endmembers(self):
        """The ``(bands, P)`` matrix of an endmember set; each material must appear once."""
        counts = Counter(self.materials)
        if len(counts) != len(self.materials):
            repeated = sorted(name for name, count in counts.items() if count > 1)
            raise DeepGUError("the endmember file repeats material names (%s): is it a bundle file?"
                              % ", ".join(repeated[:5] + (["..."] if len(repeated) > 5 else [])))
        return self.spectra


def check_material_names(what, materials):
    """Refuse material names a spreadsheet would run as formulas (see the module docstring)."""
    for name in dict.fromkeys(materials):
        if str(name).startswith(FORMULA_STARTS):
            raise DeepGUError("%s: material name '%s' starts with '%s', which spreadsheets run as a formula; "
                              "rename the material" % (what, name, str(name)[0].encode("unicode_escape").decode()))


def write_spectra(path, spectra, materials, wavelengths=None, rows=None, cols=None, what="OUTPUT"):
    """Write a :class:`SpectralSet`-shaped library to ``path`` (atomic: temp file, then rename; ``what``: the
    parameter named in errors)."""
    spectra = np.asarray(spectra, dtype=np.float64)
    if spectra.ndim != 2 or spectra.shape[1] != len(materials):
        raise DeepGUError("spectra must be (bands, %d), got %s" % (len(materials), spectra.shape))
    check_material_names(what, materials)
    if formats.library_format(path, writing=True) == formats.ENVI:
        return envi_library.write(path, spectra, materials, wavelengths, rows, cols, what=what)
    with atomic_output(path, "w", what=what, newline="") as f:
        out = csv.writer(f)
        out.writerow(["wavelength" if wavelengths is not None else "band"] + [str(m) for m in materials])
        if rows is not None:
            out.writerow(["row"] + [int(r) for r in rows])
            out.writerow(["col"] + [int(c) for c in cols])
        keys = wavelengths if wavelengths is not None else np.arange(1, spectra.shape[0] + 1)
        for key, values in zip(keys, spectra):
            out.writerow(["%g" % key] + ["%.9g" % v for v in values])


def _number(text, path, line):
    try:
        value = float(text)
    except ValueError:
        raise DeepGUError("%s line %d: '%s' is not a number" % (path, line, text)) from None
    if not np.isfinite(value):
        raise DeepGUError("%s line %d: value '%s' is not finite" % (path, line, text))
    if abs(value) > MAX_ABS_VALUE:
        raise DeepGUError("%s line %d: value '%s' is beyond +-%g" % (path, line, text, MAX_ABS_VALUE))
    return value


#: a number written with a decimal comma (and no point): "0,123", "-1,5e-3".
_DECIMAL_COMMA = re.compile(r"\s*[-+]?\d+,\d+(?:[eE][-+]?\d+)?\s*")


def _delimiter(text):
    """The CSV's separator: a comma, or a semicolon or tab where the first line starts with 'wavelength' or 'band'
    followed by that character (as spreadsheets of decimal-comma locales write CSV); a comma otherwise."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    for delimiter in (";", "\t"):
        cell = first.split(delimiter, 1)[0].strip().strip('"').lower()
        if delimiter in first and cell in ("wavelength", "band") and "," not in first.split(delimiter, 1)[0]:
            return delimiter
    return ","


def read_spectra(path):
    """Read a library or bundle (CSV or ENVI); raise :class:`DeepGUError` naming any problem."""
    if formats.library_format(path) == formats.ENVI:
        spectral_set = SpectralSet(*envi_library.read(path))
        check_materials(path, len(set(spectral_set.materials)))
        check_material_names(path, spectral_set.materials)
        if np.any(np.abs(spectral_set.spectra) > MAX_ABS_VALUE):
            raise DeepGUError("%s holds values beyond +-%g" % (path, MAX_ABS_VALUE))
        return spectral_set
    if not os.path.isfile(path):
        raise DeepGUError("spectral library not found: %s" % path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
        delimiter = _delimiter(text)
        table = [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DeepGUError("%s is not a readable CSV file (%s)" % (path, e)) from None
    if delimiter != ",":    # a spreadsheet of a decimal-comma locale: 0,123 is 0.123
        table = [table[0]] + [[cell.replace(",", ".") if _DECIMAL_COMMA.fullmatch(cell) else cell for cell in row]
                              for row in table[1:]]
    if len(table) < 2:
        raise DeepGUError("%s has no spectra (expected a header and one row per band)" % path)
    header = [cell.strip() for cell in table[0]]
    key = header[0].lower()
    if key in ("wavelength", "band") and len(header) < 2:
        raise DeepGUError("%s has no material columns: its header is only '%s'" % (path, header[0]))
    if key not in ("wavelength", "band"):
        raise DeepGUError("%s: the first header cell must be 'wavelength' or 'band', followed by material names, "
                          "separated by commas (or semicolons or tabs)" % path)
    materials = header[1:]
    if any(not m for m in materials):
        raise DeepGUError("%s: a column has no material name in the header" % path)
    check_materials(path, len(set(materials)))
    check_material_names(path, materials)
    body = table[1:]
    positions = {}
    while body and body[0][0].strip().lower() in ("row", "col"):
        positions[body[0][0].strip().lower()] = body[0]
        body = body[1:]
    if positions and set(positions) != {"row", "col"}:
        raise DeepGUError("%s: pixel positions need both a 'row' and a 'col' line" % path)
    if not body:
        raise DeepGUError("%s has no band rows" % path)
    width = len(header)
    for offset, row in enumerate(body):
        if len(row) != width:
            raise DeepGUError("%s line %d: %d values, expected %d (missing values?)"
                              % (path, offset + 2 + len(positions), len(row), width))
    first_line = 2 + len(positions)
    values = np.array([[_number(cell, path, first_line + i) for cell in row] for i, row in enumerate(body)])
    pixel = {}
    for name, row in positions.items():
        if len(row) != width:
            raise DeepGUError("%s: the '%s' line has %d values, expected %d" % (path, name, len(row), width))
        pixel[name] = np.array([int(_number(cell, path, 2)) for cell in row[1:]], dtype=np.int64)
    wavelengths = values[:, 0] if key == "wavelength" else None
    return SpectralSet(
        spectra=values[:, 1:],
        materials=materials,
        wavelengths=wavelengths,
        rows=pixel.get("row"),
        cols=pixel.get("col"),
    )


def check_bands(spectral_set, n_bands, wavelengths, what, tolerance_nm=1.0, against="the image"):
    """Raise :class:`DeepGUError` if ``spectral_set`` does not match the bands of ``against`` (``n_bands``, and
    ``wavelengths`` in nm to ``tolerance_nm`` where both are known)."""
    if spectral_set.n_bands != n_bands:
        raise DeepGUError("%s has %d bands but %s has %d" % (what, spectral_set.n_bands, against, n_bands))
    if spectral_set.wavelengths is not None and wavelengths is not None:
        gap = float(np.max(np.abs(spectral_set.wavelengths - wavelengths)))
        if gap > tolerance_nm:
            raise DeepGUError("%s wavelengths differ from those of %s (%s)"
                              % (what, against, _wavelength_mismatch(spectral_set.wavelengths, wavelengths, gap,
                                                                     tolerance_nm, against)))


def _wavelength_mismatch(listed, expected, gap, tolerance_nm, against):
    """Why the wavelengths ``listed`` (a library's) are not ``expected`` (``against``'s, as many): a wavelength
    listed more often than ``expected`` has it, the same wavelengths in another order, or else the largest
    difference."""
    values, counts = np.unique(listed, return_counts=True)
    for value, count in zip(values, counts):
        has = int(np.count_nonzero(expected == value))
        if count > 1 and count > has:
            return "it lists %g nm %d times, %s %d time(s)" % (value, count, against, has)
    if float(np.max(np.abs(np.sort(listed) - np.sort(expected)))) <= tolerance_nm:
        order = "reverse" if float(np.max(np.abs(listed - expected[::-1]))) <= tolerance_nm else "another"
        return "the same wavelengths in %s order: sort its rows in the order of %s's bands" % (order, against)
    return "by up to %.3g nm" % gap
