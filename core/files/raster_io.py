"""Raster input and output through GDAL, block by block.

Reading gives float32 blocks ``(bands, rows, cols)`` with the band scale/offset
applied and a validity mask ``(rows, cols)``: a pixel is valid only when every
band is finite and differs from the band's nodata value, and the raster's own
mask (an internal or ``.msk`` mask band, or an alpha band) does not exclude it. Writing goes to a
temporary file beside the target that is renamed into place only when the
whole raster has been written, so a failure or a cancel never leaves a
half-written output: :class:`RasterWriter` checks every GDAL write and the
close, and commits through :mod:`.atomic` (umask permissions, stale sidecars
removed, all-or-nothing sets). The format follows the output's extension
(:mod:`core.files.formats`): GeoTIFF, or ENVI with band names and wavelengths in its header.

Wavelengths are read (in nanometres) from, in order: GDAL band metadata
``wavelength``/``wavelength_units`` (ENVI driver, and what we write), the ENVI
domain's ``wavelength = {...}`` list, and the ``IMAGERY`` domain's
``CENTRAL_WAVELENGTH_UM``.
"""

import contextlib
import errno
import os
import re
from dataclasses import dataclass, field, replace

import numpy as np
from osgeo import gdal, osr

from . import formats
from .atomic import TempTarget, commit
from ..errors import DeepGUError
from ..validation import check_declared_size, check_value_range
from .window import window_transform

#: nodata value written to every floating-point output.
NODATA = -9999.0

# GDAL reports errors here by return value (None, CE_Failure) and error handler, never by exception: said
# explicitly (GDAL 3.9+ warns when no one has), unless the process chose exceptions (e.g. QGIS's Python), which
# _gdal_checked then turns off for this module's calls only (per thread; GDAL 3.7+'s ExceptionMgr).
if not gdal.GetUseExceptions():
    gdal.DontUseExceptions()


@contextlib.contextmanager
def _return_codes_process_wide():
    """GDAL < 3.7 (no per-thread mode): exceptions, when the process chose them, off in the block, on after."""
    chosen = gdal.GetUseExceptions()
    if chosen:
        gdal.DontUseExceptions()
    try:
        yield
    finally:
        if chosen:
            gdal.UseExceptions()


_RETURN_CODES = (lambda: gdal.ExceptionMgr(useExceptions=False)) if hasattr(gdal, "ExceptionMgr") \
    else _return_codes_process_wide


@contextlib.contextmanager
def _gdal_checked(handler="CPLQuietErrorHandler"):
    """GDAL calls in the block report errors by return value and to ``handler`` (default: silently, for
    ``gdal.GetLastErrorMsg``), not by exception, whatever exception mode the process chose."""
    with _RETURN_CODES():
        gdal.PushErrorHandler(handler)
        try:
            yield
        finally:
            gdal.PopErrorHandler()


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
    #: the parameter the raster came from (e.g. "INPUT"), named in errors.
    name: str = ""
    #: where this raster's pixel (0, 0) lies in the file: non-zero for a :meth:`window` of it.
    row_offset: int = 0
    col_offset: int = 0
    #: the bands (0-based) whose GDAL mask band must be read (:func:`_mask_bands`); a pixel is invalid where one is 0.
    masks: list = field(default_factory=list)
    _dataset: object = field(default=None, repr=False, compare=False)

    @property
    def n_pixels(self):
        return self.rows * self.cols

    @property
    def label(self):
        """How errors name this raster: ``INPUT 'path'`` (or just the path)."""
        return "%s '%s'" % (self.name, self.path) if self.name else self.path

    def window(self, window):
        """This raster restricted to ``window`` (:class:`.window.PixelWindow`): rows, cols and geotransform are the
        window's, and :func:`read_block` reads within it. None: the whole raster."""
        if window is None:
            return self
        return replace(self, rows=window.rows, cols=window.cols, transform=window_transform(self.transform, window),
                       row_offset=self.row_offset + window.row0, col_offset=self.col_offset + window.col0)

    def dataset(self):
        """The GDAL dataset, opened once and kept for every block read."""
        if self._dataset is None:
            self._dataset = _open(self.path)
        return self._dataset

    def __getstate__(self):
        """Pickled (e.g. sent to a cluster worker) without the open dataset, which the receiver reopens."""
        state = dict(self.__dict__)
        state["_dataset"] = None
        return state


