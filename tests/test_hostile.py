"""Hostile files, full disks and absurd parameters (issue 10): one case per row of the issue's table.

Each refusal is checked the same way (:func:`refused`): a non-zero exit (or a
:class:`DeepGUError` for the core cases), one line naming the parameter and no
traceback, nothing left in the output folder, and every input byte-identical.
Cases marked "through QGIS" run ``qgis_process.bin``; the others call the
core jobs, which the algorithms call with the same parameter names.
"""

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import torch
from osgeo import gdal

from conftest import ROOT, qgis_env, require_qgis
from helpers import Recorder
from core.files import atomic
from core.errors import Canceled, DeepGUError
from core.jobs import bundles as bundles_job
from core.jobs import fcls as fcls_job
from core.jobs import synthetic as synthetic_job
from core.jobs import train as train_job
from core.jobs import unmix as unmix_job
from core.jobs import vca as vca_job
from core.files.library import read_spectra, write_spectra
from core.models.model_file import _digest, _pack, load_model, save_model
from core.files.raster_io import RasterWriter, georeference, open_raster, read_all, write_raster
from core.solvers.unmix_settings import UnmixSettings
from core.models.vae import train_vaes


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 30 x 30 DC1 scene with its VCA endmembers, bundles and a briefly trained model (core jobs, in-process)."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("hostile")
    p = {name: str(folder / name) for name in ("scene.tif", "em.csv", "bundles.csv", "model.pt")}
    synthetic_job.run("DC1", 30, 30, p["scene.tif"], seed=5)
    vca_job.run(p["scene.tif"], 3, p["em.csv"])
    bundles_job.run(p["scene.tif"], p["em.csv"], p["bundles.csv"], n_pixels=30)
    train_job.run(p["bundles.csv"], p["em.csv"], p["model.pt"], epochs=5)
    return p


