"""File formats chosen by extension: rasters (GeoTIFF, ENVI) and spectral libraries (CSV, ENVI ``.sli``).

Rasters: ``.tif``/``.tiff`` are written as GeoTIFF; ``.dat``/``.img``/``.bsq`` as ENVI
(band-sequential data file plus ``<stem>.hdr`` holding ``band names``, ``wavelength``
and ``wavelength units``). An ENVI dataset is opened through its data file, so an
output named ``x.hdr`` is written as ``x.dat`` + ``x.hdr`` and reported as ``x.dat``.
Spectral libraries: ``.csv``, or ``.sli`` (or its ``.hdr``) for an ENVI spectral library.
"""

import os

import numpy as np
from osgeo import gdal

from ..errors import DeepGUError

GTIFF = "GTiff"
ENVI = "ENVI"
CSV = "CSV"

#: raster output extension -> GDAL driver.
RASTER_EXTENSIONS = {".tif": GTIFF, ".tiff": GTIFF, ".hdr": ENVI, ".dat": ENVI, ".img": ENVI, ".bsq": ENVI}
#: spectral library extension -> format (files of other extensions are read as CSV).
LIBRARY_EXTENSIONS = {".csv": CSV, ".sli": ENVI, ".hdr": ENVI}
#: data file written for an ENVI raster named by its header.
ENVI_DATA_EXTENSION = ".dat"

_MICRO_UNITS = ("micrometer", "micrometers", "micrometre", "micrometres", "micron", "microns", "um", "µm")
_GTIFF_OPTIONS = ["COMPRESS=DEFLATE", "TILED=YES", "BIGTIFF=IF_SAFER", "SPARSE_OK=TRUE"]  # unwritten = nodata


def _extension(path):
    return os.path.splitext(path)[1].lower()


def _choices(extensions):
    """``.tif, .tiff (GTiff) or .hdr, .dat (ENVI)``: the extensions grouped by format."""
    groups = {}
    for extension, kind in extensions.items():
        groups.setdefault(kind, []).append(extension)
    return " or ".join("%s (%s)" % (", ".join(group), kind) for kind, group in groups.items())


def raster_driver(path, what="output raster"):
    """GDAL driver for writing ``path``, chosen by its extension; ``what`` names the output in the error."""
    driver = RASTER_EXTENSIONS.get(_extension(path))
    if driver is None:
        raise DeepGUError("%s: cannot write '%s' files (%s); use %s" % (
            what, _extension(path) or "extension-less", path, _choices(RASTER_EXTENSIONS)))
    return driver


def raster_data_path(path):
    """The file GDAL (and QGIS) open for the raster output ``path``: the data file when ``path`` is an ENVI header."""
    stem, extension = os.path.splitext(path)
    return stem + ENVI_DATA_EXTENSION if extension.lower() == ".hdr" else path


def raster_sidecars(path, driver):
    """Files a dataset with data file ``path`` consists of besides it (header, GDAL's .aux.xml)."""
    sidecars = [path + ".aux.xml"]
    if driver == ENVI:
        sidecars.insert(0, os.path.splitext(path)[0] + ".hdr")
    return sidecars


def create_raster(path, driver, cols, rows, n_bands, nodata):
    """Create a float32 raster to be filled block by block; pixels never written read as ``nodata``."""
    if driver == GTIFF:
        options = _GTIFF_OPTIONS + (["INTERLEAVE=BAND"] if n_bands > 1 else [])
    else:
        options = ["INTERLEAVE=BSQ"]
    ds = gdal.GetDriverByName(driver).Create(path, cols, rows, n_bands, gdal.GDT_Float32, options)
    if ds is not None and driver == ENVI:       # ENVI has no sparse files: unwritten bytes would read as 0
        for i in range(n_bands):
            ds.GetRasterBand(i + 1).Fill(nodata)
        # the filled blocks onto the disk now: GDAL 3.10 writes large blocks straight to the file and would
        # flush these cached ones over them on close (every pixel nodata)
        ds.FlushCache()
    return ds


def write_envi_header_items(ds, final_path, wavelengths):
    """Header fields GDAL's ENVI driver writes only from its ``ENVI`` domain: wavelengths, and a description
    naming the final file rather than the temporary one (band names come from the band descriptions)."""
    ds.SetDescription(os.path.basename(final_path))
    if wavelengths is not None:
        ds.SetMetadata({"wavelength": "{%s}" % ", ".join("%g" % w for w in wavelengths),
                        "wavelength_units": "Nanometers"}, "ENVI")


def library_format(path, writing=False):
    """``CSV`` or ``ENVI`` for the spectral library ``path``; writing refuses extensions other than the known ones."""
    known = LIBRARY_EXTENSIONS.get(_extension(path))
    if known is None and writing:
        raise DeepGUError("cannot write spectral library %s: use %s" % (path, _choices(LIBRARY_EXTENSIONS)))
    return known or CSV


def to_nanometres(values, units):
    """Convert wavelengths to nm; unitless values below 30 are taken as micrometres."""
    values = np.asarray(values, dtype=np.float64)
    units = (units or "").strip().lower()
    if units in _MICRO_UNITS or (not units and np.nanmax(values) < 30.0):
        return values * 1000.0
    return values
