"""Smooth variability for DeepGU (issue 25 item 4): the spatial prior on the codes and the ELMM start."""

import numpy as np
import pytest
import torch

from core.solvers.astep import PixelGrid
from core.errors import DeepGUError
from core.solvers.fcls import fcls as fcls_solve
from core.solvers.latent import WhitenedModel
from core.solvers.regularisation import abundance_length2, measure_levels
from core.solvers.smooth_zstep import neighbour_counts, smooth_zstep, smoothness
from core.solvers.unmix import deepgu_unmix, encode_endmembers
from core.solvers.unmix_settings import UnmixSettings
from core.solvers.zstep import PixelStats, decode, zstep
from test_unmix import smooth_field, toy_scene
from toy_model import ToyModel

pytestmark = pytest.mark.usefixtures("one_thread")


def test_neighbour_counts_match_a_brute_force_count():
    mask = np.ones((4, 5), bool)
    mask[1, 2] = mask[3, 0] = False
    expected = [sum(0 <= i + di < 4 and 0 <= j + dj < 5 and mask[i + di, j + dj]
                    for di, dj in ((0, 1), (0, -1), (1, 0), (-1, 0)))
                for i, j in zip(*np.nonzero(mask))]
    np.testing.assert_array_equal(neighbour_counts(mask), expected)


def test_smooth_zstep_reaches_the_minimum_of_its_cost_and_never_raises_it():
    """On a grid with a hole, the coupled Levenberg-Marquardt ends where autograd's gradient of
    F = sum_n f_n + lambda_S/2 ||D U||^2 vanishes, and F at the result is below F at the start."""
    model = ToyModel(n_bands=12)
    Y, A = toy_scene(model, rows=6, cols=5, snr_db=20.0, seed=1)
    mask = np.ones((6, 5), bool)
    mask[2, 3] = False
    grid = PixelGrid(mask)
    w = WhitenedModel(model)
    Yv, Av = torch.as_tensor(Y[:, mask].T), torch.as_tensor(A[:, mask].T)
    U0 = torch.zeros(grid.n_pixels, 3, 2, dtype=torch.float64)
    lambda_z, lambda_s = 0.05, 0.5
    degrees = torch.as_tensor(neighbour_counts(mask), dtype=torch.float64)
    res = smooth_zstep(w, Yv, Av, U0, lambda_z, lambda_s, grid, degrees, tol=1e-12, max_iter=200)
    assert res.objective < res.objective_start

    def cost(u):
        r = Yv - torch.einsum("nlp,np->nl", w.decode(u.reshape(-1, 3, 2)).double(), Av)
        return 0.5 * (r ** 2).sum() + 0.5 * lambda_z * (u ** 2).sum() + 0.5 * lambda_s * sum(
            ((u[n] - u[m]) ** 2).sum() for n, m in edges)

    index = -np.ones(mask.shape, int)
    index[mask] = np.arange(grid.n_pixels)
    edges = [(index[i, j], index[i + di, j + dj]) for i, j in zip(*np.nonzero(mask)) for di, dj in ((0, 1), (1, 0))
             if i + di < 6 and j + dj < 5 and mask[i + di, j + dj]]
    assert abs(smoothness(grid, res.Z.reshape(grid.n_pixels, -1), lambda_s)
               - 0.5 * lambda_s * sum(float(((res.Z[n] - res.Z[m]) ** 2).sum()) for n, m in edges)) < 1e-12

    u = res.Z.reshape(grid.n_pixels, -1).clone().requires_grad_(True)
    value = float(cost(u).detach())
    gradient, = torch.autograd.grad(cost(u), u)
    u0 = U0.reshape(grid.n_pixels, -1).clone().requires_grad_(True)
    gradient0, = torch.autograd.grad(cost(u0), u0)
    assert float(gradient.norm()) < 1e-6 * float(gradient0.norm())
    assert abs(value - res.objective) < 1e-9 * res.objective


