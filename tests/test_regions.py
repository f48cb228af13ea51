"""Analyst regions (issue 22): deepgu:regions against a brute-force pixel-centre test, and partial supervision.

The reference pixel sets come from a per-pixel loop over pixel centres with an even-odd crossing test on
every ring (outer rings and holes alike), written here without GDAL's rasteriser; region vertices in
another CRS are reprojected with osr first (vertices move, edges stay straight: what QGIS does too).
"""

import math

import numpy as np
import pytest
from osgeo import ogr, osr

from conftest import require_qgis
from core.errors import DeepGUError
from core.jobs import endmembers as endmembers_job
from core.jobs import regions as job
from core.files.library import read_spectra
from core.files.raster_io import open_raster, read_all, write_raster
from core.extraction.regions import TRIM, Region, read_regions
from helpers import run_fails, run_json

ROWS, COLS, BANDS = 24, 30, 5
ORIGIN, PIXEL = (500000.0, 4500000.0), 30.0     # EPSG:32633, 30 m pixels
UTM = 32633


def _srs(epsg):
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _utm_xy(col, row):
    """Map coordinates of pixel coordinates (col, row) (fractional; 0.5 = a pixel centre)."""
    return ORIGIN[0] + PIXEL * col, ORIGIN[1] - PIXEL * row


def _write_image(folder, nodata_pixels=()):
    """A random 5-band UTM raster with nodata -1 at ``nodata_pixels`` (row, col); returns (path, image)."""
    from core.files.raster_io import georeference
    rng = np.random.default_rng(3)
    image = rng.uniform(0.05, 0.9, (BANDS, ROWS, COLS)).astype(np.float32)
    path = str(folder / "image.tif")
    write_raster(path, image, georeference(ROWS, COLS, UTM, ORIGIN, PIXEL))
    from osgeo import gdal
    ds = gdal.Open(path, gdal.GA_Update)
    for band in range(BANDS):
        ds.GetRasterBand(band + 1).SetNoDataValue(-1.0)
    for row, col in nodata_pixels:
        ds.GetRasterBand(2).WriteArray(np.array([[-1.0]], dtype=np.float32), col, row)
    ds = None
    return path, image


# Features in pixel coordinates (col, row), vertices off the centre grid (no centre lies on an edge).
SQUARE_WITH_HOLE = [[(2.2, 1.3), (11.7, 1.1), (12.1, 9.8), (1.9, 10.2)], [(5.1, 4.2), (8.3, 4.4), (7.9, 7.6)]]
TRIANGLE = [[(14.3, 2.2), (27.6, 3.1), (19.8, 9.4)]]
PARTS = [[[(3.3, 13.4), (7.7, 13.2), (6.1, 18.8)]], [[(9.4, 14.1), (13.8, 14.3), (13.6, 17.7), (9.2, 17.9)]]]
POINTS = [(20.3, 15.6), (22.9, 15.2), (25.5, 19.9)]
ROAD = [[(15.2, 12.3), (28.8, 12.4), (28.7, 13.6), (15.1, 13.7)]]


def _polygon_wkt(rings, to_map):
    return "POLYGON (%s)" % ", ".join("(%s)" % ", ".join("%r %r" % to_map(*v) for v in ring + [ring[0]])
                                      for ring in rings)


def _features(to_map):
    """(WKT, material) of the test features, vertices mapped by ``to_map(col, row) -> (x, y)``."""
    multi = "MULTIPOLYGON (%s)" % ", ".join(_polygon_wkt(p, to_map)[len("POLYGON "):] for p in PARTS)
    points = "MULTIPOINT (%s)" % ", ".join("(%r %r)" % to_map(*p) for p in POINTS[:2])
    return [(_polygon_wkt(SQUARE_WITH_HOLE, to_map), "field"), (_polygon_wkt(TRIANGLE, to_map), "water"),
            (multi, "soil"), (points, "tree"), ("POINT (%r %r)" % to_map(*POINTS[2]), "tree"),
            (_polygon_wkt(ROAD, to_map), "road")]


def _to_lonlat():
    transform = osr.CoordinateTransformation(_srs(UTM), _srs(4326))
    return lambda col, row: transform.TransformPoint(*_utm_xy(col, row))[:2]