def checksum(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Inputs:
    """Checksums of input files, taken before a run and compared after it."""

    def __init__(self, *paths):
        self.sums = {path: checksum(path) for path in paths}

    def unchanged(self):
        return all(checksum(path) == digest for path, digest in self.sums.items())


def refused(done, parameter, folder, inputs):
    """Assert a qgis_process run failed cleanly: the DeepGU line names ``parameter``; ``folder`` is empty."""
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    lines = output.splitlines()
    errors = lines[next(i for i, line in enumerate(lines) if line.startswith("ERROR:")):]   # after the echo
    lines = [line for line in errors if parameter in line]
    assert lines, output[-2000:]
    assert "Traceback" not in output and "unexpected error" not in output, output[-2000:]
    assert os.listdir(folder) == [], os.listdir(folder)
    assert inputs.unchanged()
    return lines[0]


def core_refused(call, parameter, folder, inputs, match=None):
    """Assert a core job raises one DeepGUError line naming ``parameter`` (and ``match``), leaving nothing."""
    with pytest.raises(DeepGUError) as error:
        call()
    message = str(error.value)
    assert parameter in message and "\n" not in message, message
    if match:
        assert match in message, message
    assert os.listdir(folder) == [], os.listdir(folder)
    assert inputs.unchanged()
    return message


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# --- row 1: full file system -------------------------------------------------------------------

@pytest.fixture
def full_disk(tmp_path):
    """A 512 KB tmpfs (needs root); skipped where it cannot be mounted."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root?): %s" % done.stderr.decode().strip())
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_fails_and_keeps_the_old_file_through_qgis(qgis_process, full_disk):
    target = str(full_disk / "scene.tif")
    write_raster(target, np.ones((2, 4, 4), np.float32), georeference(4, 4))     # a good file already there
    before = checksum(target)
    done = qgis_process.run("deepgu:synthetic", ROWS=40, COLS=40, OUTPUT=target)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output
    assert "cannot write OUTPUT '%s': " % target in output and "No space left on device" in output
    assert os.listdir(full_disk) == ["scene.tif"] and checksum(target) == before


def test_full_disk_for_csv_and_model_outputs(files, full_disk):
    filler = full_disk / "filler"
    with open(filler, "wb") as f:           # leave a few KB: a model file does not fit
        f.write(b"\0" * (512 * 1024 - 8 * 1024))
    model = load_model(files["model.pt"])
    with pytest.raises(DeepGUError, match=r"cannot write OUTPUT '.*m\.pt': "):
        save_model(model, str(full_disk / "m.pt"))
    with pytest.raises(DeepGUError, match=r"cannot write OUTPUT '.*big\.csv': No space left on device"):
        write_spectra(str(full_disk / "big.csv"), np.ones((2000, 10)), ["m%d" % i for i in range(10)])
    assert sorted(os.listdir(full_disk)) == ["filler"]


def test_gdal_write_errors_are_not_ignored(tmp_path, monkeypatch):
    """A failing WriteArray (as on a full disk) fails the writer and removes its temporary file."""
    target = str(tmp_path / "a.tif")
    with pytest.raises(DeepGUError, match="cannot write OUTPUT"):
        with RasterWriter(target, georeference(8, 8), 2) as writer:
            monkeypatch.setattr(gdal.Band, "WriteArray", lambda *args, **kwargs: gdal.CE_Failure)
            writer.write(np.zeros((2, 8, 8), np.float32), 0)
    assert os.listdir(tmp_path) == []


# --- row 2: aliasing ---------------------------------------------------------------------------

def test_output_equal_to_input_through_qgis(qgis_process, files, tmp_path):
    inputs = Inputs(files["scene.tif"], files["em.csv"])
    done = qgis_process.run("deepgu:fcls", INPUT=files["scene.tif"], ENDMEMBERS=files["em.csv"],
                            OUTPUT=files["scene.tif"])
    line = refused(done, "OUTPUT", tmp_path, inputs)
    assert "INPUT" in line


def test_aliased_outputs_and_hard_links_are_refused(files, out):
    inputs = Inputs(files["scene.tif"], files["em.csv"], files["bundles.csv"])
    same = str(out / "a.tif")
    message = core_refused(lambda: fcls_job.run(files["scene.tif"], files["em.csv"], same, output_rmse=same),
                           "OUTPUT_RMSE", out, inputs)
    assert "the output OUTPUT:" in message
    core_refused(lambda: train_job.run(files["bundles.csv"], files["em.csv"], files["bundles.csv"]), "BUNDLES",
                 out, inputs)
    link = str(out.parent / "hard-link.tif")
    os.link(files["scene.tif"], link)
    try:
        core_refused(lambda: fcls_job.run(files["scene.tif"], files["em.csv"], link), "INPUT", out, inputs)
    finally:
        os.unlink(link)


# --- row 3: NaN and huge parameters --------------------------------------------------------------

def test_nan_lambda_through_qgis(qgis_process, files, out):
    inputs = Inputs(files["scene.tif"], files["model.pt"])
    done = qgis_process.run("deepgu:unmix", INPUT=files["scene.tif"], MODEL=files["model.pt"], LAMBDA_A="nan",
                            OUTPUT=str(out / "a.tif"))
    assert "finite" in refused(done, "LAMBDA_A", out, inputs)


def test_huge_beta(files, out):
    inputs = Inputs(files["bundles.csv"], files["em.csv"])
    core_refused(lambda: train_job.run(files["bundles.csv"], files["em.csv"], str(out / "m.pt"), beta=1e308),
                 "BETA", out, inputs, "at most 1000")


@pytest.mark.parametrize("name, settings", [("LAMBDA_Z", {"lambda_z": float("nan")}),
                                            ("TOLERANCE", {"tol": float("nan")}),
                                            ("LAMBDA_A", {"lambda_a": float("inf")})])
def test_non_finite_unmix_parameters(files, out, name, settings):
    inputs = Inputs(files["scene.tif"], files["model.pt"])
    core_refused(lambda: unmix_job.run(files["scene.tif"], files["model.pt"], str(out / "a.tif"),
                                       UnmixSettings(**settings)),
                 name, out, inputs)


def test_array_api_refuses_non_finite_weights_and_huge_values(files):
    from core.solvers.unmix import deepgu_unmix
    data, _, _ = read_all(files["scene.tif"])
    model = load_model(files["model.pt"])
    with pytest.raises(DeepGUError, match="LAMBDA_A must be a finite number"):
        deepgu_unmix(data[:, :4, :4], model, UnmixSettings(lambda_a=float("nan")))
    with pytest.raises(DeepGUError, match="the image has values up to"):
        deepgu_unmix(data[:, :4, :4] * np.float32(1e30), model)


def test_nan_beta_and_diverging_training(files, out):
    inputs = Inputs(files["bundles.csv"], files["em.csv"])
    core_refused(lambda: train_job.run(files["bundles.csv"], files["em.csv"], str(out / "m.pt"), beta=float("nan")),
                 "BETA", out, inputs)
    bundle = read_spectra(files["bundles.csv"]).spectra[:, :20]
    with pytest.raises(DeepGUError, match="material 1: training diverged at epoch 1: the loss is not finite"):
        train_vaes([bundle], epochs=3, beta=1e308)


def test_model_with_non_finite_weights_is_refused(files, out):
    data = _pack(load_model(files["model.pt"]))
    data.pop("checksum")
    first = next(iter(data["materials"][0]["weights"]))
    data["materials"][0]["weights"][first][0, 0] = float("nan")
    data["checksum"] = _digest(data)
    bad = str(out.parent / "nan.pt")
    torch.save(data, bad)
    with pytest.raises(DeepGUError, match="damaged .material 1 has non-finite weights"):
        load_model(bad)


# --- row 4: absurd and contrast-free scenes ------------------------------------------------------

def test_scene_scaled_by_1e30_through_qgis(qgis_process, files, tmp_path, out):
    data, _, info = read_all(files["scene.tif"])
    scaled = str(tmp_path / "scaled.tif")
    write_raster(scaled, data * np.float32(1e30), info, wavelengths=info.wavelengths)
    inputs = Inputs(scaled, files["model.pt"])
    done = qgis_process.run("deepgu:unmix", INPUT=scaled, MODEL=files["model.pt"], OUTPUT=str(out / "a.tif"))
    assert "has values up to 7.75e+29" in refused(done, "INPUT", out, inputs)


@pytest.mark.parametrize("value", [0.0, 0.3])
def test_constant_scenes_are_refused(files, tmp_path, out, value):
    info = open_raster(files["scene.tif"])
    flat = str(tmp_path / "flat.tif")
    write_raster(flat, np.full((info.n_bands, 12, 12), value, np.float32), georeference(12, 12),
                 wavelengths=info.wavelengths)
    inputs = Inputs(flat, files["em.csv"], files["model.pt"])
    expected = "zero at every valid pixel" if value == 0 else "only 1 distinct valid pixel"
    core_refused(lambda: vca_job.run(flat, 3, str(out / "em.csv")), "INPUT", out, inputs, expected)
    core_refused(lambda: fcls_job.run(flat, files["em.csv"], str(out / "a.tif")), "INPUT", out, inputs, expected)
    core_refused(lambda: unmix_job.run(flat, files["model.pt"], str(out / "a.tif")), "INPUT", out, inputs, expected)


def test_vca_refuses_duplicate_endmembers(tmp_path, out):
    """Two distinct spectra repeated: three endmembers cannot be found, and VCA must not return one twice."""
    rng = np.random.default_rng(0)
    spectra = rng.random((20, 2)).astype(np.float32)
    image = spectra[:, rng.integers(0, 2, 100)].reshape(20, 10, 10)
    two = str(tmp_path / "two.tif")
    write_raster(two, image, georeference(10, 10))
    core_refused(lambda: vca_job.run(two, 3, str(out / "em.csv")), "INPUT", out, Inputs(two))


# --- row 5: folder in the way, SIGTERM, failed rename ----------------------------------------------

def test_output_that_is_a_folder(files, out):
    (out / "a.tif").mkdir()
    inputs = Inputs(files["scene.tif"], files["em.csv"])
    with pytest.raises(DeepGUError, match="cannot write OUTPUT '.*a.tif': it is a folder"):
        fcls_job.run(files["scene.tif"], files["em.csv"], str(out / "a.tif"))
    assert os.listdir(out) == ["a.tif"] and inputs.unchanged()


def test_sigterm_during_unmix_leaves_nothing(qgis_process, files, tmp_path, out):
    """SIGTERM while the tiles are being solved: the temporary files of every output are removed."""
    data, _, info = read_all(files["scene.tif"])
    big = str(tmp_path / "big.tif")
    write_raster(big, np.tile(data, (1, 3, 3)), georeference(90, 90), wavelengths=info.wavelengths)
    args = ["run", "deepgu:unmix", "--", "INPUT=" + big, "MODEL=" + files["model.pt"], "MAX_ITER=1000",
            "TOLERANCE=1e-12", "MEMORY_MB=16", "OUTPUT=" + str(out / "a.tif"), "OUTPUT_RMSE=" + str(out / "r.tif")]
    process = subprocess.Popen(["qgis_process.bin"] + args, env=qgis_process.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while len(os.listdir(out)) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert len(os.listdir(out)) == 2, "no temporary outputs appeared"
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert os.listdir(out) == []


def test_failed_rename_restores_every_target(tmp_path, monkeypatch):
    """All or nothing: the second rename fails, so the first target gets its old content back."""
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    for path in (a, b):
        with open(path, "w") as f:
            f.write("old " + path)
    real_replace = os.replace

    def failing_replace(src, dst):
        if dst == b and ".deepgu-" in src and not src.endswith(".old"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(DeepGUError, match=r"cannot write OUTPUT_RMSE '.*b\.tif': No space left on device"):
        with atomic.together():
            write_raster(a, np.ones((1, 4, 4), np.float32), georeference(4, 4))
            with RasterWriter(b, georeference(4, 4), 1, name="OUTPUT_RMSE") as writer:
                writer.write(np.ones((1, 4, 4), np.float32), 0)
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "b.tif"]
    assert open(a).read() == "old " + a and open(b).read() == "old " + b


# --- row 6: small files declaring huge work ----------------------------------------------------------

def test_huge_vrt_is_refused_at_once_through_qgis(qgis_process, tmp_path, out):
    vrt = tmp_path / "huge.vrt"
    bands = "".join('<VRTRasterBand dataType="Float32" band="%d"/>' % (i + 1) for i in range(3))
    vrt.write_text('<VRTDataset rasterXSize="1000000" rasterYSize="1000000">%s</VRTDataset>' % bands)
    core_refused(lambda: vca_job.run(str(vrt), 3, str(out / "em.csv")), "INPUT", out, Inputs(str(vrt)),
                 "declares 1000000 x 1000000 pixels")
    start = time.time()
    done = qgis_process.run("deepgu:vca", INPUT=str(vrt), ENDMEMBERS=3, OUTPUT=str(out / "em.csv"))
    # QGIS itself loads the layer to check the parameter and stores approximate statistics in the VRT,
    # so only the core run above can show that DeepGU leaves the input untouched
    assert "declares 1000000 x 1000000 pixels" in refused(done, "INPUT", out, Inputs())
    assert time.time() - start < 30


def test_sparse_tiff_is_refused_before_reading(files, tmp_path, out):
    sparse = str(tmp_path / "sparse.tif")
    ds = gdal.GetDriverByName("GTiff").Create(sparse, 100_000, 100_000, 3, gdal.GDT_Float32,
                                              ["SPARSE_OK=TRUE", "TILED=YES", "BIGTIFF=YES"])
    del ds      # closes the file
    lib = str(tmp_path / "lib.csv")
    write_spectra(lib, np.eye(3), ["a", "b", "c"])
    start = time.time()
    core_refused(lambda: fcls_job.run(sparse, lib, str(out / "a.tif")), "INPUT", out, Inputs(sparse, lib),
                 "declares 100000 x 100000 pixels")
    assert time.time() - start < 2


def test_many_columns_and_materials_in_a_csv(tmp_path, out):
    header = "band," + ",".join(["soil"] * 100_000)
    same = tmp_path / "soil.csv"
    same.write_text(header + "\n1," + ",".join(["0.5"] * 100_000) + "\n")
    start = time.time()
    with pytest.raises(DeepGUError, match="repeats material names .soil.: is it a bundle file"):
        read_spectra(str(same)).as_endmembers()
    assert time.time() - start < 5
    many = tmp_path / "many.csv"
    many.write_text("band," + ",".join("m%d" % i for i in range(1_000_000)) + "\n1," + ",".join(["1"] * 1_000_000))
    start = time.time()
    core_refused(lambda: train_job.run(str(many), str(many), str(out / "m.pt")), "ENDMEMBERS", out,
                 Inputs(str(many)), "1000000 materials; DeepGU handles at most 12")
    assert time.time() - start < 5


# --- row 7: hostile model files ------------------------------------------------------------------

def test_zip_bomb_model_is_refused_unread(files, tmp_path):
    bomb = str(tmp_path / "bomb.pt")
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("archive/data/0", "w", force_zip64=True) as entry:
            zeros = bytes(2 ** 24)
            for _ in range(40):                     # 640 MiB of zeros, about 0.6 MB on disk
                entry.write(zeros)
    assert os.path.getsize(bomb) < 2 ** 22
    with pytest.raises(DeepGUError, match="not a DeepGU model file: it holds 640 MiB"):
        load_model(bomb)


def test_model_declaring_huge_layers_is_refused_before_allocating(files, tmp_path):
    data = _pack(load_model(files["model.pt"]))
    data.pop("checksum")
    data["n_bands"] = 200_000
    data["materials"][0]["layer_sizes"] = [200_000, 240_005, 50_003, 20_000, 2]
    data["checksum"] = _digest(data)
    path = str(tmp_path / "huge.pt")
    torch.save(data, path)
    with pytest.raises(DeepGUError, match="declares 200000 bands"):
        load_model(path)
    data.pop("checksum")
    data["n_bands"] = 198
    data["checksum"] = _digest(data)
    torch.save(data, path)
    with pytest.raises(DeepGUError, match="layer sizes .200000"):
        load_model(path)


# --- row 8: integers beyond int32 -------------------------------------------------------------------

def test_seed_beyond_int32_through_qgis(qgis_process, out):
    done = qgis_process.run("deepgu:synthetic", ROWS=10, COLS=10, SEED=5_000_000_000, OUTPUT=str(out / "s.tif"))
    refused(done, "SEED", out, Inputs())


def test_rows_and_epochs_beyond_int32_in_the_core(files, out):
    core_refused(lambda: synthetic_job.run("DC1", 2 ** 31, 10, str(out / "s.tif")), "ROWS", out, Inputs())
    core_refused(lambda: train_job.run(files["bundles.csv"], files["em.csv"], str(out / "m.pt"), epochs=2 ** 31),
                 "EPOCHS", out, Inputs(files["bundles.csv"]))
    core_refused(lambda: vca_job.run(files["scene.tif"], 3, str(out / "e.csv"), seed=5_000_000_000), "SEED", out,
                 Inputs(files["scene.tif"]))


# --- row 9: former "unexpected error"s and misleading messages --------------------------------------

def test_band_wavelength_na_is_handled(files, tmp_path, out):
    data, _, info = read_all(files["scene.tif"])
    na = str(tmp_path / "na.tif")
    write_raster(na, data, info)
    ds = gdal.Open(na, gdal.GA_Update)
    for i in range(ds.RasterCount):
        ds.GetRasterBand(i + 1).SetMetadataItem("wavelength", "n/a")
    ds = None
    assert open_raster(na).wavelengths is None
    fcls_job.run(na, files["em.csv"], str(out / "a.tif"))
    assert read_all(str(out / "a.tif"))[1].all()


def test_model_wavelengths_not_matching_its_bands(files, tmp_path):
    data = _pack(load_model(files["model.pt"]))
    data.pop("checksum")
    data["wavelengths"] = torch.arange(5, dtype=torch.float64)
    data["checksum"] = _digest(data)
    path = str(tmp_path / "w.pt")
    torch.save(data, path)
    with pytest.raises(DeepGUError, match="damaged .5 wavelengths for 198 bands"):
        load_model(path)


def test_huge_csv_values_through_qgis(qgis_process, files, tmp_path, out):
    spectra = read_spectra(files["em.csv"])
    lib = str(tmp_path / "huge.csv")
    write_spectra(lib, spectra.spectra * 1e200, spectra.materials, spectra.wavelengths)
    inputs = Inputs(files["scene.tif"], lib)
    done = qgis_process.run("deepgu:fcls", INPUT=files["scene.tif"], ENDMEMBERS=lib, OUTPUT=str(out / "a.tif"))
    assert "is beyond" in refused(done, "ENDMEMBERS", out, inputs)


def test_csv_with_a_byte_order_mark_is_read(files, tmp_path):
    text = open(files["em.csv"], encoding="utf-8").read()
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    got, expected = read_spectra(str(bom)), read_spectra(files["em.csv"])
    assert got.materials == expected.materials
    np.testing.assert_array_equal(got.spectra, expected.spectra)


def test_init_abundances_all_nan(files, tmp_path, out):
    init = str(tmp_path / "init.tif")
    write_raster(init, np.full((3, 30, 30), np.nan, np.float32), open_raster(files["scene.tif"]))
    inputs = Inputs(files["scene.tif"], files["model.pt"], init)
    core_refused(lambda: unmix_job.run(files["scene.tif"], files["model.pt"], str(out / "a.tif"), init_abundances=init),
                 "INIT_ABUNDANCES", out, inputs, "nodata or non-finite at every valid pixel")


# --- rows 10-11: memory -------------------------------------------------------------------------

def test_out_of_memory_message_names_only_parameters_the_algorithm_has(tmp_path):
    require_qgis()
    script = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location('deepgu', %r, submodule_search_locations=[%r])
deepgu = importlib.util.module_from_spec(spec); sys.modules['deepgu'] = deepgu; spec.loader.exec_module(deepgu)
from qgis.core import QgsProcessingContext
from deepgu.algorithms.fcls import FCLSAlgorithm
from deepgu.algorithms.synthetic import SyntheticAlgorithm
from deepgu.algorithms.vca import VCAAlgorithm
for cls, parameters in ((FCLSAlgorithm, {'MEMORY_MB': 16}), (FCLSAlgorithm, {'MEMORY_MB': 512}),
                        (SyntheticAlgorithm, {}), (VCAAlgorithm, {})):
    algorithm = cls()
    algorithm.initAlgorithm()
    print(algorithm.out_of_memory_message(parameters, QgsProcessingContext()))
""" % (os.path.join(ROOT, "__init__.py"), ROOT)
    done = subprocess.run([sys.executable, "-c", script], env=qgis_env(tmp_path), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-4:] == [
        "out of memory: the inputs need more memory than this machine has",     # fcls at the smallest MEMORY_MB
        "out of memory: lower MEMORY_MB (now 512)",
        "out of memory: the inputs need more memory than this machine has",     # synthetic has neither
        "out of memory: lower SAMPLE_SIZE",                                      # vca has no MEMORY_MB
    ]


def test_huge_memory_budget_and_foreign_bundles_found_by_the_fuzzer(files, tmp_path, out):
    from core.jobs import inspect as inspect_job
    inputs = Inputs(files["scene.tif"], files["em.csv"], files["model.pt"])
    core_refused(lambda: fcls_job.run(files["scene.tif"], files["em.csv"], str(out / "a.tif"), memory_mb=1e308),
                 "MEMORY_MB", out, inputs)
    short = str(tmp_path / "short.csv")
    write_spectra(short, np.ones((26, 15)), ["EM1"] * 5 + ["EM2"] * 5 + ["EM3"] * 5)
    core_refused(lambda: inspect_job.run(files["model.pt"], output_png=str(out / "p.png"), bundles_csv=short),
                 "BUNDLES", out, inputs, "26 bands but the image has 198")


def test_memory_floor_keeps_tiles_sensible():
    layout = unmix_job.tile_layout(150, 150, 16, 198, 3)
    assert max(t.pad_rows for t in layout) == unmix_job.MIN_TILE == 16 + 2 * unmix_job.HALO
    assert all(t.rows == 16 or t.row0 + t.rows == 150 for t in layout)     # the last row of tiles: 6 rows
    assert len(layout) == 100               # 10 x 10 tiles of 16 x 16, not 22,500 one-pixel tiles


# --- row 12: cancel ---------------------------------------------------------------------------

def test_training_cancel_is_checked_per_mini_batch(files):
    bundle = read_spectra(files["bundles.csv"]).spectra[:, :30]
    feedback = Recorder(cancel_after=4, counting="checks")   # mini-batches of 10: 3 per epoch; canceled in epoch 2
    start = time.time()
    with pytest.raises(Canceled):
        train_vaes([bundle], epochs=100_000, feedback=feedback)
    assert feedback.checks == 5 and time.time() - start < 2


# --- row 13: permissions and stale sidecars -------------------------------------------------------

def test_outputs_respect_the_umask_and_lose_stale_sidecars(tmp_path):
    target = str(tmp_path / "a.tif")
    for sidecar in (target + ".aux.xml", str(tmp_path / "a.qml")):
        with open(sidecar, "w") as f:
            f.write("<stale/>")
    old = os.umask(0o027)
    try:
        write_raster(target, np.ones((2, 4, 4), np.float32), georeference(4, 4))
        write_spectra(str(tmp_path / "l.csv"), np.ones((3, 1)), ["a"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(str(tmp_path / "l.csv")).st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "l.csv"]


# --- row 14: CSV injection --------------------------------------------------------------------------

def test_formula_material_names_are_refused_through_qgis(qgis_process, files, tmp_path, out):
    spectra = read_spectra(files["em.csv"])
    text = open(files["em.csv"]).read().replace("EM2", "=cmd|' /C calc'!A0", 1)
    lib = tmp_path / "formula.csv"
    lib.write_text(text)
    inputs = Inputs(files["scene.tif"], str(lib))
    done = qgis_process.run("deepgu:fcls", INPUT=files["scene.tif"], ENDMEMBERS=str(lib), OUTPUT=str(out / "a.tif"))
    assert "spreadsheets run as a formula" in refused(done, "ENDMEMBERS", out, inputs)
    with pytest.raises(DeepGUError, match="starts with '@'"):
        write_spectra(str(out / "x.csv"), spectra.spectra, ["@SUM(A1)", "b", "c"])
    assert os.listdir(out) == []


def test_envi_output_named_by_its_header_is_the_envi_input(files, tmp_path):
    """OUTPUT=x.hdr writes x.dat + x.hdr: refused when INPUT is x.dat (the same ENVI raster)."""
    A, _, info = read_all(files["scene.tif"])
    scene = str(tmp_path / "scene.dat")
    write_raster(scene, A, info, wavelengths=info.wavelengths)
    before = checksum(scene)
    with pytest.raises(DeepGUError, match="OUTPUT .* is the same file as the input INPUT"):
        fcls_job.run(scene, files["em.csv"], str(tmp_path / "scene.hdr"))
    assert checksum(scene) == before


# --- GDAL's exception mode (QGIS's Python may turn exceptions on) ------------------------------

@pytest.fixture
def gdal_exceptions():
    """GDAL's exceptions turned on, as a host process (QGIS) may have done, and off again after the test."""
    gdal.UseExceptions()
    yield
    gdal.DontUseExceptions()


def test_errors_keep_their_messages_when_the_process_uses_gdal_exceptions(gdal_exceptions, full_disk, tmp_path):
    not_a_raster = tmp_path / "notes.tif"
    not_a_raster.write_text("not a raster")
    with pytest.raises(DeepGUError, match=r"INPUT: cannot read .*notes\.tif as a raster"):
        open_raster(str(not_a_raster), "INPUT")
    target = str(full_disk / "big.tif")
    noise = np.random.default_rng(0).random((4, 300, 300)).astype(np.float32)     # 1.4 MB, incompressible
    with pytest.raises(DeepGUError, match=r"cannot write OUTPUT '.*big\.tif': No space left on device$"):
        write_raster(target, noise, georeference(300, 300))
    assert os.listdir(full_disk) == [] and gdal.GetUseExceptions()
