"""Integration: deepgu:compare through qgis_process.bin, on a small synthetic scene with its truth and a small model."""

import math

import pytest

from core.files.library import write_spectra
from core.files.raster_io import georeference, write_raster
from helpers import run_fails, run_json, scene_and_model
from test_compare import decode_png, images, summary_row

SIDE = 10
LABELS = ("FCLS", "PLMM", "ELMM", "GLMM", "DeepGU")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare-qgis")
    scene, image, model = scene_and_model(folder, SIDE, seed=2, epochs=5)
    paths = {"image": image, "model": model, "library": str(folder / "library.csv"),
             "reference": str(folder / "reference.tif"), "endmembers": str(folder / "endmembers.tif")}
    write_spectra(paths["library"], scene.reference, scene.names, scene.wavelengths)
    write_raster(paths["reference"], scene.abundances, georeference(SIDE, SIDE), band_names=scene.names)
    L, P = scene.reference.shape
    write_raster(paths["endmembers"], scene.endmembers.transpose(1, 0, 2, 3).reshape(P * L, SIDE, SIDE),
                 georeference(SIDE, SIDE))
    return scene, paths


def test_compare_writes_a_report_with_every_method(qgis_one_thread, files, tmp_path):
    scene, paths = files
    output = str(tmp_path / "report.html")
    results = run_json(qgis_one_thread, "deepgu:compare", INPUT=paths["image"], ENDMEMBERS=paths["library"],
                       MODEL=paths["model"], REFERENCE=paths["reference"], REFERENCE_ENDMEMBERS=paths["endmembers"],
                       OUTPUT_HTML=output)
    assert results["OUTPUT_HTML"] == output
    with open(output, encoding="utf-8") as stream:
        page = stream.read()
    found = images(page)
    for method in ("fcls", "plmm", "elmm", "glmm", "deepgu"):
        for name in scene.names:
            assert decode_png(found["abundance %s %s" % (method, name)]).shape == (1, SIDE, SIDE), (method, name)
        assert decode_png(found["rmse %s" % method]).shape == (1, SIDE, SIDE)
        rmse_a, _, sam_m = (float(cell) for cell in summary_row(page, method)[4:])    # RMSE_A, RMSE_M, SAM_M
        assert 0 < rmse_a < 0.5 and 0 < sam_m <= 3 * math.pi, (method, rmse_a, sam_m)    # 3 angles in [0, pi]
    assert "<th>RMSE_A</th><th>RMSE_M</th><th>SAM_M</th>" in page
    assert all("<th>%s</th>" % label in page for label in LABELS)


def test_the_report_is_an_html_output_and_bad_methods_are_refused(qgis_one_thread, files, tmp_path):
    _, paths = files
    done = qgis_one_thread("help", "deepgu:compare")
    assert "OUTPUT_HTML: <outputHtml>" in done.stdout           # the Results Viewer opens it
    output = tmp_path / "refused.html"
    message = run_fails(qgis_one_thread, "deepgu:compare", INPUT=paths["image"], ENDMEMBERS=paths["library"],
                        METHODS="0,4", OUTPUT_HTML=str(output))
    assert "METHODS includes deepgu, which needs a MODEL" in message and not output.exists()
