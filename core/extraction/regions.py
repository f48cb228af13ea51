"""Analyst regions: reference spectra from the pixels inside polygons (or under points) drawn on a raster.

A region is a geometry in the raster's CRS (OGR; given as WKB or WKT) with the material it outlines.
Its pixels are found per feature, on the window of its bounding box only (read in row strips within
:data:`MEMORY_MB`, so the scene never has to fit in memory):

- a polygon (or multi-polygon; holes excluded) takes every pixel whose **centre** is inside it;
- a point (or multi-point) takes the pixel containing it;

both by ``gdal.RasterizeLayer`` on an in-memory raster of the window (``ALL_TOUCHED=FALSE``: GDAL burns
a pixel when its centre lies inside the polygon, and the pixel a point falls in). Nodata pixels
(:func:`core.files.raster_io.read_block`'s mask) are skipped. A pixel inside several features of one material
counts once; a pixel inside features of two materials is ambiguous and left out of both (reported).

The reference of material p is the **trimmed mean** of its pixels ``Y_p`` (L, n_p)::

    med = band-wise median of Y_p,     d_n = ||y_n - med||_2,
    m_p = mean of the y_n with d_n <= the ceil((1 - TRIM) n_p)-th smallest d.

The mean, not the median or the spectral (angle) median, because FCLS and the DeepGU prior take the
reference as the *typical* spectrum at its typical brightness: the mean of a material's pure pixels
is the least-squares spectrum of those pixels (abundances 1), and brightness matters as much as shape
(issue 22: four shapes within 1.3-6.7 degrees of the right ones, at the wrong brightness, doubled FCLS's
error; the analyst means gave the reference spectra's accuracy). A band-wise median of skewed brightness
is biased, and an angle-based median ignores brightness. Trimming the :data:`TRIM` pixels farthest
(Euclidean, so brightness counts) from the band-wise median drops what a careless outline lets in -
a car on the road, a shore pixel, a shadow - while, for a material whose brightness varies
symmetrically, it cuts both tails and keeps the mean.
"""

import math
from dataclasses import dataclass

import numpy as np
from osgeo import gdal, ogr, osr

from ..defaults import REGIONS
from ..errors import DeepGUError
from ..feedback import ensure
from ..files.raster_io import block_rows, read_block
from ..validation import check_materials
from ..files.window import PixelWindow, window_transform

#: share of each material's pixels, the farthest from its band-wise median, left out of its reference.
TRIM = 0.1
#: geometry kinds a region may be (flattened OGR types).
_POLYGONS = (ogr.wkbPolygon, ogr.wkbMultiPolygon)
_POINTS = (ogr.wkbPoint, ogr.wkbMultiPoint)


@dataclass
class Region:
    """One feature: ``geometry`` (WKB bytes, WKT str or ``ogr.Geometry``) in the raster's CRS, its ``material``
    (str or None when the field is empty) and ``label`` (how messages name it, e.g. "feature 3")."""

    geometry: object
    material: object
    label: str


def _ogr_geometry(region):
    """``region.geometry`` as an ``ogr.Geometry``; refuses an empty one or a line."""
    geometry = region.geometry
    try:
        if isinstance(geometry, (bytes, bytearray, memoryview)):
            geometry = ogr.CreateGeometryFromWkb(bytes(geometry)) if len(geometry) else None
        elif isinstance(geometry, str):
            geometry = ogr.CreateGeometryFromWkt(geometry) if geometry.strip() else None
    except RuntimeError:        # GDAL with exceptions enabled (QGIS's Python)
        geometry = None
    if geometry is None or geometry.IsEmpty():
        raise DeepGUError("REGIONS: %s has no geometry" % region.label)
    kind = ogr.GT_Flatten(geometry.GetGeometryType())
    if kind not in _POLYGONS + _POINTS:
        raise DeepGUError("REGIONS: %s is a %s; draw polygons or points" % (region.label, geometry.GetGeometryName()))
    return geometry


def _material(region):
    name = "" if region.material is None else str(region.material).strip()
    if not name:
        raise DeepGUError("MATERIAL_FIELD: %s has no material (the field is empty or NULL)" % region.label)
    return name


