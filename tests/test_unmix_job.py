"""The DeepGU raster job: tiles with a halo agree with one whole-image solve; cancel leaves nothing."""

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from core.errors import Canceled
from core.feedback import Feedback
from core.jobs import unmix as job
from core.model_file import save_model
from core.raster_io import georeference, read_all, write_raster
from core.synthetic import make_scene
from core.unmix_settings import UnmixSettings
from core.vae import train_endmember_model


@pytest.fixture(scope="module")
def scene_and_model(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("unmix-job")
    scene = make_scene("DC2", 24, 24, seed=4)
    image = str(folder / "scene.tif")
    write_raster(image, scene.image, georeference(24, 24), wavelengths=scene.wavelengths)
    A = scene.abundances.reshape(3, -1)
    Y = scene.image.reshape(scene.image.shape[0], -1)
    bundles = [Y[:, np.argsort(-A[p])[:30]] for p in range(3)]
    model = train_endmember_model(bundles, scene.reference, scene.names, wavelengths=scene.wavelengths, epochs=30)
    path = str(folder / "model.pt")
    save_model(model, path)
    return image, path


def test_tiles_with_halo_match_the_whole_image(scene_and_model, tmp_path):
    image, model = scene_and_model
    whole, tiled = str(tmp_path / "whole.tif"), str(tmp_path / "tiled.tif")
    settings = UnmixSettings(lambda_a=0.05, max_iter=3)
    assert job.run(image, model, whole, settings) == 1
    # a budget of (12 + 2 * 8)^2 pixels: 2 x 2 tiles of 12 x 12 pixels, each padded by 8
    memory_mb = 784 * job._BYTES_PER_PIXEL_BAND_MATERIAL * 198 * 3 / 2 ** 20
    n_tiles = job.run(image, model, tiled, replace(settings, memory_mb=memory_mb))
    assert n_tiles == 4
    a_whole, valid, _ = read_all(whole)
    a_tiled, valid_tiled, _ = read_all(tiled)
    assert valid.all() and valid_tiled.all()
    assert np.max(np.abs(a_whole - a_tiled)) < 0.02
    assert np.sqrt(np.mean((a_whole - a_tiled) ** 2)) < 0.003


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