def _open(path, update=False):
    """Open ``path`` with GDAL or raise a :class:`DeepGUError` that names it."""
    if not os.path.exists(path):
        raise DeepGUError("raster not found: %s" % path)
    with _gdal_checked():
        ds = gdal.Open(path, gdal.GA_Update if update else gdal.GA_ReadOnly)
        message = gdal.GetLastErrorMsg()
    if ds is None:
        raise DeepGUError("cannot read %s as a raster%s" % (path, (": " + message) if message else ""))
    return ds


def _parse_list(text):
    return [float(v) for v in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]


def _read_wavelengths(ds):
    """Per-band wavelengths in nm, or None when the file does not carry them."""
    n = ds.RasterCount
    bands = [ds.GetRasterBand(i + 1) for i in range(n)]
    values = [_parse_list(b.GetMetadataItem("wavelength") or "") for b in bands]
    if all(values):     # a band without a number (missing, "n/a") leaves the wavelengths unknown
        units = bands[0].GetMetadataItem("wavelength_units") or ds.GetMetadataItem("wavelength_units")
        return formats.to_nanometres([v[0] for v in values], units)
    envi = ds.GetMetadata("ENVI") or {}
    if "wavelength" in envi:
        parsed = _parse_list(envi["wavelength"])
        if len(parsed) == n:
            return formats.to_nanometres(parsed, envi.get("wavelength_units"))
    imagery = [_parse_list(b.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") or "") for b in bands]
    if all(imagery):
        return np.array([v[0] for v in imagery]) * 1000.0
    return None


def _band_names(ds):
    """Band descriptions; for ENVI files the header's ``band names`` (GDAL appends the wavelength to those)."""
    envi = (ds.GetMetadata("ENVI") or {}).get("band_names", "")
    names = [name.strip() for name in envi.strip().strip("{}").split(",")] if envi else []
    if len(names) == ds.RasterCount:
        return names
    return [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]


def open_raster(path, name=""):
    """Describe the raster at ``path`` (:class:`RasterInfo`; ``name``: its parameter, for errors); read no pixels.

    A raster whose header declares more than :data:`.validation.MAX_PIXELS`
    pixels is refused here, before anything is allocated.
    """
    label = "%s '%s'" % (name, path) if name else path
    try:
        ds = _open(path)
    except DeepGUError as error:
        raise DeepGUError("%s: %s" % (name, error) if name else str(error)) from None
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    if not bands:
        raise DeepGUError("%s has no bands" % label)
    check_declared_size(label, ds.RasterYSize, ds.RasterXSize, ds.RasterCount)
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
        name=name,
        masks=_mask_bands(bands),
        _dataset=ds,
    )


def _mask_bands(bands):
    """The bands (0-based) with a mask of their own that nodata does not already say: an internal or ``.msk``
    mask (GeoTIFF's ``GDAL_TIFF_INTERNAL_MASK``) or an alpha band. A mask shared by all bands (``GMF_PER_DATASET``)
    is read once, from the first band."""
    masks = []
    for i, band in enumerate(bands):
        flags = band.GetMaskFlags()
        if flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA):
            continue
        if flags & gdal.GMF_PER_DATASET:
            return [i]
        masks.append(i)
    return masks