def geometry_window(info, geometry):
    """The :class:`PixelWindow` of ``info``'s grid holding every pixel ``geometry`` can take, or None outside."""
    xmin, xmax, ymin, ymax = geometry.GetEnvelope()
    inverse = gdal.InvGeoTransform(info.transform)
    cols, rows = zip(*(gdal.ApplyGeoTransform(inverse, x, y) for x in (xmin, xmax) for y in (ymin, ymax)))
    col0, row0 = max(math.floor(min(cols)), 0), max(math.floor(min(rows)), 0)
    col1, row1 = min(math.floor(max(cols)) + 1, info.cols), min(math.floor(max(rows)) + 1, info.rows)
    if col1 <= col0 or row1 <= row0:
        return None
    return PixelWindow(row0, col0, row1 - row0, col1 - col0)


def rasterise(geometry, transform, window):
    """(rows, cols) bool: the pixels of ``window`` (of a grid with GDAL ``transform``) that ``geometry`` takes."""
    target = gdal.GetDriverByName("MEM").Create("", window.cols, window.rows, 1, gdal.GDT_Byte)
    target.SetGeoTransform(window_transform(transform, window))
    source = ogr.GetDriverByName("Memory").CreateDataSource("")
    layer = source.CreateLayer("region", geom_type=geometry.GetGeometryType())
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(geometry)
    layer.CreateFeature(feature)
    gdal.PushErrorHandler("CPLQuietErrorHandler")       # "no spatial reference": both are in INPUT's CRS
    try:
        failed = gdal.RasterizeLayer(target, [1], layer, burn_values=[1], options=["ALL_TOUCHED=FALSE"])
        message = gdal.GetLastErrorMsg()
    finally:
        gdal.PopErrorHandler()
    if failed != gdal.CE_None:
        raise DeepGUError("REGIONS: GDAL could not rasterise a feature (%s)" % message)
    return target.GetRasterBand(1).ReadAsArray().astype(bool)


def _region_pixels(info, geometry, memory_mb, feedback):
    """``(flat indices (n,), spectra (L, n) float32)`` of the valid pixels ``geometry`` takes; None outside."""
    window = geometry_window(info, geometry)
    if window is None:
        return None
    step = block_rows(info, memory_mb)
    flats, spectra = [], []
    for row0 in range(window.row0, window.row0 + window.rows, step):
        feedback.check_canceled()
        strip = PixelWindow(row0, window.col0, min(step, window.row0 + window.rows - row0), window.cols)
        inside = rasterise(geometry, info.transform, strip)
        if not inside.any():
            continue
        data, valid = read_block(info, strip.row0, strip.rows, strip.col0, strip.cols)
        rows, cols = np.nonzero(inside & valid)
        flats.append((strip.row0 + rows) * info.cols + strip.col0 + cols)
        spectra.append(data[:, rows, cols])
    if not flats:
        return np.empty(0, dtype=np.int64), np.empty((info.n_bands, 0), dtype=np.float32)
    return np.concatenate(flats), np.concatenate(spectra, axis=1)


def region_pixels(info, regions, memory_mb=REGIONS["MEMORY_MB"], feedback=None):
    """The valid pixels of each material's regions on the raster ``info`` (:class:`core.files.raster_io.RasterInfo`).

    ``regions``: :class:`Region` features in ``info``'s CRS. Returns ``[(material, flat indices (n,) sorted,
    spectra (L, n) float32), ...]`` in order of the materials' first appearance. Refuses, naming the parameter,
    an empty list, a feature without geometry or material or outside the raster, more than
    :data:`core.validation.MAX_MATERIALS` materials, and pixels beyond ``memory_mb`` in all.
    """
    feedback = ensure(feedback)
    if not regions:
        raise DeepGUError("REGIONS has no features")
    found = {}
    budget = memory_mb * 2 ** 20
    held = 0
    for index, region in enumerate(regions):
        material, geometry = _material(region), _ogr_geometry(region)
        pixels = _region_pixels(info, geometry, memory_mb, feedback)
        if pixels is None:
            raise DeepGUError("REGIONS: %s (material '%s') lies outside INPUT (is the layer's CRS right?)"
                              % (region.label, material))
        found.setdefault(material, []).append(pixels)
        held += pixels[1].nbytes
        if held > budget:
            raise DeepGUError("REGIONS cover more pixels than MEMORY_MB (%g MB) holds: draw smaller regions or raise "
                              "MEMORY_MB" % memory_mb)
        feedback.set_progress(100.0 * (index + 1) / len(regions))
    check_materials("REGIONS", len(found))
    groups = []
    for material, parts in found.items():
        flat = np.concatenate([f for f, _ in parts])
        spectra = np.concatenate([s for _, s in parts], axis=1)
        flat, first = np.unique(flat, return_index=True)        # a pixel in two features of one material: once
        groups.append([material, flat, spectra[:, first]])
    everything = np.concatenate([flat for _, flat, _ in groups])
    values, counts = np.unique(everything, return_counts=True)
    shared = values[counts > 1]
    if shared.size:
        feedback.info("WARNING: %d pixel(s) lie inside regions of two materials; left out of both" % shared.size)
        for group in groups:
            keep = ~np.isin(group[1], shared)
            group[1], group[2] = group[1][keep], group[2][:, keep]
    return [tuple(group) for group in groups]