def _write_layer(path, features, epsg, field="material", driver="GPKG"):
    source = ogr.GetDriverByName(driver).CreateDataSource(str(path))
    layer = source.CreateLayer("regions", _srs(epsg), ogr.wkbUnknown)
    layer.CreateField(ogr.FieldDefn(field, ogr.OFTString))
    for wkt, material in features:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        if material is not None:
            feature.SetField(field, material)
        layer.CreateFeature(feature)
    source = None
    return str(path)


def _inside(x, y, rings):
    """Even-odd crossing test of the point (x, y) against every ring (holes included)."""
    inside = False
    for ring in rings:
        for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
    return inside


def brute_force(features, from_map):
    """{material: set of (row, col)}: pixel centres inside polygons, pixels containing points, per pixel."""
    expected = {}
    for wkt, material in features:
        geometry = ogr.CreateGeometryFromWkt(wkt)
        taken = expected.setdefault(material, set())
        parts = [geometry.GetGeometryRef(i) for i in range(geometry.GetGeometryCount())] \
            if geometry.GetGeometryName().startswith("MULTI") else [geometry]
        for part in parts:
            if part.GetGeometryName() == "POINT":
                col, row = from_map(part.GetX(), part.GetY())
                taken.add((math.floor(row), math.floor(col)))
                continue
            rings = [[from_map(*part.GetGeometryRef(i).GetPoint_2D(j))
                      for j in range(part.GetGeometryRef(i).GetPointCount() - 1)]
                     for i in range(part.GetGeometryCount())]
            for row in range(ROWS):
                for col in range(COLS):
                    if _inside(col + 0.5, row + 0.5, rings):
                        taken.add((row, col))
    return expected


def _utm_to_pixel(x, y):
    return (x - ORIGIN[0]) / PIXEL, (ORIGIN[1] - y) / PIXEL


def _lonlat_to_pixel():
    transform = osr.CoordinateTransformation(_srs(4326), _srs(UTM))
    return lambda lon, lat: _utm_to_pixel(*transform.TransformPoint(lon, lat)[:2])


def _trimmed_mean_by_sorting(spectra):
    """The reference as the docs define it, computed the plain way: sort pixels by distance to the median."""
    median = np.median(spectra, axis=1)
    order = sorted(range(spectra.shape[1]), key=lambda n: (float(np.linalg.norm(spectra[:, n] - median)), n))
    return spectra[:, order[:math.ceil((1 - TRIM) * spectra.shape[1])]].mean(axis=1)


def _check_against_brute_force(output, bundles, image, expected, nodata=()):
    expected = {m: {p for p in pixels if p not in set(nodata)} for m, pixels in expected.items()}
    shared = set.union(*[a & b for a in expected.values() for b in expected.values() if a is not b] or [set()])
    library, bundle = read_spectra(output), read_spectra(bundles)
    assert library.materials == list(expected)          # order of first appearance
    for p, (material, spectra, rows, cols) in enumerate(bundle.by_material()):
        pixels = expected[material] - shared
        assert set(zip(rows.tolist(), cols.tolist())) == pixels, material
        np.testing.assert_allclose(spectra, image[:, rows, cols], rtol=1e-6)
        np.testing.assert_allclose(library.spectra[:, p], _trimmed_mean_by_sorting(spectra.astype(np.float64)),
                                   rtol=1e-6)


def test_regions_match_brute_force_in_the_rasters_crs(tmp_path):
    nodata = [(5, 3), (16, 11), (12, 20)]                  # inside the square, the multi-part, the road
    path, image = _write_image(tmp_path, nodata)
    features = _features(_utm_xy)
    layer = _write_layer(tmp_path / "regions.gpkg", features, UTM)
    output, bundles = str(tmp_path / "refs.csv"), str(tmp_path / "bundles.csv")
    expected = brute_force(features, _utm_to_pixel)
    assert all(len(pixels) >= 3 for pixels in expected.values())
    assert (5, 3) in expected["field"] and (16, 11) in expected["soil"] and (12, 20) in expected["road"]
    assert job.main([path, layer, "material", output, "--bundles", bundles, "--min-pixels", "1"]) == 0
    _check_against_brute_force(output, bundles, image, expected, nodata)