def test_zero_weight_is_todays_solver():
    model = ToyModel()
    Y, _ = toy_scene(model, rows=8, cols=8, seed=2)
    today = deepgu_unmix(Y, model, UnmixSettings(lambda_z=0.05, lambda_a=0.01, max_iter=4))
    zero = deepgu_unmix(Y, model, UnmixSettings(lambda_z=0.05, lambda_a=0.01, max_iter=4, code_smoothing=0.0))
    np.testing.assert_array_equal(zero.abundances, today.abundances)
    np.testing.assert_array_equal(zero.latent, today.latent)
    assert [h["objective"] for h in zero.history] == [h["objective"] for h in today.history]


def test_without_coupling_the_coupled_step_solves_the_per_pixel_problems():
    """lambda_S = 0: the image-wide Levenberg-Marquardt reaches the per-pixel Z-step's minimum (an independent
    solver of the same problems)."""
    model = ToyModel()
    Y, A = toy_scene(model, rows=8, cols=8, seed=2, snr_db=20.0)
    mask = np.ones((8, 8), bool)
    w = WhitenedModel(model)
    Yv, Av = torch.as_tensor(Y[:, mask].T), torch.as_tensor(A[:, mask].T)
    U0 = torch.zeros(64, 3, 2, dtype=torch.float64)
    per_pixel = zstep(w, Yv, Av, U0, 0.05, tol=1e-12, max_iter=200)
    coupled = smooth_zstep(w, Yv, Av, U0, 0.05, 0.0, PixelGrid(mask),
                           torch.as_tensor(neighbour_counts(mask), dtype=torch.float64), tol=1e-12, max_iter=200)
    assert float((coupled.Z - per_pixel.Z).abs().max()) < 1e-4
    assert abs(coupled.objective - per_pixel.objective) < 1e-9 * per_pixel.objective


def test_the_prior_recovers_smooth_codes_better_and_the_cost_never_rises():
    """Codes that vary smoothly in space, noisy pixels (15 dB): the spatial prior brings the per-pixel endmembers
    and the abundances closer to the truth than the per-pixel prior alone, and DeepGU's cost (smoothness
    included) never rises from one iteration to the next."""
    model = ToyModel()
    rows = cols = 14
    rng = np.random.default_rng(5)
    P, K = 3, 2
    Z = model.z0.numpy()[:, :, None, None] + 0.8 * np.stack(
        [smooth_field(rng, (rows, cols), 3) for _ in range(P * K)]).reshape(P, K, rows, cols)
    logits = np.stack([1.5 * smooth_field(rng, (rows, cols), 3) for _ in range(P)])
    A = np.exp(logits) / np.exp(logits).sum(0)
    with torch.no_grad():
        M = model.decode(torch.as_tensor(Z.reshape(P, K, -1).transpose(2, 0, 1))).numpy()      # (N, L, P)
    clean = np.einsum("nlp,pn->ln", M, A.reshape(P, -1))
    Y = (clean + rng.standard_normal(clean.shape) * np.sqrt((clean ** 2).mean() / 10 ** 1.5)).reshape(-1, rows, cols)
    settings = dict(lambda_z=0.01, lambda_a=0.0, max_iter=6, tol=1e-6)
    plain = deepgu_unmix(Y, model, UnmixSettings(**settings), A_init=A)
    smooth = deepgu_unmix(Y, model, UnmixSettings(code_smoothing=0.1, **settings), A_init=A)
    truth = M.transpose(1, 2, 0).reshape(-1, P, rows, cols)

    def errors(result):
        return (float(np.sqrt(np.mean((result.endmembers - truth) ** 2))),
                float(np.sqrt(np.mean((result.abundances - A) ** 2))))

    assert errors(smooth)[0] < 0.8 * errors(plain)[0]
    assert errors(smooth)[1] < errors(plain)[1]
    objectives = [h["objective"] for h in smooth.history]
    assert len(objectives) >= 2
    assert all(b <= a * (1 + 1e-12) for a, b in zip(objectives, objectives[1:])), objectives