def trimmed_mean(spectra, trim=TRIM):
    """The reference of pixels ``spectra`` (L, n): the mean of the ``ceil((1 - trim) n)`` pixels nearest
    (Euclidean) to their band-wise median (module docstring). Returns (L,) float64."""
    Y = np.asarray(spectra, dtype=np.float64)
    distance = np.linalg.norm(Y - np.median(Y, axis=1, keepdims=True), axis=0)
    keep = max(1, math.ceil((1.0 - trim) * Y.shape[1]))
    return Y[:, np.argsort(distance, kind="stable")[:keep]].mean(axis=1)


def region_references(info, regions, min_pixels=REGIONS["MIN_PIXELS"], memory_mb=REGIONS["MEMORY_MB"],
                      feedback=None):
    """Reference spectra from analyst regions: ``(materials [K], M (L, K) float64, groups)``.

    ``groups`` is :func:`region_pixels`'s output. A material with fewer than ``min_pixels`` valid pixels
    is refused, naming MIN_PIXELS.
    """
    groups = region_pixels(info, regions, memory_mb, feedback)
    for material, flat, _ in groups:
        if flat.size < min_pixels:
            raise DeepGUError("MIN_PIXELS: material '%s' has %d valid pixel(s) inside REGIONS, fewer than %d: draw "
                              "larger regions (a polygon takes the pixels whose centre it contains) or lower "
                              "MIN_PIXELS" % (material, flat.size, min_pixels))
    M = np.stack([trimmed_mean(spectra) for _, _, spectra in groups], axis=1)
    return [material for material, _, _ in groups], M, groups


def read_regions(path, field, crs_wkt):
    """The features of the vector file ``path`` (any OGR format, first layer) as :class:`Region` s in the CRS
    ``crs_wkt`` (reprojected when both CRSs are known), their material from the attribute ``field``."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        source = ogr.Open(path)
    finally:
        gdal.PopErrorHandler()
    if source is None or source.GetLayerCount() == 0:
        raise DeepGUError("REGIONS: cannot read '%s' as a vector layer" % path)
    layer = source.GetLayer(0)
    definition = layer.GetLayerDefn()
    names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
    if field not in names:
        raise DeepGUError("MATERIAL_FIELD: REGIONS has no field '%s' (its fields: %s)"
                          % (field, ", ".join(names) or "none"))
    transform = None
    source_srs = layer.GetSpatialRef()
    if source_srs is not None and crs_wkt:
        target_srs = osr.SpatialReference()
        target_srs.ImportFromWkt(crs_wkt)
        for srs in (source_srs, target_srs):
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        if not source_srs.IsSame(target_srs):
            transform = osr.CoordinateTransformation(source_srs, target_srs)
    regions = []
    for feature in layer:
        geometry = feature.GetGeometryRef()
        geometry = None if geometry is None else geometry.Clone()
        if geometry is not None and transform is not None:
            geometry.Transform(transform)
        material = feature.GetField(field) if feature.IsFieldSetAndNotNull(field) else None
        regions.append(Region(geometry if geometry is not None else b"", material, "feature %d" % feature.GetFID()))
    return regions