def test_regions_in_another_crs_with_a_shared_pixel(tmp_path):
    """Regions in EPSG:4326 over a UTM raster; a pixel in regions of two materials is left out of both."""
    path, image = _write_image(tmp_path)
    overlap = [[(11.2, 5.4), (15.6, 5.3), (15.5, 6.7), (11.3, 6.6)]]        # crosses the field and the triangle
    features = _features(_to_lonlat()) + [(_polygon_wkt(overlap, _to_lonlat()), "water")]
    layer = _write_layer(tmp_path / "regions.geojson", features, 4326, driver="GeoJSON")
    output, bundles = str(tmp_path / "refs.sli"), str(tmp_path / "bundles.csv")
    expected = brute_force(features, _lonlat_to_pixel())
    assert expected["field"] & expected["water"]
    job.run(path, read_regions(layer, "material", open_raster(path).crs_wkt), output, bundles, min_pixels=1)
    _check_against_brute_force(output, bundles, image, expected)


def test_the_trimmed_mean_drops_a_stray_pixel(tmp_path):
    """Nine pixels of one spectrum and one very different: the reference is the nine's spectrum."""
    path, image = _write_image(tmp_path)
    from osgeo import gdal
    ds = gdal.Open(path, gdal.GA_Update)
    values = np.tile(np.array([0.2, 0.3, 0.4, 0.5, 0.6], dtype=np.float32)[:, None, None], (1, 2, 5))
    values[:, 1, 4] = 0.9
    for band in range(BANDS):
        ds.GetRasterBand(band + 1).WriteArray(values[band], 10, 10)
    ds = None
    box = [[(10.1, 10.1), (14.9, 10.1), (14.9, 11.9), (10.1, 11.9)]]
    output = str(tmp_path / "refs.csv")
    job.run(path, [Region(_polygon_wkt(box, _utm_xy), "roof", "feature 1")], output)
    np.testing.assert_allclose(read_spectra(output).spectra[:, 0], [0.2, 0.3, 0.4, 0.5, 0.6], rtol=1e-6)


