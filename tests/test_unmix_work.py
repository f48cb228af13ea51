"""The DeepGU step's work counts (UnmixResult.work) and the matrix-product flops bench/bench_scale.py prints.

The counts are checked against counters wrapped around the decoder and the solves, and the flop formula
against torch's own count of the matrix products (torch.utils.flop_counter) of the same operations.
"""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import core.solvers.unmix
from core.solvers.astep import PixelGrid, astep
from core.solvers.latent import WhitenedModel
from core.solvers.unmix import deepgu_unmix, product_flops
from core.solvers.unmix_settings import UnmixSettings
from core.models.vae import EndmemberModel
from core.solvers.zstep import PixelStats
from test_zstep import random_vae_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_decoder_flops_are_torchs_count_of_the_products():
    """Per decoder evaluation: torch counts the formula's products for every pixel, plus the two small products
    the formula leaves out (the whitening of the codes, 2 P K^2 per pixel, and the first layer's tangents,
    computed once for all pixels)."""
    P, K, n = 3, 2, 50
    model = random_vae_model(L=30, P=P, K=K)
    sizes = model.vaes[0].sizes
    Z = torch.randn(n, P, K, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    Y = torch.rand(n, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    whitened = WhitenedModel(model)
    with FlopCounterMode(display=False) as counter:
        PixelStats.evaluate(whitened, Z, Y)
    left_out = n * 2 * P * K * K + 2 * P * K * K * sizes[3]
    assert counter.get_total_flops() == product_flops(sizes, P, (1, 1), n, 0, 0, n) + left_out


def test_admm_flops_are_torchs_count_of_the_products():
    """Per ADMM iteration: the four transforms of the Laplacian solve as torch counts them, plus the per-pixel
    data update (P x P inverses applied by element-wise multiply-adds, which torch's counter does not see)."""
    rows, cols, P = 6, 9, 3
    n = rows * cols
    grid = PixelGrid(np.ones((rows, cols), bool))
    M = torch.rand(n, 20, P, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = M @ torch.full((P,), 1.0 / P, dtype=torch.float64)
    G, b = M.transpose(1, 2) @ M, (M.transpose(1, 2) @ y[..., None])[..., 0]
    state = astep(G, b, grid, 0.01, A_init=torch.full((n, P), 1.0 / P, dtype=torch.float64), max_iter=1)[1]["state"]
    with FlopCounterMode(display=False) as counter:
        _, info = astep(G, b, grid, 0.01, tol=0.0, max_iter=4, state=state)
    assert info["iterations"] == 4
    model = random_vae_model(L=20, P=P)
    data_updates = 4 * n * 2 * P * P
    assert counter.get_total_flops() + data_updates == pytest.approx(
        product_flops(model.vaes[0].sizes, P, (rows, cols), 0, 0, 4, n))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_work_counts_are_the_solvers_calls(monkeypatch, smoothing):
    """evaluations = pixels through the decoder's Jacobian, solves = per-pixel Levenberg-Marquardt systems (none
    with a spatial prior on the codes: its Z-step solves one coupled system by conjugate gradients),
    admm_iterations = all A-steps' iterations, the final one included; flops = product_flops of those."""
    P, K, L = 3, 2, 30
    model = random_vae_model(L=L, P=P, K=K)
    rng = np.random.default_rng(0)
    A = rng.dirichlet(np.ones(P), size=(8, 8)).transpose(2, 0, 1)
    Y = np.einsum("lp,prc->lrc", model.m0, A) * (1 + 0.05 * rng.standard_normal((L, 8, 8)))
    counts = {"pixels": 0, "systems": 0, "admm": 0}
    decode_with_jacobian, solve, guarded = (EndmemberModel.decode_with_jacobian, torch.linalg.solve,
                                            core.solvers.unmix._guarded_astep)

    def counting_decoder(self, z, *args, **kwargs):
        counts["pixels"] += z.shape[0]
        return decode_with_jacobian(self, z, *args, **kwargs)

    def counting_solve(H, g):
        counts["systems"] += H.shape[0] if H.shape[-1] == P * K else 0
        return solve(H, g)

    def counting_astep(*args):
        result = guarded(*args)
        counts["admm"] += result[1]["iterations"]
        return result

    monkeypatch.setattr(EndmemberModel, "decode_with_jacobian", counting_decoder)
    monkeypatch.setattr(torch.linalg, "solve", counting_solve)
    monkeypatch.setattr(core.solvers.unmix, "_guarded_astep", counting_astep)
    result = deepgu_unmix(Y, model, UnmixSettings(code_smoothing=smoothing))
    work = result.work
    assert work["evaluations"] == counts["pixels"] > 64
    assert work["solves"] == counts["systems"]
    assert (counts["systems"] > 0) == (smoothing == 0.0)
    assert work["admm_iterations"] == counts["admm"] > sum(h["admm_iterations"] for h in result.history)
    assert work["flops"] == product_flops(model.vaes[0].sizes, P, (8, 8), counts["pixels"], counts["systems"],
                                          counts["admm"], 64)