def test_abundance_length2_follows_the_field_length():
    """A Gaussian field of correlation function exp(-r^2 / (2 l^2)) gives about l^2; white noise the floor 1."""
    rng = np.random.default_rng(0)
    for length in (2.0, 4.0):
        # Gaussian-filtered noise of sigma s has correlation exp(-r^2 / (4 s^2)): l = sqrt(2) s
        fields = np.stack([smooth_field(rng, (200, 200), length / np.sqrt(2)) for _ in range(3)])
        assert abs(abundance_length2(fields) / length ** 2 - 1) < 0.25
    assert abundance_length2(rng.standard_normal((3, 50, 50))) == 1.0


def test_auto_smoothing_is_invariant_to_the_data_units():
    model = ToyModel()
    Y, _ = toy_scene(model, rows=8, cols=8, seed=4)
    settings = UnmixSettings(code_smoothing="auto", max_iter=3)
    r1 = deepgu_unmix(Y, model, settings)
    scaled = ToyModel(scale=0.8 * 1000.0)
    r2 = deepgu_unmix(1000.0 * Y, scaled, settings)
    np.testing.assert_allclose(r2.abundances, r1.abundances, atol=1e-6)
    levels = measure_levels(Y, model.m0, r1.abundances, np.ones((8, 8), bool))
    assert levels.length2 >= 1.0


def test_encode_endmembers_recovers_codes_the_decoder_made():
    model = ToyModel()
    w = WhitenedModel(model)
    rng = np.random.default_rng(1)
    U_true = torch.as_tensor(rng.normal(0, 0.7, (20, 3, 2)))
    M = decode(w, U_true)
    U = encode_endmembers(w, M, 1e-10, tol=1e-10, max_iter=100)
    np.testing.assert_allclose(decode(w, U).numpy(), M.numpy(), atol=1e-6)
    # the codes reproduce the statistics the solver starts from
    stats = PixelStats.evaluate(w, U, torch.zeros(20, model.n_bands, dtype=torch.float64))
    np.testing.assert_allclose(stats.gram.numpy(), torch.einsum("nlp,nlq->npq", M, M).numpy(), atol=1e-6)


def test_elmm_start_differs_from_the_fcls_start_and_keeps_the_cost_monotone():
    """A scene of ELMM's own model (smoothly scaled references): ELMM moves away from FCLS there, so DeepGU
    started from it ends elsewhere than from FCLS; its cost still never rises."""
    from core.solvers.variability_models import unmix_variability

    model = ToyModel()
    rows = cols = 10
    rng = np.random.default_rng(6)
    logits = np.stack([1.5 * smooth_field(rng, (rows, cols), 2) for _ in range(3)])
    A = np.exp(logits) / np.exp(logits).sum(0)
    scale = 1.0 + 0.25 * np.stack([smooth_field(rng, (rows, cols), 3) for _ in range(3)]).clip(-1, 1)
    Y = np.einsum("lp,pij->lij", model.m0, scale * A)
    Y += rng.standard_normal(Y.shape) * np.sqrt((Y ** 2).mean() / 1e3)
    fcls_start = deepgu_unmix(Y, model, UnmixSettings(max_iter=5, tol=1e-8))
    elmm_start = deepgu_unmix(Y, model, UnmixSettings(start="elmm", max_iter=5, tol=1e-8))
    elmm = unmix_variability("elmm", Y, model.m0)          # its auto weights, from FCLS with m0 (as DeepGU's)
    fcls = fcls_solve(Y.reshape(Y.shape[0], -1), model.m0).reshape(3, rows, cols)
    assert np.max(np.abs(elmm.abundances - fcls)) > 0.05
    assert np.max(np.abs(elmm_start.abundances - fcls_start.abundances)) > 1e-3
    objectives = [h["objective"] for h in elmm_start.history]
    assert all(b <= a * (1 + 1e-12) for a, b in zip(objectives, objectives[1:])), objectives


@pytest.mark.parametrize("settings, name", [(dict(code_smoothing=-1.0), "CODE_SMOOTHING"),
                                            (dict(code_smoothing="lots"), "CODE_SMOOTHING"),
                                            (dict(start="vca"), "START")])
def test_bad_options_name_the_parameter(settings, name):
    with pytest.raises(DeepGUError, match=name):
        UnmixSettings(**settings)