@pytest.mark.parametrize("case, message", [
    ("few", "MIN_PIXELS: material 'tree' has 3 valid pixel(s) inside REGIONS, fewer than 5"),
    ("field", "MATERIAL_FIELD: REGIONS has no field 'class' (its fields: material)"),
    ("outside", "REGIONS: feature 2 (material 'water') lies outside INPUT"),
    ("empty", "REGIONS has no features"),
    ("null", "MATERIAL_FIELD: feature 2 has no material"),
    ("line", "REGIONS: feature 1 is a LINESTRING; draw polygons or points"),
])
def test_bad_regions_are_refused_naming_the_parameter(tmp_path, case, message):
    path, _ = _write_image(tmp_path)
    features = _features(_utm_xy)
    if case == "outside":
        features[1] = (_polygon_wkt([[(40.2, 1.3), (45.7, 1.1), (44.1, 9.8)]], _utm_xy), "water")
    elif case == "empty":
        features = []
    elif case == "null":
        features[1] = (features[1][0], None)
    elif case == "line":
        features = [("LINESTRING (%r %r, %r %r)" % (_utm_xy(1.2, 1.3) + _utm_xy(9.7, 8.1)), "road")]
    layer = _write_layer(tmp_path / "regions.gpkg", features, UTM)
    output = str(tmp_path / "refs.csv")
    with pytest.raises(DeepGUError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        job.run(path, read_regions(layer, "class" if case == "field" else "material", open_raster(path).crs_wkt),
                output)
    assert not (tmp_path / "refs.csv").exists()


# --- partial supervision ---

def _linear_scene(side=40, seed=5):
    """A linear-mixing scene of 3 library spectra without variability: a random map of 8 x 8 pixel patches, one
    material each, smoothed over 5 x 5 pixels (pure inside the patches, mixed along their edges), 40 dB noise.
    Rows 2-7, 14-19 and 26-31 of columns 2-7 are pure material 0, 1 and 2."""
    from scipy.ndimage import uniform_filter

    from core.evaluation.synthetic import make_scene
    library = make_scene("DC2", 10, 10, seed=0).reference                   # (L, 3) shipped spectra
    rng = np.random.default_rng(seed)
    labels = np.kron(rng.integers(0, 3, (side // 8, side // 8)), np.ones((8, 8), dtype=np.int64))
    labels[:, :10] = np.repeat(np.arange(3), [12, 12, side - 24])[:, None]
    A = np.stack([uniform_filter((labels == p).astype(np.float64), 5, mode="nearest") for p in range(3)])
    image = np.einsum("lp,prc->lrc", library, A)
    image += rng.normal(0, np.sqrt(np.mean(image ** 2) / 1e4), image.shape)
    return image.astype(np.float32), A, library


def test_partial_supervision_holds_the_given_references_and_finds_the_rest():
    from core.extraction.bundles import spectral_angles
    from core.extraction.endmembers import best_start, image_strips, refine_purest, vca_starts_fixed
    image, _, library = _linear_scene()
    L = library.shape[0]
    given = library[:, [1]] * 1.03                         # a given reference, slightly off: kept as given
    starts = vca_starts_fixed(image.reshape(L, -1), given, 3, seed=0, restarts=6)
    assert all(np.array_equal(start[:, :1], given) for start in starts)
    best, _, _ = best_start(image, starts, n_fixed=1)
    M, _ = refine_purest(image_strips(image), starts[best], n_fixed=1)
    assert np.array_equal(M[:, :1], given)
    angles = np.degrees(spectral_angles(M[:, 1:], library[:, [0, 2]]))
    assert angles.min(axis=0).max() < 1.0, angles          # materials 0 and 2 each have a free column within 1 deg


def test_endmembers_with_regions(tmp_path):
    """deepgu:endmembers' job: the named material first, exactly its trimmed region mean; too many named: refused."""
    from core.extraction.bundles import spectral_angles
    from core.files.raster_io import georeference
    image, _, library = _linear_scene()
    path = str(tmp_path / "scene.tif")
    write_raster(path, image, georeference(40, 40, UTM, ORIGIN, PIXEL))
    block = [[(2.1, 26.1), (7.9, 26.1), (7.9, 31.9), (2.1, 31.9)]]          # the pure block of material 2
    regions = [Region(_polygon_wkt(block, _utm_xy), "water", "feature 1")]
    output = str(tmp_path / "em.csv")
    endmembers_job.run(path, 3, output, seed=0, regions=regions)
    result = read_spectra(output)
    assert result.materials == ["water", "EM1", "EM2"]
    np.testing.assert_allclose(result.spectra[:, 0], _trimmed_mean_by_sorting(
        read_all(path)[0][:, 26:32, 2:8].reshape(image.shape[0], -1).astype(np.float64)), rtol=1e-6)
    angles = np.degrees(spectral_angles(result.spectra, library)).min(axis=1)
    assert angles.max() < 1.0, angles
    three = regions + [Region(_polygon_wkt([[(2.1, row + 0.1), (7.9, row + 0.1), (7.9, row + 5.9)]], _utm_xy), name,
                              "feature %d" % fid) for fid, row, name in ((2, 2, "soil"), (3, 14, "tree"))]
    with pytest.raises(DeepGUError, match=r"^ENDMEMBERS \(MATERIALS in the workflow\) is 2 but REGIONS name 3"):
        endmembers_job.run(path, 2, output, regions=three)


# --- through qgis_process: the QGIS side (feature source, field, reprojection with QgsCoordinateTransform) ---

def test_qgis_regions_match_brute_force(qgis_process, tmp_path):
    """deepgu:regions with a GeoPackage in EPSG:4326 over a UTM raster with nodata inside the regions."""
    nodata = [(5, 3), (16, 11), (12, 20)]
    path, image = _write_image(tmp_path, nodata)
    features = _features(_to_lonlat())
    layer = _write_layer(tmp_path / "regions.gpkg", features, 4326)
    output, bundles = str(tmp_path / "refs.csv"), str(tmp_path / "bundles.sli")
    run_json(qgis_process, "deepgu:regions", INPUT=path, REGIONS=layer, MATERIAL_FIELD="material", MIN_PIXELS=1,
             OUTPUT=output, OUTPUT_BUNDLES=bundles)
    _check_against_brute_force(output, bundles, image, brute_force(features, _lonlat_to_pixel()), nodata)


def test_qgis_regions_refuse_bad_input_naming_the_parameter(qgis_process, tmp_path):
    require_qgis()
    path, _ = _write_image(tmp_path)
    layer = _write_layer(tmp_path / "regions.gpkg", _features(_to_lonlat()), 4326)
    output = str(tmp_path / "refs.csv")
    for extra, message in (({"MATERIAL_FIELD": "class"}, "MATERIAL_FIELD: REGIONS has no field 'class'"),
                           ({"MATERIAL_FIELD": "material"}, "MIN_PIXELS: material 'tree' has 3 valid pixel(s)")):
        text = run_fails(qgis_process, "deepgu:regions", INPUT=path, REGIONS=layer, OUTPUT=output, **extra)
        assert message in text and "Traceback" not in text, text[-2000:]
    assert not (tmp_path / "refs.csv").exists()


def test_qgis_workflow_with_regions(qgis_process, tmp_path):
    """The workflow with REGIONS naming one of three materials: its reference is the region's, first and named,
    the other two are found around it; MATERIALS below the number named is refused naming MATERIALS."""
    from core.extraction.bundles import spectral_angles
    from core.files.raster_io import georeference
    image, _, library = _linear_scene()
    path = str(tmp_path / "scene.tif")
    write_raster(path, image, georeference(40, 40, UTM, ORIGIN, PIXEL))
    block = [[(2.1, 26.1), (7.9, 26.1), (7.9, 31.9), (2.1, 31.9)]]          # pure material 2
    layer = _write_layer(tmp_path / "regions.geojson", [(_polygon_wkt(block, _to_lonlat()), "water")], 4326,
                         driver="GeoJSON")
    outputs = {name: str(tmp_path / file) for name, file in (
        ("endmembers:ENDMEMBERS_CSV", "em.csv"), ("fcls:FCLS_ABUNDANCES", "fcls.tif"),
        ("bundles:BUNDLES_CSV", "b.csv"), ("trainvae:MODEL_FILE", "model.pt"),
        ("unmix:DEEPGU_ABUNDANCES", "deepgu.tif"))}
    run_json(qgis_process, "deepgu:workflow", INPUT=path, MATERIALS=3, SEED=0, REGIONS=layer,
             MATERIAL_FIELD="material", **outputs)
    references = read_spectra(outputs["endmembers:ENDMEMBERS_CSV"])
    assert references.materials == ["water", "EM1", "EM2"]
    np.testing.assert_allclose(references.spectra[:, 0], _trimmed_mean_by_sorting(
        image[:, 26:32, 2:8].reshape(image.shape[0], -1).astype(np.float64)), rtol=1e-6)
    assert np.degrees(spectral_angles(references.spectra, library)).min(axis=1).max() < 1.0
    abundances = read_all(outputs["unmix:DEEPGU_ABUNDANCES"])[0]
    assert abundances.shape == (3, 40, 40) and abundances[0, 26:32, 2:8].mean() > 0.9
    triangles = [(_polygon_wkt([[(2.1, row + 0.1), (7.9, row + 0.1), (7.9, row + 5.9)]], _to_lonlat()), name)
                 for row, name in ((2, "soil"), (14, "tree"), (26, "water"))]
    three = _write_layer(tmp_path / "three.geojson", triangles, 4326, driver="GeoJSON")
    text = run_fails(qgis_process, "deepgu:workflow", INPUT=path, MATERIALS=2, REGIONS=three,
                     MATERIAL_FIELD="material", **outputs)
    assert "(MATERIALS in the workflow) is 2 but REGIONS name 3 materials" in text, text[-2000:]
    assert "Traceback" not in text


def test_command_line_reports_bad_input_in_one_line(tmp_path, capsys):
    path, _ = _write_image(tmp_path)
    layer = _write_layer(tmp_path / "regions.gpkg", _features(_utm_xy), UTM)
    assert job.main([path, layer, "class", str(tmp_path / "refs.csv")]) == 2
    assert capsys.readouterr().err.strip() == ("error: MATERIAL_FIELD: REGIONS has no field 'class' "
                                               "(its fields: material)")
    assert not (tmp_path / "refs.csv").exists()
