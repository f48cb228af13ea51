"""The CUDA path gives the CPU's results to float tolerance (skipped without a GPU)."""

import numpy as np
import pytest
import torch

from core.errors import DeepGUError
from core.evaluation.synthetic import make_scene
from core.solvers.unmix import deepgu_unmix, resolve_device
from core.solvers.unmix_settings import UnmixSettings
from core.models.vae import train_endmember_model


def _small_problem():
    scene = make_scene("DC2", 12, 12, seed=1)
    Y = scene.image.reshape(scene.image.shape[0], -1)
    A = scene.abundances.reshape(3, -1)
    bundles = [Y[:, np.argsort(-A[p])[:20]] for p in range(3)]
    return scene, train_endmember_model(bundles, scene.reference, scene.names, epochs=10)


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(DeepGUError, match="CUDA"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_gpu_matches_cpu():
    scene, model = _small_problem()
    cpu = deepgu_unmix(scene.image, model, UnmixSettings(lambda_a=0.05, max_iter=3, device="cpu"))
    gpu = deepgu_unmix(scene.image, model, UnmixSettings(lambda_a=0.05, max_iter=3, device="cuda"))
    np.testing.assert_allclose(gpu.abundances, cpu.abundances, atol=1e-4)
    np.testing.assert_allclose(gpu.endmembers, cpu.endmembers, rtol=1e-4, atol=1e-5)
