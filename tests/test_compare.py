"""deepgu:compare's core (core/jobs/compare.py, core/evaluation/report.py): every method's maps in the report, its
scores those of core.evaluation.metrics against the known truth of a synthetic scene, bad input refused before any
work, cancel."""

import base64
import os
import re
import tempfile
import uuid

import numpy as np
import pytest
from osgeo import gdal

from core.errors import Canceled, DeepGUError
from core.evaluation.metrics import evaluate, rmse
from core.evaluation.report import map_png, png
from core.files.library import write_spectra
from core.files.raster_io import georeference, write_raster
from core.files.window import PixelWindow
from core.jobs import compare
from core.solvers.fcls import fcls
from helpers import Recorder, scene_and_model

SIDE = 12
METHODS = ("fcls", "plmm", "elmm", "glmm", "deepgu")


def decode_png(data):
    """A PNG's bands as arrays (bands, rows, cols), decoded by GDAL (not by the writer under test)."""
    path = "/vsimem/%s.png" % uuid.uuid4().hex
    gdal.FileFromMemBuffer(path, data)
    try:
        dataset = gdal.Open(path)
        assert dataset is not None and dataset.GetDriver().ShortName == "PNG"
        return dataset.ReadAsArray().reshape(dataset.RasterCount, dataset.RasterYSize, dataset.RasterXSize)
    finally:
        gdal.Unlink(path)