def read_block(info, row0, n_rows, col0=0, n_cols=None):
    """Read a window of the raster, all bands at once from its open dataset.

    Returns ``(data, valid)``: ``data`` float32 ``(bands, n_rows, n_cols)`` in
    physical units (scale and offset applied), ``valid`` bool ``(n_rows, n_cols)``;
    invalid pixels are set to 0 in ``data`` so they cannot poison sums. Valid
    values beyond :data:`.validation.MAX_ABS_VALUE` are refused.
    """
    n_cols = info.cols - col0 if n_cols is None else n_cols
    ds = info.dataset()
    types = {ds.GetRasterBand(i + 1).DataType for i in range(info.n_bands)}
    buf_type = types.pop() if len(types) == 1 else gdal.GDT_Float64   # mixed types: compare nodata exactly
    with _gdal_checked():
        raw = ds.ReadAsArray(info.col_offset + col0, info.row_offset + row0, n_cols, n_rows, buf_type=buf_type)
    if raw is None:
        raise DeepGUError("cannot read %s (file truncated or corrupt?)" % info.label)
    raw = raw.reshape(info.n_bands, n_rows, n_cols)
    valid = np.ones((n_rows, n_cols), dtype=bool)
    for i, nodata in enumerate(info.nodata):
        if nodata is not None and not np.isnan(nodata):
            valid &= raw[i] != nodata
    for i in info.masks:
        with _gdal_checked():
            mask = ds.GetRasterBand(i + 1).GetMaskBand().ReadAsArray(info.col_offset + col0, info.row_offset + row0,
                                                                      n_cols, n_rows)
        if mask is None:
            raise DeepGUError("cannot read the mask of %s (file truncated or corrupt?)" % info.label)
        valid &= mask != 0
    with np.errstate(over="ignore"):        # float64 beyond float32 becomes inf: refused just below
        data = raw.astype(np.float32)
    if raw.dtype.itemsize > 4 and raw.dtype.kind == "f" and np.any(np.isfinite(raw[:, valid]) & ~np.isfinite(
            data[:, valid])):
        raise DeepGUError("%s has values beyond the float32 range (rescale it or set its nodata)" % info.label)
    scales = np.array(info.scales, dtype=np.float32)
    offsets = np.array(info.offsets, dtype=np.float32)
    if np.any(scales != 1.0) or np.any(offsets != 0.0):
        data *= scales[:, None, None]
        data += offsets[:, None, None]
    valid &= np.all(np.isfinite(data), axis=0)
    data[:, ~valid] = 0.0
    check_value_range(info.label, data)
    return data, valid


def read_all(path):
    """Read the whole raster: ``(data (bands, rows, cols) float32, valid (rows, cols), info)``."""
    info = open_raster(path)
    data, valid = read_block(info, 0, info.rows)
    return data, valid, info


#: share of a job's MEMORY_MB that GDAL's block cache may take during the job.
BLOCK_CACHE_SHARE = 0.25


@contextlib.contextmanager
def bounded_block_cache(memory_mb):
    """GDAL's block cache limited to ``BLOCK_CACHE_SHARE * memory_mb`` MiB inside the ``with`` block.

    GDAL keeps the blocks it reads and writes in one process-wide cache of up to 5 % of the RAM by
    default (1.2 GiB on a 24 GiB machine). Reading a large raster window by window fills it, so a run's
    memory grows tile after tile by up to that much beyond its working set. The limit is only ever
    lowered, and the previous one is restored on exit (QGIS's own setting is left as it was).
    """
    before = gdal.GetCacheMax()
    gdal.SetCacheMax(min(before, max(int(BLOCK_CACHE_SHARE * memory_mb * 2 ** 20), 2 ** 20)))
    try:
        yield
    finally:
        gdal.SetCacheMax(before)


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


class _GdalErrors:
    """Collect the GDAL errors (CE_Failure and worse) raised inside the block instead of printing them."""

    def __init__(self):
        self.messages = []

    @property
    def cause(self):
        """The first error, the cause of those after it (``_tiffWriteProc:No space left on device``, then
        ``TIFFAppendToStrip:Write error``), without libtiff's ``function:`` prefix; None without errors."""
        return re.sub(r"^_?[A-Za-z]\w*:(?=\S)", "", self.messages[0]) if self.messages else None

    def _handler(self, level, number, message):
        if level >= gdal.CE_Failure:
            self.messages.append(message)

    def __enter__(self):
        self._checked = _gdal_checked(self._handler)
        self._checked.__enter__()
        return self

    def __exit__(self, *exc):
        return self._checked.__exit__(*exc)


#: free space below which a failed raster write is put down to a full disk.
FULL_DISK_BYTES = 2 ** 20


def _full_disk(path):
    """"No space left on device" when the file system of ``path`` is (almost) full, else None. A failed write
    asks: libtiff 4.5+ prints the write's own error to stderr instead of passing it to GDAL, which then only
    reports "Write error at scanline 0"."""
    try:
        stat = os.statvfs(os.path.dirname(path))
    except OSError:
        return None
    return os.strerror(errno.ENOSPC) if stat.f_bavail * stat.f_frsize < FULL_DISK_BYTES else None


