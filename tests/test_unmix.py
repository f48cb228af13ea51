"""DeepGU outer loop: stopping rule, nodata, recovery against FCLS, determinism, feedback."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from core.solvers.astep import fcls_batched
from core.errors import Canceled, DeepGUError
from core.solvers.unmix import deepgu_unmix, resolve_device
from core.solvers.unmix_settings import UnmixSettings
from helpers import Recorder
from toy_model import ToyModel

pytestmark = pytest.mark.usefixtures("one_thread")


def smooth_field(rng, shape, sigma):
    """Standardised Gaussian-filtered white noise."""
    f = gaussian_filter(rng.standard_normal(shape), sigma)
    return f / f.std()


def toy_scene(model, rows=16, cols=16, z_spread=0.6, snr_db=35.0, seed=0):
    """Y (L, rows, cols) = G(Z_true) a + noise with smooth abundances and smooth latent codes."""
    rng = np.random.default_rng(seed)
    P, K = model.n_materials, model.latent_dim
    logits = np.stack([1.5 * smooth_field(rng, (rows, cols), 3) for _ in range(P)])
    A = np.exp(logits) / np.exp(logits).sum(0)
    Z = model.z0.numpy()[:, :, None, None] + z_spread * np.stack(
        [smooth_field(rng, (rows, cols), 2) for _ in range(P * K)]).reshape(P, K, rows, cols)
    with torch.no_grad():
        M = model.decode(torch.as_tensor(Z.reshape(P, K, -1).transpose(2, 0, 1))).numpy()   # (N, L, P)
    Y = np.einsum("nlp,pn->ln", M, A.reshape(P, -1))
    Y += rng.standard_normal(Y.shape) * np.sqrt((Y ** 2).mean() / 10 ** (snr_db / 10))
    return Y.reshape(-1, rows, cols), A


def rmse_a(A, truth):
    return float(np.sqrt(np.nanmean((A - truth) ** 2)))


def test_deepgu_recovers_abundances_far_better_than_fcls():
    model = ToyModel()
    Y, A_true = toy_scene(model)
    res = deepgu_unmix(Y, model, UnmixSettings(lambda_z=1e-3, lambda_a=1e-3, max_iter=10))
    L, rows, cols = Y.shape
    A_fcls = fcls_batched(torch.as_tensor(model.m0), torch.as_tensor(Y.reshape(L, -1).T)).numpy().T
    assert rmse_a(res.abundances, A_true) <= 0.5 * rmse_a(A_fcls.reshape(A_true.shape), A_true)
    assert res.abundances.shape == (3, rows, cols)
    assert res.latent.shape == (3, 2, rows, cols)
    assert res.endmembers.shape == (L, 3, rows, cols)
    assert np.all(res.abundances >= -1e-9) and np.allclose(res.abundances.sum(0), 1)
    # outputs are consistent: rmse is that of y - G(Z_n) a_n with the returned Z and A
    recon = np.einsum("lpij,pij->lij", res.endmembers, res.abundances)
    np.testing.assert_allclose(res.rmse, np.sqrt(((Y - recon) ** 2).mean(0)), rtol=1e-10)
    with torch.no_grad():
        M = model.decode(torch.as_tensor(res.latent.reshape(3, 2, -1).transpose(2, 0, 1))).numpy()
    np.testing.assert_allclose(res.endmembers.reshape(L, 3, -1), M.transpose(1, 2, 0), atol=1e-12)
    assert res.history[-1]["objective"] < res.history[0]["objective"]


def test_objective_never_increases_between_iterations():
    """Both steps are descent steps (the A-step is kept only if it lowers the A-objective): J is monotone."""
    model = ToyModel()
    Y, _ = toy_scene(model, z_spread=0.9, snr_db=25.0, seed=3)
    res = deepgu_unmix(Y, model, UnmixSettings(lambda_z=0.1, lambda_a=0.05, max_iter=8, tol=1e-6))
    objectives = [h["objective"] for h in res.history]
    assert len(objectives) >= 3
    assert all(b <= a * (1 + 1e-12) for a, b in zip(objectives, objectives[1:])), objectives


def test_exact_data_converges_early():
    model = ToyModel()
    rng = np.random.default_rng(3)
    A = rng.dirichlet(np.ones(3), size=(8, 9)).transpose(2, 0, 1)
    Y = np.einsum("lp,pij->lij", model.m0, A)          # exactly the reference model, no noise
    feedback = Recorder()
    res = deepgu_unmix(Y, model, UnmixSettings(lambda_a=0.0, max_iter=10), feedback=feedback)
    assert res.converged and res.n_iter == 1 < 10
    iterations = [m for m in feedback.messages if m.startswith("DeepGU iteration")]
    assert len(res.history) == len(iterations) == 1
    assert feedback.messages[0].startswith("regularisation: lambda_Z")
    assert feedback.progress[-1] == 100.0
    np.testing.assert_allclose(res.abundances, A, atol=1e-6)
    assert res.history[0]["change_z"] < 1e-3 and res.history[0]["change_a"] < 1e-3


def test_max_iter_one_stops_after_one_iteration():
    model = ToyModel()
    Y, _ = toy_scene(model, rows=8, cols=8)
    res = deepgu_unmix(Y, model, UnmixSettings(max_iter=1))
    assert res.n_iter == 1 and not res.converged and len(res.history) == 1
    h = res.history[0]
    assert h["change_a"] > 1e-3 or h["change_z"] > 1e-3
    assert set(h) >= {"objective", "data", "z_reg", "tv", "change_a", "change_z"}


def test_nodata_stays_nan_and_does_not_influence_valid_pixels():
    model = ToyModel()
    Y, _ = toy_scene(model, rows=10, cols=10)
    Y[:, 2, 3] = np.nan
    Y[:, 5:7, 5] = np.nan
    invalid = ~np.all(np.isfinite(Y), axis=0)
    res = deepgu_unmix(Y, model, UnmixSettings(lambda_a=0.01, max_iter=3))
    for out in (res.abundances, res.latent, res.endmembers):
        assert np.all(np.isnan(out[..., invalid])) and np.all(np.isfinite(out[..., ~invalid]))
    assert np.all(np.isnan(res.rmse[invalid]))
    # other values at the nodata pixels, masked out explicitly: same result on valid pixels
    Y2 = np.where(invalid, 7.0, Y)
    res2 = deepgu_unmix(Y2, model, UnmixSettings(lambda_a=0.01, max_iter=3), mask=~invalid)
    np.testing.assert_array_equal(res2.abundances, res.abundances)
    np.testing.assert_array_equal(res2.latent, res.latent)


def test_deterministic_and_a_init_is_used():
    model = ToyModel()
    Y, A_true = toy_scene(model, rows=8, cols=8)
    r1 = deepgu_unmix(Y, model, UnmixSettings(max_iter=2))
    r2 = deepgu_unmix(Y, model, UnmixSettings(max_iter=2))
    np.testing.assert_array_equal(r1.abundances, r2.abundances)
    np.testing.assert_array_equal(r1.latent, r2.latent)
    r3 = deepgu_unmix(Y, model, UnmixSettings(max_iter=2), A_init=A_true)
    assert not np.array_equal(r3.abundances, r1.abundances)


def test_cancel_and_bad_input():
    model = ToyModel()
    Y, _ = toy_scene(model, rows=6, cols=6)
    with pytest.raises(Canceled):
        deepgu_unmix(Y, model, UnmixSettings(max_iter=5), feedback=Recorder(cancel_after=1, counting="messages"))
    with pytest.raises(DeepGUError):
        deepgu_unmix(Y[:-1], model)
    with pytest.raises(DeepGUError):
        deepgu_unmix(Y, model, A_init=np.ones((2, 6, 6)))
    with pytest.raises(DeepGUError):
        deepgu_unmix(np.full_like(Y, np.nan), model)
    with pytest.raises(DeepGUError):
        deepgu_unmix(Y, model, UnmixSettings(tv="tikhonov"))


def test_device_resolution():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(DeepGUError):
            resolve_device("cuda")
    with pytest.raises(DeepGUError):
        resolve_device("tpu-please")


def test_the_loop_stops_when_the_objective_stops_decreasing():
    """Stopping rule: both relative changes below tol, or J decreased by less than tol J in one iteration."""
    model = ToyModel()
    Y, _ = toy_scene(model, z_spread=0.9, snr_db=25.0, seed=3)
    tol = 1e-2
    res = deepgu_unmix(Y, model, UnmixSettings(lambda_z=0.1, lambda_a=0.05, max_iter=10, tol=tol))
    h = res.history

    def stops(k):
        small_changes = h[k]["change_a"] < tol and h[k]["change_z"] < tol
        return small_changes or (k > 0 and h[k - 1]["objective"] - h[k]["objective"] < tol * h[k - 1]["objective"])

    assert res.converged and res.n_iter < 10
    assert stops(len(h) - 1) and not any(stops(k) for k in range(len(h) - 1))
    assert not (h[-1]["change_a"] < tol and h[-1]["change_z"] < tol)      # here it is J's test that stopped it
