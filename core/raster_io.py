"""Raster input and output through GDAL, block by block.

Reading gives float32 blocks ``(bands, rows, cols)`` with the band scale/offset
applied and a validity mask ``(rows, cols)``: a pixel is valid only when every
band is finite and differs from the band's nodata value. Writing goes to a
temporary file beside the target that is renamed into place only when the
whole raster has been written, so a failure or a cancel never leaves a
half-written output. The format follows the output's extension (:mod:`core.formats`):
GeoTIFF, or ENVI with band names and wavelengths in its header.

Wavelengths are read (in nanometres) from, in order: GDAL band metadata
``wavelength``/``wavelength_units`` (ENVI driver, and what we write), the ENVI
domain's ``wavelength = {...}`` list, and the ``IMAGERY`` domain's
``CENTRAL_WAVELENGTH_UM``.
"""

import os
import re
import tempfile
from dataclasses import dataclass, field

import numpy as np
from osgeo import gdal, osr

from . import formats
from .errors import DeepGUError

#: nodata value written to every floating-point output.
NODATA = -9999.0


@dataclass
class RasterInfo:
    """What a raster is, without its pixels."""

    path: str
    n_bands: int
    rows: int
    cols: int
    crs_wkt: str
    transform: tuple
    nodata: list
    scales: list
    offsets: list
    wavelengths: np.ndarray = None
    band_names: list = field(default_factory=list)

    @property
    def n_pixels(self):
        return self.rows * self.cols


def _open(path, update=False):
    """Open ``path`` with GDAL or raise a :class:`DeepGUError` that names it."""
    if not os.path.exists(path):
        raise DeepGUError("raster not found: %s" % path)
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        ds = gdal.Open(path, gdal.GA_Update if update else gdal.GA_ReadOnly)
        message = gdal.GetLastErrorMsg()
    finally:
        gdal.PopErrorHandler()
    if ds is None:
        raise DeepGUError("cannot read %s as a raster%s" % (path, (": " + message) if message else ""))
    return ds


def _parse_list(text):
    return [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]