class RasterWriter:
    """Write a float32 GeoTIFF or ENVI raster (by extension, :mod:`core.files.formats`) block by block; it appears
    at ``path`` only when committed (an ENVI output named ``x.hdr`` is written as ``x.dat`` + ``x.hdr``).

    The raster is written to a :class:`.atomic.TempTarget` (``name`` is the
    parameter named in errors), the ENVI header and any ``.aux.xml`` GDAL
    writes beside it to companion targets committed with it; every GDAL write and the final close are
    checked, and any GDAL error (a full disk, a quota) fails with "cannot write
    NAME 'path': reason", deleting the temporary file and leaving an existing
    file at ``path`` untouched. Use as a context manager: leaving the block
    with an exception discards the temporary file::

        with RasterWriter(path, like=info, n_bands=3, band_names=names) as out:
            out.write(block, row0)      # block (n_bands, rows, cols); NaN = nodata

    (:class:`OutputSet` commits several writers together.)
    """

    def __init__(self, path, like, n_bands, band_names=None, wavelengths=None, rows=None, cols=None, name="OUTPUT"):
        self.driver = formats.raster_driver(path)
        self.target = TempTarget(formats.raster_data_path(path), name, sidecars=True)
        self.path = self.target.path
        self._ds = None
        self._companions = []
        rows = like.rows if rows is None else rows
        cols = like.cols if cols is None else cols
        try:
            # the files GDAL writes beside the temporary data file (ENVI header, .aux.xml), committed with it
            for tmp, final in zip(formats.raster_sidecars(self.target.tmp, self.driver),
                                  formats.raster_sidecars(self.path, self.driver)):
                self._companions.append(TempTarget(final, name, tmp=tmp))
            with _GdalErrors() as errors:
                ds = formats.create_raster(self.target.tmp, self.driver, cols, rows, n_bands, NODATA)
                if ds is not None:
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
            self._check(errors, ds is None)
        except BaseException:
            self.abort()
            raise

    def _check(self, errors, failed=False):
        if errors.messages or failed:
            raise self.target.error(_full_disk(self.target.tmp) or errors.cause or "GDAL could not create the file")

    def write(self, block, row0, col0=0):
        """Write ``block`` ``(n_bands, rows, cols)`` at ``(row0, col0)``; NaN becomes nodata."""
        block = np.where(np.isfinite(block), block, NODATA).astype(np.float32)
        with _GdalErrors() as errors:
            failed = any(self._ds.GetRasterBand(i + 1).WriteArray(block[i], col0, row0) != gdal.CE_None
                         for i in range(block.shape[0]))
        self._check(errors, failed)

    def finish(self):
        """Flush and close the temporary file, checking that GDAL wrote all of it; return the
        :class:`.atomic.TempTarget` list to commit (the data file and the sidecars GDAL wrote beside it)."""
        with _GdalErrors() as errors:
            self._ds.FlushCache()
            self._ds = None         # closes the dataset: the last tiles and the header are written here
        self._check(errors)
        if os.path.getsize(self.target.tmp) == 0:
            raise self.target.error("the file is empty after writing")
        written = [sidecar for sidecar in self._companions if os.path.exists(sidecar.tmp)]
        for sidecar in self._companions:
            if sidecar not in written:
                sidecar.discard()
        return [self.target] + written

    def close(self):
        """Finish the file and move it, with its header or sidecars, to its final path (removing stale sidecars)."""
        try:
            commit(self.finish())
        except BaseException:
            self.abort()
            raise

    def abort(self):
        """Discard the temporary files."""
        with _GdalErrors():
            self._ds = None
        for target in [self.target] + self._companions:
            target.discard()

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
    """Several rasters written together: all of them appear, or none (on error, cancel or a failed rename).

    ``names`` maps each key to the parameter named in errors (default: the key)::

        with OutputSet({"abundances": "OUTPUT", "rmse": "OUTPUT_RMSE"}) as outputs:
            outputs.add("abundances", path, like=info, n_bands=P, band_names=names)
            outputs.add("rmse", rmse_path_or_None, like=info, n_bands=1)   # None: not requested
            outputs.write("rmse", block, row0)                             # no-op when not requested
    """

    def __init__(self, names=None):
        self._writers = {}
        self._names = names or {}

    def add(self, key, path, like, n_bands, band_names=None, wavelengths=None):
        if path:
            self._writers[key] = RasterWriter(path, like, n_bands, band_names, wavelengths,
                                              name=self._names.get(key, key))

    def __contains__(self, key):
        return key in self._writers

    def write(self, key, block, row0, col0=0):
        if key in self._writers:
            self._writers[key].write(block, row0, col0)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        writers = list(self._writers.values())
        try:
            if exc_type is None:
                commit([target for writer in writers for target in writer.finish()])
        finally:
            for writer in writers:
                writer.abort()      # no-op for committed files
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
