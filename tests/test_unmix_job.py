"""The DeepGU raster job: tiles with a halo agree with one whole-image solve; cancel leaves nothing."""

import contextlib
import os
from dataclasses import replace

import numpy as np
import pytest
import torch

import helpers
from core.errors import Canceled
from core.feedback import Feedback
from core.jobs import unmix as job
from core.files.raster_io import read_all
from core.solvers.unmix_settings import UnmixSettings


@pytest.fixture(scope="module")
def scene_and_model(tmp_path_factory):
    _, image, model = helpers.scene_and_model(tmp_path_factory.mktemp("unmix-job"), 24, seed=4, epochs=30)
    return image, model


#: a budget of (12 + 2 * 8)^2 pixels: 2 x 2 tiles of 12 x 12 pixels on the 24 x 24 scene, each padded by 8
FOUR_TILES_MB = 784 * job._BYTES_PER_PIXEL_BAND_MATERIAL * 198 * 3 / 2 ** 20
#: four tiles, solved side by side when torch has two threads
SIDE_BY_SIDE = UnmixSettings(lambda_a=0.05, max_iter=3, device="cpu", memory_mb=FOUR_TILES_MB)


@contextlib.contextmanager
def torch_threads(n):
    """torch's thread count set to ``n`` inside the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def test_tiles_with_halo_match_the_whole_image(scene_and_model, tmp_path):
    image, model = scene_and_model
    whole, tiled = str(tmp_path / "whole.tif"), str(tmp_path / "tiled.tif")
    settings = UnmixSettings(lambda_a=0.05, max_iter=3)
    assert job.run(image, model, whole, settings) == 1
    n_tiles = job.run(image, model, tiled, replace(settings, memory_mb=FOUR_TILES_MB))
    assert n_tiles == 4
    a_whole, valid, _ = read_all(whole)
    a_tiled, valid_tiled, _ = read_all(tiled)
    assert valid.all() and valid_tiled.all()
    assert np.max(np.abs(a_whole - a_tiled)) < 0.02
    assert np.sqrt(np.mean((a_whole - a_tiled) ** 2)) < 0.003


class Lines(Feedback):
    def __init__(self):
        self.lines = []

    def info(self, message):
        self.lines.append(message)


def test_tiles_side_by_side_give_the_one_at_a_time_result(scene_and_model, tmp_path):
    """Two tiles at a time on threads of one torch thread each, or one at a time on one torch thread: the same
    file, and every tile's log once, with its own lines after it."""
    image, model = scene_and_model
    outputs = []
    for n_threads in (2, 1):
        with torch_threads(n_threads):
            assert job.tile_threads(SIDE_BY_SIDE, 4) == n_threads
            outputs.append(str(tmp_path / ("%d.tif" % n_threads)))
            log = Lines()
            assert job.run(image, model, outputs[-1], SIDE_BY_SIDE, feedback=log) == 4
        tile_lines = [i for i, line in enumerate(log.lines) if line.startswith("tile ")]
        assert sorted(log.lines[i].split(":")[0] for i in tile_lines) == ["tile %d/4" % t for t in range(1, 5)]
        assert all(log.lines[i + 1].startswith("regularisation") for i in tile_lines)
    np.testing.assert_array_equal(read_all(outputs[0])[0], read_all(outputs[1])[0])


class CancelAfter(Feedback):
    """Cancels once ``calls`` cancellation checks have passed."""

    def __init__(self, calls):
        self.calls = calls

    def is_canceled(self):
        self.calls -= 1
        return self.calls < 0


def test_cancel_in_the_middle_leaves_no_output(scene_and_model, tmp_path):
    image, model = scene_and_model
    out = str(tmp_path / "a.tif")
    with pytest.raises(Canceled):
        job.run(image, model, out, output_rmse=str(tmp_path / "r.tif"), feedback=CancelAfter(3))
    assert os.listdir(str(tmp_path)) == []


def test_cancel_while_tiles_run_side_by_side_leaves_no_output(scene_and_model, tmp_path):
    """Four tiles, two at a time on threads: a cancel seen inside a running tile stops the run, nothing written."""
    image, model = scene_and_model
    with torch_threads(2):
        assert job.tile_threads(SIDE_BY_SIDE, 4) == 2
        with pytest.raises(Canceled):
            job.run(image, model, str(tmp_path / "a.tif"), SIDE_BY_SIDE, output_rmse=str(tmp_path / "r.tif"),
                    feedback=CancelAfter(3))
    assert os.listdir(str(tmp_path)) == []


class CacheLimits(Feedback):
    """Records GDAL's block-cache limit each time the job reports progress (during the run; its closing log
    line, the time and ms/pixel, comes after the cache is restored)."""

    def __init__(self):
        self.limits = []

    def set_progress(self, percent):
        from osgeo import gdal

        self.limits.append(gdal.GetCacheMax())


def test_gdal_block_cache_is_bounded_during_the_run_and_restored(scene_and_model, tmp_path):
    """GDAL caches every block read (5 % of the RAM by default), so a tile-by-tile run of a large raster grew
    by that much; the job caps the cache at a quarter of MEMORY_MB while it runs and restores it after."""
    from osgeo import gdal

    image, model = scene_and_model
    before = gdal.GetCacheMax()
    feedback = CacheLimits()
    job.run(image, model, str(tmp_path / "a.tif"), UnmixSettings(max_iter=1, memory_mb=400), feedback=feedback)
    assert feedback.limits and max(feedback.limits) <= min(before, 100 * 2 ** 20)
    assert gdal.GetCacheMax() == before


def test_tiles_with_halo_match_the_whole_image_with_the_codes_spatial_prior(scene_and_model, tmp_path):
    """Issue 25 item 4: the spatial prior couples the codes across the image; tiles with their 8-pixel halo still
    agree with one whole-image solve (its weight, auto, is resolved once for the scene)."""
    image, model = scene_and_model
    whole, tiled = str(tmp_path / "whole.tif"), str(tmp_path / "tiled.tif")
    settings = UnmixSettings(lambda_a=0.05, max_iter=3, code_smoothing="auto")
    assert job.run(image, model, whole, settings) == 1
    assert job.run(image, model, tiled, replace(settings, memory_mb=FOUR_TILES_MB)) == 4
    a_whole, _, _ = read_all(whole)
    a_tiled, _, _ = read_all(tiled)
    plain = str(tmp_path / "plain.tif")
    job.run(image, model, plain, replace(settings, code_smoothing=0.0))
    a_plain, _, _ = read_all(plain)
    assert np.max(np.abs(a_whole - a_plain)) > 1e-3          # the prior did act
    assert np.max(np.abs(a_whole - a_tiled)) < 0.02
    assert np.sqrt(np.mean((a_whole - a_tiled) ** 2)) < 0.003
