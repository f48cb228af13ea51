"""Integration: bundles -> trainvae -> samplevae -> unmix and the workflow model, through qgis_process.bin."""

import os

import numpy as np
import pytest
import scipy.io

from conftest import SHARED_DATA
from core.extraction.bundles import local_purity
from core.jobs import unmix as unmix_job
from core.files.library import read_spectra
from core.files.raster_io import NODATA, georeference, open_raster, read_all, write_raster
from helpers import run_fails, run_json


@pytest.fixture(scope="module")
def trained(qgis_process, tmp_path_factory):
    """A DC1 scene, its VCA endmembers, bundles and a trained model (few epochs: plumbing, not accuracy)."""
    folder = tmp_path_factory.mktemp("deepgu")
    p = {name: str(folder / name) for name in ("scene.tif", "truth.tif", "em.csv", "bundles.csv", "model.pt")}
    run_json(qgis_process, "deepgu:synthetic", KIND=0, ROWS=30, COLS=30, SEED=5, OUTPUT=p["scene.tif"],
             OUTPUT_ABUNDANCES=p["truth.tif"])
    run_json(qgis_process, "deepgu:vca", INPUT=p["scene.tif"], ENDMEMBERS=3, OUTPUT=p["em.csv"])
    run_json(qgis_process, "deepgu:bundles", INPUT=p["scene.tif"], ENDMEMBERS=p["em.csv"], N_PIXELS=40,
             OUTPUT=p["bundles.csv"], OUTPUT_POINTS=str(folder / "bundles.gpkg"))
    run_json(qgis_process, "deepgu:trainvae", BUNDLES=p["bundles.csv"], ENDMEMBERS=p["em.csv"], EPOCHS=20,
             OUTPUT=p["model.pt"])
    return p


def test_bundles_are_exclusive_and_sized(trained):
    bundles = read_spectra(trained["bundles.csv"])
    groups = bundles.by_material()
    assert [g[0] for g in groups] == ["EM1", "EM2", "EM3"]
    assert all(g[1].shape[1] == 40 for g in groups)
    pixels = list(zip(bundles.rows, bundles.cols))
    assert len(set(pixels)) == len(pixels)
    data, _, _ = read_all(trained["scene.tif"])
    np.testing.assert_allclose(bundles.spectra, data[:, bundles.rows, bundles.cols], rtol=1e-6)


def test_spatial_bundles_through_qgis_process(qgis_process, trained, tmp_path):
    fcls_tif, out = str(tmp_path / "fcls.tif"), str(tmp_path / "spatial.csv")
    run_json(qgis_process, "deepgu:fcls", INPUT=trained["scene.tif"], ENDMEMBERS=trained["em.csv"], OUTPUT=fcls_tif)
    run_json(qgis_process, "deepgu:bundles", INPUT=trained["scene.tif"], ENDMEMBERS=trained["em.csv"], METHOD=3,
             ABUNDANCES=fcls_tif, N_PIXELS=30, WINDOW=3, OUTPUT=out)
    bundles = read_spectra(out)
    A, valid, _ = read_all(fcls_tif)
    purity = local_purity(A, valid, 3)
    for p, (_, spectra, rows, cols) in enumerate(bundles.by_material()):
        assert spectra.shape[1] == 30
        owner = purity[:, rows, cols].argmax(axis=0)
        assert np.all(owner == p)
        # every selected pixel is at least as pure as every pixel left out of this material's bundle
        chosen = purity[p, rows, cols]
        others = purity[p][(purity.argmax(axis=0) == p)]
        assert chosen.min() >= np.sort(others)[-30] - 1e-6
    message = run_fails(qgis_process, "deepgu:bundles", INPUT=trained["scene.tif"], ENDMEMBERS=trained["em.csv"],
                        METHOD=3, OUTPUT=str(tmp_path / "none.csv"))
    assert "needs an abundance raster" in message and "Traceback" not in message
    assert not os.path.exists(str(tmp_path / "none.csv"))