def images(page):
    """``{alt text: PNG bytes}`` of the page's embedded images."""
    return {alt: base64.b64decode(data) for data, alt in
            re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"', page)}


def summary_row(page, method):
    """The cells of ``method``'s row of the summary table."""
    row = re.search(r'<tr class="method" id="row-%s">(.*?)</tr>' % method, page).group(1)
    return re.findall(r"<td>(.*?)</td>", row)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 12 x 12 DC2 scene with a small trained model, its library (M0) and its true abundances."""
    folder = tmp_path_factory.mktemp("compare")
    scene, image, model = scene_and_model(folder, SIDE, seed=1, epochs=5)
    paths = {"image": image, "model": model, "library": str(folder / "library.csv"),
             "reference": str(folder / "reference.tif"), "folder": folder}
    write_spectra(paths["library"], scene.reference, scene.names, scene.wavelengths)
    write_raster(paths["reference"], scene.abundances, georeference(SIDE, SIDE), band_names=scene.names)
    return scene, paths


@pytest.fixture(scope="module")
def report(files):
    """Every method, scored against the reference."""
    scene, paths = files
    feedback = Recorder()
    output = str(paths["folder"] / "report.html")
    summary = compare.run(paths["image"], paths["library"], output, model_path=paths["model"],
                          reference=paths["reference"], feedback=feedback)
    with open(output, encoding="utf-8") as stream:
        return summary, stream.read(), feedback


def test_png_decodes_to_the_pixels_written():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    alpha = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    assert np.array_equal(decode_png(png(gray))[0], gray)
    assert np.array_equal(decode_png(png(gray, alpha)), np.stack([gray, alpha]))


def test_map_png_scales_and_makes_nodata_transparent():
    values = np.array([[0.0, 0.5, 1.0], [2.0, -1.0, np.nan]])
    gray, alpha = decode_png(map_png(values, 0.0, 1.0))
    assert gray[0].tolist() == [0, 128, 255] and gray[1, :2].tolist() == [255, 0]
    assert alpha.tolist() == [[255, 255, 255], [255, 255, 0]]


def test_every_method_has_every_map_of_the_scene_size(files, report):
    scene, _ = files
    summary, page, _ = report
    assert list(summary) == list(METHODS)
    found = images(page)
    for method in METHODS:
        for name in scene.names:
            assert decode_png(found["abundance %s %s" % (method, name)]).shape == (1, SIDE, SIDE)
        assert decode_png(found["rmse %s" % method]).shape == (1, SIDE, SIDE)
    for name in scene.names:
        assert decode_png(found["abundance reference %s" % name]).shape == (1, SIDE, SIDE)


def test_fcls_scores_are_those_of_core_metrics(files, report):
    """FCLS solved here independently: its RMSE_A (eq. 14, materials matched) and reconstruction RMSE as
    core.evaluation.metrics computes them."""
    scene, _ = files
    summary, page, _ = report
    Y = scene.image.reshape(scene.image.shape[0], -1).astype(np.float64)
    A = fcls(Y, scene.reference)
    expected = evaluate(A, scene.abundances.reshape(3, -1))
    assert summary["fcls"]["RMSE_A"] == pytest.approx(expected["RMSE_A"], rel=1e-5)
    assert summary["fcls"]["perm"] == list(expected["perm"])
    assert summary["fcls"]["RMSE_Y"] == pytest.approx(rmse(Y, scene.reference @ A), rel=1e-4)
    assert summary_row(page, "fcls")[4] == "%.4g" % summary["fcls"]["RMSE_A"]


def test_maps_shown_are_the_scored_ones_in_the_reference_order(files, report):
    """For every method, the abundance maps in the page (rows: the reference's materials) score against the truth
    as the table says, to the PNGs' 8-bit rounding."""
    scene, _ = files
    summary, page, _ = report
    found = images(page)
    for method in METHODS:
        shown = np.stack([decode_png(found["abundance %s %s" % (method, name)])[0] for name in scene.names]) / 255.0
        assert abs(rmse(shown, scene.abundances) - summary[method]["RMSE_A"]) <= 0.5 / 255 + 1e-6, method
        cells = summary_row(page, method)
        assert cells[3] == "%.4g" % summary[method]["RMSE_Y"] and cells[4] == "%.4g" % summary[method]["RMSE_A"]


def test_weights_are_those_the_methods_logged(report):
    summary, page, feedback = report
    assert summary["fcls"]["weights"].startswith("none")
    for method, prefix in compare.WEIGHTS_LINE.items():
        weights = summary[method]["weights"]
        stated = weights.split(" (auto: ")[0] if method == "deepgu" else weights
        assert "[%s] %s%s" % (compare.LABELS[method], prefix, stated) in feedback.messages
        assert summary_row(page, method)[2] == weights.replace("'", "&#x27;")
    levels = [m.partition(": ")[2] for m in feedback.messages if m.startswith("[DeepGU] auto regularisation")]
    assert summary["deepgu"]["weights"].endswith(" (auto: %s)" % levels[0])
    assert "lambda_psi" in summary["elmm"]["weights"] and "lambda_Z" in summary["deepgu"]["weights"]
    assert feedback.progress[-1] == 100 and feedback.progress == sorted(feedback.progress)


def test_an_extent_window_is_compared_alone(files, tmp_path):
    scene, paths = files
    output = str(tmp_path / "window.html")
    window = PixelWindow(2, 3, 5, 6)
    summary = compare.run(paths["image"], paths["library"], output, methods=["fcls"], reference=paths["reference"],
                          window=window)
    with open(output, encoding="utf-8") as stream:
        found = images(stream.read())
    assert set(found) == {"abundance %s %s" % (m, n) for m in ("reference", "fcls") for n in scene.names} | {
        "rmse fcls"}
    assert all(decode_png(data).shape == (1, 5, 6) for data in found.values())
    Y = scene.image[:, 2:7, 3:9].reshape(scene.image.shape[0], -1).astype(np.float64)
    expected = evaluate(fcls(Y, scene.reference), scene.abundances[:, 2:7, 3:9].reshape(3, -1))
    assert summary["fcls"]["RMSE_A"] == pytest.approx(expected["RMSE_A"], rel=1e-5)


def test_without_a_model_or_reference_deepgu_is_left_out_and_nothing_scored(files, tmp_path):
    _, paths = files
    output = str(tmp_path / "plain.html")
    summary = compare.run(paths["image"], paths["library"], output, methods=["fcls", "plmm"])
    assert list(summary) == ["fcls", "plmm"] and "RMSE_A" not in summary["fcls"]
    assert compare.choose_methods([], None) == ["fcls", "plmm", "elmm", "glmm"]
    assert compare.choose_methods(["deepgu", "fcls"], "model.pt") == ["fcls", "deepgu"]


def _refused(files, tmp_path, **kwargs):
    _, paths = files
    output = tmp_path / "refused.html"
    arguments = dict(methods=["fcls"], feedback=Recorder())
    arguments.update(kwargs)
    with pytest.raises(DeepGUError) as error:
        compare.run(arguments.pop("image", paths["image"]), arguments.pop("library", paths["library"]), str(output),
                    **arguments)
    assert not output.exists() and not arguments["feedback"].progress     # refused before any method ran
    return str(error.value)


def test_bad_input_is_refused_naming_the_parameter(files, tmp_path, monkeypatch):
    scene, paths = files
    assert "METHODS" in _refused(files, tmp_path, methods=["fcls", "deepgu"]) and "MODEL" in _refused(
        files, tmp_path, methods=["deepgu"])
    assert "METHODS" in _refused(files, tmp_path, methods=["nmf"])
    two = str(tmp_path / "two.tif")
    write_raster(two, scene.abundances[:2], georeference(SIDE, SIDE))
    assert _refused(files, tmp_path, reference=two).startswith("REFERENCE has 2 bands")
    shifted = str(tmp_path / "shifted.tif")
    write_raster(shifted, scene.abundances, georeference(SIDE, SIDE, origin=(500300.0, 4500000.0)))
    assert _refused(files, tmp_path, reference=shifted).startswith("REFERENCE starts")
    library = str(tmp_path / "two.csv")
    write_spectra(library, scene.reference[:, :2], scene.names[:2], scene.wavelengths)
    assert _refused(files, tmp_path, methods=["deepgu"], model_path=paths["model"], library=library).startswith(
        "MODEL has 3 materials but ENDMEMBERS has 2")
    monkeypatch.setattr(compare, "COMPARE_MAX_PIXELS", SIDE * SIDE - 1)
    message = _refused(files, tmp_path)
    assert "EXTENT" in message and "%d pixels" % (SIDE * SIDE) in message


def test_cancel_stops_promptly_and_leaves_nothing(files, tmp_path, monkeypatch):
    _, paths = files
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    output = tmp_path / "canceled.html"
    feedback = Recorder(cancel_after=1, counting="messages")      # canceled once FCLS logged its first line
    with pytest.raises(Canceled):
        compare.run(paths["image"], paths["library"], str(output), methods=["fcls", "elmm", "glmm"], feedback=feedback)
    assert not any(message.startswith(("[ELMM]", "[GLMM]")) for message in feedback.messages)
    assert os.listdir(str(tmp_path)) == []


def test_true_endmembers_add_rmse_m_and_sam_m_as_core_metrics(files, tmp_path):
    """With REFERENCE_ENDMEMBERS, each method's RMSE_M and SAM_M (eq. 15) columns; FCLS's (M0 at every pixel) as
    core.evaluation.metrics.evaluate gives them on an independent solve."""
    scene, paths = files
    L, P = scene.reference.shape
    truth = str(tmp_path / "endmembers.tif")
    write_raster(truth, scene.endmembers.transpose(1, 0, 2, 3).reshape(P * L, SIDE, SIDE), georeference(SIDE, SIDE))
    output = str(tmp_path / "table3.html")
    summary = compare.run(paths["image"], paths["library"], output, methods=["fcls", "plmm", "deepgu"],
                          model_path=paths["model"], reference=paths["reference"], reference_endmembers=truth)
    Y = scene.image.reshape(L, -1).astype(np.float64)
    expected = evaluate(fcls(Y, scene.reference), scene.abundances.reshape(P, -1), M=scene.reference,
                        M_true=scene.endmembers.reshape(L, P, -1))
    for key in ("RMSE_A", "RMSE_M", "SAM_M"):
        assert summary["fcls"][key] == pytest.approx(expected[key], rel=1e-5), key
    with open(output, encoding="utf-8") as stream:
        page = stream.read()
    assert "<th>RMSE_A</th><th>RMSE_M</th><th>SAM_M</th>" in page
    for method in ("fcls", "plmm", "deepgu"):
        assert 0 < summary[method]["SAM_M"] < 1 and summary_row(page, method)[6] == "%.4g" % summary[method]["SAM_M"]
    assert "<th>RMSE_M</th>" not in open(str(paths["folder"] / "report.html"), encoding="utf-8").read()


def test_true_endmembers_need_the_reference_and_the_right_bands(files, tmp_path):
    scene, paths = files
    assert _refused(files, tmp_path, reference_endmembers=paths["reference"]).startswith(
        "REFERENCE_ENDMEMBERS needs REFERENCE")
    message = _refused(files, tmp_path, reference=paths["reference"], reference_endmembers=paths["reference"])
    assert message.startswith("REFERENCE_ENDMEMBERS has 3 bands but needs 3 x")


def test_without_a_reference_deepgu_rows_follow_endmembers_by_name(files, tmp_path):
    """ENDMEMBERS in another order than the model's materials: each row shows every method's map of that material
    (each near the true map of the material it names; the maps of two different materials are far apart)."""
    scene, paths = files
    order = [2, 0, 1]
    library = str(tmp_path / "reordered.csv")
    write_spectra(library, scene.reference[:, order], [scene.names[p] for p in order], scene.wavelengths)
    output = str(tmp_path / "by-name.html")
    compare.run(paths["image"], library, output, methods=["fcls", "deepgu"], model_path=paths["model"])
    with open(output, encoding="utf-8") as stream:
        found = images(stream.read())
    for method in ("fcls", "deepgu"):
        for p, name in enumerate(scene.names):
            shown = decode_png(found["abundance %s %s" % (method, name)])[0] / 255.0
            errors = [rmse(shown, truth) for truth in scene.abundances]
            assert int(np.argmin(errors)) == p and errors[p] < 0.1, (method, name, errors)


def test_command_line_writes_the_report_and_refuses_in_one_line(files, tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    _, paths = files
    output = tmp_path / "cli.html"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "core.jobs.compare", paths["image"], paths["library"],
                               str(output)] + list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)

    done = cli("--methods", "deepgu")
    assert done.returncode == 2 and done.stderr.startswith("error: METHODS includes deepgu") and not output.exists()
    done = cli("--methods", "fcls", "--reference", paths["reference"])
    assert done.returncode == 0, done.stderr[-2000:]
    page = output.read_text(encoding="utf-8")
    assert "rmse fcls" in images(page) and "<th>RMSE_A</th>" in page


def test_an_output_over_an_input_or_in_a_read_only_folder_is_refused_first(files, read_only_folder):
    _, paths = files
    with open(paths["library"], "rb") as stream:
        before = stream.read()
    feedback = Recorder()
    with pytest.raises(DeepGUError, match="OUTPUT_HTML .* is the same file as the input ENDMEMBERS"):
        compare.run(paths["image"], paths["library"], paths["library"], methods=["fcls"], feedback=feedback)
    with pytest.raises(DeepGUError, match="OUTPUT_HTML"):
        compare.run(paths["image"], paths["library"], os.path.join(read_only_folder, "r.html"), methods=["fcls"],
                    feedback=feedback)
    with open(paths["library"], "rb") as stream:
        assert stream.read() == before and not feedback.progress


def test_cancel_inside_a_method_stops_it_within_an_iteration(files, tmp_path):
    _, paths = files
    output = tmp_path / "canceled.html"
    feedback = Recorder(cancel_after=3, counting="messages")      # GLMM's two weights lines and its first iteration
    with pytest.raises(Canceled):
        compare.run(paths["image"], paths["library"], str(output), methods=["glmm"], feedback=feedback)
    assert [m for m in feedback.messages if "iteration" in m] == [feedback.messages[2]] and not output.exists()