def _read_wavelengths(ds):
    """Per-band wavelengths in nm, or None when the file does not carry them."""
    n = ds.RasterCount
    bands = [ds.GetRasterBand(i + 1) for i in range(n)]
    values = [b.GetMetadataItem("wavelength") for b in bands]
    if all(v not in (None, "") for v in values):
        units = bands[0].GetMetadataItem("wavelength_units") or ds.GetMetadataItem("wavelength_units")
        return formats.to_nanometres([_parse_list(v)[0] for v in values], units)
    envi = ds.GetMetadata("ENVI") or {}
    if "wavelength" in envi:
        parsed = _parse_list(envi["wavelength"])
        if len(parsed) == n:
            return formats.to_nanometres(parsed, envi.get("wavelength_units"))
    imagery = [b.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") for b in bands]
    if all(v not in (None, "") for v in imagery):
        return np.array([float(v) for v in imagery]) * 1000.0
    return None


def _band_names(ds):
    """Band descriptions; for ENVI files the header's ``band names`` (GDAL appends the wavelength to those)."""
    envi = (ds.GetMetadata("ENVI") or {}).get("band_names", "")
    names = [name.strip() for name in envi.strip().strip("{}").split(",")] if envi else []
    if len(names) == ds.RasterCount:
        return names
    return [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]


def open_raster(path):
    """Describe the raster at ``path`` (:class:`RasterInfo`); read no pixels."""
    ds = _open(path)
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    if not bands:
        raise DeepGUError("%s has no bands" % path)
    return RasterInfo(
        path=path,
        n_bands=ds.RasterCount,
        rows=ds.RasterYSize,
        cols=ds.RasterXSize,
        crs_wkt=ds.GetProjection() or "",
        transform=tuple(ds.GetGeoTransform()),
        nodata=[b.GetNoDataValue() for b in bands],
        scales=[b.GetScale() if b.GetScale() is not None else 1.0 for b in bands],
        offsets=[b.GetOffset() if b.GetOffset() is not None else 0.0 for b in bands],
        wavelengths=_read_wavelengths(ds),
        band_names=_band_names(ds),
    )


def read_block(info, row0, n_rows, col0=0, n_cols=None):
    """Read a window of the raster.

    Returns ``(data, valid)``: ``data`` float32 ``(bands, n_rows, n_cols)`` in
    physical units (scale and offset applied), ``valid`` bool ``(n_rows, n_cols)``;
    invalid pixels are set to 0 in ``data`` so they cannot poison sums.
    """
    n_cols = info.cols - col0 if n_cols is None else n_cols
    ds = _open(info.path)
    data = np.empty((info.n_bands, n_rows, n_cols), dtype=np.float32)
    valid = np.ones((n_rows, n_cols), dtype=bool)
    for i in range(info.n_bands):
        raw = ds.GetRasterBand(i + 1).ReadAsArray(col0, row0, n_cols, n_rows)
        if raw is None:
            raise DeepGUError("cannot read band %d of %s (file truncated or corrupt?)" % (i + 1, info.path))
        nodata = info.nodata[i]
        if nodata is not None and not np.isnan(nodata):
            valid &= raw != nodata
        band = raw.astype(np.float32)
        if info.scales[i] != 1.0 or info.offsets[i] != 0.0:
            band = band * np.float32(info.scales[i]) + np.float32(info.offsets[i])
        valid &= np.isfinite(band)
        data[i] = band
    data[:, ~valid] = 0.0
    return data, valid


def read_all(path):
    """Read the whole raster: ``(data (bands, rows, cols) float32, valid (rows, cols), info)``."""
    info = open_raster(path)
    data, valid = read_block(info, 0, info.rows)
    return data, valid, info


def block_rows(info, memory_mb, bytes_per_pixel=None, halo=0):
    """Rows per block so that one block of ``bytes_per_pixel`` per pixel fits ``memory_mb``.

    By default a pixel costs 4 bytes per band, times 4 for the working copies
    a step makes. ``halo`` extra rows on each side are included in the budget.
    """
    per_pixel = bytes_per_pixel or 16 * info.n_bands
    rows = int(memory_mb * 2 ** 20 // (per_pixel * max(info.cols, 1))) - 2 * halo
    return max(1, min(info.rows, rows))


def iter_blocks(info, rows_per_block):
    """Yield ``(row0, n_rows)`` full-width strips covering the raster from the top."""
    for row0 in range(0, info.rows, rows_per_block):
        yield row0, min(rows_per_block, info.rows - row0)


def valid_pixels(data, valid):
    """Flatten a block to the ``(bands, n_valid)`` matrix of its valid pixels (row-major order)."""
    return data.reshape(data.shape[0], -1)[:, valid.ravel()]


def scatter(values, valid):
    """Place ``(k, n_valid)`` pixel values into a ``(k, rows, cols)`` block, NaN elsewhere."""
    out = np.full((values.shape[0],) + valid.shape, np.nan, dtype=np.float32)
    out[:, valid] = values
    return out


class RasterWriter:
    """Write a float32 GeoTIFF or ENVI raster (by extension) block by block; it appears at ``path`` only on
    :meth:`close`.

    Use as a context manager: leaving the block with an exception deletes the
    temporary file, so nothing half-written is left behind::

        with RasterWriter(path, like=info, n_bands=3, band_names=names) as out:
            out.write(block, row0)      # block (n_bands, rows, cols); NaN = nodata
    """

    def __init__(self, path, like, n_bands, band_names=None, wavelengths=None, rows=None, cols=None):
        self.driver = formats.raster_driver(path)
        self.path = os.path.abspath(formats.raster_data_path(path))
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise DeepGUError("output folder does not exist: %s" % folder)
        if not os.access(folder, os.W_OK):
            raise DeepGUError("output folder is not writable: %s" % folder)
        fd, self.tmp_path = tempfile.mkstemp(prefix=".deepgu-", suffix=os.path.splitext(self.path)[1], dir=folder)
        os.close(fd)
        rows = like.rows if rows is None else rows
        cols = like.cols if cols is None else cols
        ds = formats.create_raster(self.tmp_path, self.driver, cols, rows, n_bands, NODATA)
        if ds is None:
            os.unlink(self.tmp_path)
            raise DeepGUError("cannot create %s: %s" % (path, gdal.GetLastErrorMsg()))
        ds.SetGeoTransform(like.transform)
        if like.crs_wkt:
            ds.SetProjection(like.crs_wkt)
        for i in range(n_bands):
            band = ds.GetRasterBand(i + 1)
            band.SetNoDataValue(NODATA)
            if band_names:
                band.SetDescription(str(band_names[i]))
            if wavelengths is not None:
                band.SetMetadataItem("wavelength", "%g" % wavelengths[i])
                band.SetMetadataItem("wavelength_units", "Nanometers")
        if self.driver == formats.ENVI:
            formats.write_envi_header_items(ds, self.path, wavelengths)
        self._ds = ds

    def write(self, block, row0, col0=0):
        """Write ``block`` ``(n_bands, rows, cols)`` at ``(row0, col0)``; NaN becomes nodata."""
        block = np.where(np.isfinite(block), block, NODATA).astype(np.float32)
        for i in range(block.shape[0]):
            self._ds.GetRasterBand(i + 1).WriteArray(block[i], col0, row0)

    def close(self):
        """Flush and move the finished file to its final path."""
        self._ds.FlushCache()
        self._ds = None
        finals = formats.raster_sidecars(self.path, self.driver)
        for tmp, final in zip(formats.raster_sidecars(self.tmp_path, self.driver), finals):
            if os.path.exists(tmp):
                os.replace(tmp, final)
            elif os.path.exists(final):      # a stale one from an earlier file of that name
                os.unlink(final)
        os.replace(self.tmp_path, self.path)

    def abort(self):
        """Discard the temporary file."""
        self._ds = None
        for tmp in [self.tmp_path] + formats.raster_sidecars(self.tmp_path, self.driver):
            if os.path.exists(tmp):
                os.unlink(tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def write_raster(path, data, like, band_names=None, wavelengths=None):
    """Write a whole ``(bands, rows, cols)`` array (NaN = nodata) georeferenced like ``like``."""
    data = np.asarray(data)
    with RasterWriter(path, like, data.shape[0], band_names, wavelengths, data.shape[1], data.shape[2]) as out:
        out.write(data, 0)


def georeference(rows, cols, crs_epsg=32633, origin=(500000.0, 4500000.0), pixel_size=30.0):
    """A :class:`RasterInfo`-like georeference for arrays that have none (synthetic scenes, .mat files)."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(crs_epsg)
    return RasterInfo(
        path="",
        n_bands=0,
        rows=rows,
        cols=cols,
        crs_wkt=srs.ExportToWkt(),
        transform=(origin[0], pixel_size, 0.0, origin[1], 0.0, -pixel_size),
        nodata=[],
        scales=[],
        offsets=[],
    )


class OutputSet:
    """Several rasters written together: all of them appear, or none (on error or cancel).

    ::

        with OutputSet() as outputs:
            outputs.add("abundances", path, like=info, n_bands=P, band_names=names)
            outputs.add("rmse", rmse_path_or_None, like=info, n_bands=1)   # None: not requested
            outputs.write("rmse", block, row0)                             # no-op when not requested
    """

    def __init__(self):
        self._writers = {}

    def add(self, key, path, like, n_bands, band_names=None, wavelengths=None):
        if path:
            self._writers[key] = RasterWriter(path, like, n_bands, band_names, wavelengths)

    def __contains__(self, key):
        return key in self._writers

    def write(self, key, block, row0, col0=0):
        if key in self._writers:
            self._writers[key].write(block, row0, col0)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        for writer in self._writers.values():
            if exc_type is None:
                writer.close()
            else:
                writer.abort()
        return False


def pixel_centres(transform, rows, cols):
    """Map coordinates ``(x, y)`` of the centres of pixels ``(rows, cols)`` under a GDAL geotransform."""
    rows = np.asarray(rows, dtype=np.float64) + 0.5
    cols = np.asarray(cols, dtype=np.float64) + 0.5
    x = transform[0] + cols * transform[1] + rows * transform[2]
    y = transform[3] + cols * transform[4] + rows * transform[5]
    return x, y


def endmember_band_names(names, wavelengths=None, n_bands=None):
    """Band names of a per-pixel endmember raster (material-major): ``"soil @ 450 nm"`` or ``"soil band 3"``."""
    if wavelengths is None:
        return ["%s band %d" % (name, i + 1) for name in names for i in range(n_bands)]
    return ["%s @ %g nm" % (name, w) for name in names for w in wavelengths]