def test_model_inspection_writes_csv_and_png(qgis_process, trained, tmp_path):
    csv, png = str(tmp_path / "gen.csv"), str(tmp_path / "gen.png")
    run_json(qgis_process, "deepgu:samplevae", MODEL=trained["model.pt"], BUNDLES=trained["bundles.csv"], STEPS=3,
             OUTPUT=csv, OUTPUT_PLOT=png)
    generated = read_spectra(csv)
    assert generated.spectra.shape == (198, 27) and generated.material_names() == ["EM1", "EM2", "EM3"]
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    plot = str(tmp_path / "plot")                      # no extension: written, and reported, as given
    results = run_json(qgis_process, "deepgu:samplevae", MODEL=trained["model.pt"], STEPS=2,
                       OUTPUT=str(tmp_path / "gen.sli"), OUTPUT_PLOT=plot)
    assert results["OUTPUT_PLOT"] == plot and not os.path.exists(plot + ".png")
    with open(plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert read_spectra(str(tmp_path / "gen.sli")).spectra.shape == (198, 12)


def test_unmix_writes_georeferenced_outputs_and_keeps_nodata(qgis_process, trained, tmp_path):
    from osgeo import gdal
    holed = str(tmp_path / "holed.tif")
    gdal.Translate(holed, trained["scene.tif"], noData=-1)
    ds = gdal.Open(holed, gdal.GA_Update)
    block = ds.GetRasterBand(1).ReadAsArray()
    block[0:3, 0:4] = -1
    ds.GetRasterBand(1).WriteArray(block)
    ds = None
    out = {key: str(tmp_path / (key + ".tif")) for key in ("a", "m", "z", "rmse")}
    # MEMORY_MB=16: four tiles, solved side by side on QGIS's worker threads (core/running/threads.py)
    assert len(unmix_job.tile_layout(30, 30, 16, 198, 3)) == 4
    run_json(qgis_process, "deepgu:unmix", INPUT=holed, MODEL=trained["model.pt"], MAX_ITER=2, LAMBDA_A=0.05,
             MEMORY_MB=16, OUTPUT=out["a"], OUTPUT_ENDMEMBERS=out["m"], OUTPUT_LATENT=out["z"],
             OUTPUT_RMSE=out["rmse"])
    source = open_raster(trained["scene.tif"])
    A, valid, info = read_all(out["a"])
    assert info.crs_wkt == source.crs_wkt and info.transform == source.transform
    assert info.band_names == ["EM1", "EM2", "EM3"] and info.nodata == [NODATA] * 3
    assert not valid[0:3, 0:4].any() and valid.sum() == 900 - 12
    assert np.all(A[:, valid] >= -1e-6) and np.allclose(A[:, valid].sum(0), 1, atol=1e-5)
    M, m_valid, m_info = read_all(out["m"])
    assert M.shape[0] == 3 * 198 and m_info.band_names[0].startswith("EM1 @")
    Z, _, z_info = read_all(out["z"])
    assert Z.shape[0] == 6 and z_info.band_names[:2] == ["EM1 z1", "EM1 z2"]
    # the RMSE output is the reconstruction error of the written endmembers and abundances
    data, _, _ = read_all(holed)
    Y_hat = np.einsum("plrc,prc->lrc", M.reshape(3, 198, 30, 30), A)
    expected = np.sqrt(np.mean((data - Y_hat) ** 2, axis=0))
    rmse, _, _ = read_all(out["rmse"])
    np.testing.assert_allclose(rmse[0][valid], expected[valid], rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("case", ["model_band_mismatch", "tampered_model", "foreign_model", "empty_raster",
                                  "read_only_output", "bundle_missing_material"])
def test_hostile_input_fails_cleanly(qgis_process, trained, tmp_path, case, read_only_folder):
    out = str(tmp_path / "out.tif")
    if case == "model_band_mismatch":
        short = str(tmp_path / "short.tif")
        data, _, info = read_all(trained["scene.tif"])
        write_raster(short, data[:100], info)
        message = run_fails(qgis_process, "deepgu:unmix", INPUT=short, MODEL=trained["model.pt"], OUTPUT=out)
        assert "198 bands but the image has 100" in message
    elif case == "tampered_model":
        bad = tmp_path / "bad.pt"
        raw = bytearray(open(trained["model.pt"], "rb").read())
        raw[len(raw) // 2] ^= 0xFF
        bad.write_bytes(bytes(raw[: len(raw) - 100]))
        message = run_fails(qgis_process, "deepgu:unmix", INPUT=trained["scene.tif"], MODEL=str(bad), OUTPUT=out)
        assert "not a DeepGU model file" in message or "damaged" in message
    elif case == "foreign_model":
        import torch
        foreign = str(tmp_path / "foreign.pt")
        torch.save({"weights": torch.zeros(3)}, foreign)
        message = run_fails(qgis_process, "deepgu:unmix", INPUT=trained["scene.tif"], MODEL=foreign, OUTPUT=out)
        assert "not a DeepGU model file" in message
    elif case == "empty_raster":
        empty = str(tmp_path / "empty.tif")
        write_raster(empty, np.full((198, 5, 5), np.nan, np.float32), georeference(5, 5))
        message = run_fails(qgis_process, "deepgu:unmix", INPUT=empty, MODEL=trained["model.pt"], OUTPUT=out)
        assert "no valid pixels" in message
    elif case == "read_only_output":
        out = os.path.join(read_only_folder, "out.tif")
        message = run_fails(qgis_process, "deepgu:unmix", INPUT=trained["scene.tif"], MODEL=trained["model.pt"],
                            OUTPUT=out)
        assert "not writable" in message
    else:
        partial = tmp_path / "partial.csv"
        bundles = read_spectra(trained["bundles.csv"])
        keep = [i for i, m in enumerate(bundles.materials) if m != "EM2"]
        from core.files.library import write_spectra
        write_spectra(str(partial), bundles.spectra[:, keep], [bundles.materials[i] for i in keep])
        message = run_fails(qgis_process, "deepgu:trainvae", BUNDLES=str(partial), ENDMEMBERS=trained["em.csv"],
                            OUTPUT=str(tmp_path / "m.pt"))
        assert "no pixels for material(s) EM2" in message
        out = str(tmp_path / "m.pt")
    assert "Traceback" not in message
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".deepgu-")]


def test_workflow_model_runs_the_whole_pipeline(qgis_process, tmp_path):
    scene, truth = str(tmp_path / "scene.tif"), str(tmp_path / "truth.tif")
    run_json(qgis_process, "deepgu:synthetic", KIND=0, ROWS=30, COLS=30, SEED=2, OUTPUT=scene,
             OUTPUT_ABUNDANCES=truth)
    abundances = str(tmp_path / "deepgu.tif")
    run_json(qgis_process, "deepgu:workflow", INPUT=scene, MATERIALS=3, SEED=2, LAMBDA_A=0.05,
             **{"unmix:DEEPGU_ABUNDANCES": abundances, "trainvae:MODEL_FILE": str(tmp_path / "m.pt"),
                "endmembers:ENDMEMBERS_CSV": str(tmp_path / "em.csv"), "fcls:FCLS_ABUNDANCES": str(tmp_path / "f.tif"),
                "bundles:BUNDLES_CSV": str(tmp_path / "b.csv")})
    assert os.path.exists(abundances) and os.path.exists(str(tmp_path / "m.pt"))
    assert [g[1].shape[1] for g in read_spectra(str(tmp_path / "b.csv")).by_material()] == [200, 200, 200]
    A, valid, info = read_all(abundances)
    assert valid.all() and info.transform == open_raster(scene).transform
    metrics = run_json(qgis_process, "deepgu:metrics", ESTIMATE=abundances, REFERENCE=truth)
    assert metrics["RMSE_A"] < 0.15


def test_samson_scene_bundles_and_training(qgis_process, tmp_path):
    """The real Samson scene (shared data), wrapped as a GeoTIFF with wavelengths."""
    path = os.path.join(SHARED_DATA, "samson", "real_data_samson.mat")
    if not os.path.exists(path):
        pytest.skip("shared Samson data not present")
    cube = scipy.io.loadmat(path)["r_cube"].astype(np.float32)           # (95, 95, 156)
    tif = str(tmp_path / "samson.tif")
    write_raster(tif, cube.transpose(2, 0, 1), georeference(95, 95), wavelengths=np.linspace(401, 889, 156))
    em, bundles, model = (str(tmp_path / n) for n in ("em.csv", "b.csv", "m.pt"))
    run_json(qgis_process, "deepgu:vca", INPUT=tif, ENDMEMBERS=3, OUTPUT=em)
    run_json(qgis_process, "deepgu:bundles", INPUT=tif, ENDMEMBERS=em, OUTPUT=bundles)
    run_json(qgis_process, "deepgu:trainvae", BUNDLES=bundles, ENDMEMBERS=em, EPOCHS=20, OUTPUT=model)
    assert read_spectra(bundles).spectra.shape == (156, 300)
    assert os.path.getsize(model) > 1000


def test_brightness_held_through_qgis_process(qgis_process, trained, tmp_path):
    """BRIGHTNESS = abundances (1): every pixel's endmember keeps its reference's component along the reference."""
    out = {key: str(tmp_path / (key + ".tif")) for key in ("a", "m")}
    run_json(qgis_process, "deepgu:unmix", INPUT=trained["scene.tif"], MODEL=trained["model.pt"], MAX_ITER=2,
             BRIGHTNESS=1, OUTPUT=out["a"], OUTPUT_ENDMEMBERS=out["m"])
    m0 = read_spectra(trained["em.csv"]).spectra                         # (L, P): the model's references
    M, valid, _ = read_all(out["m"])
    along = np.einsum("plrc,lp->prc", M.reshape(3, 198, 30, 30), m0 / np.linalg.norm(m0, axis=0))
    np.testing.assert_allclose(along[:, valid], np.broadcast_to(np.linalg.norm(m0, axis=0)[:, None],
                                                                (3, int(valid.sum()))), rtol=1e-5)
