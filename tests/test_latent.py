"""Whitened, anchored latent codes; the confusion check; auto regularisation's scale invariance."""

import numpy as np
import pytest
import torch

from core.solvers.latent import TRUST_RADIUS, WhitenedModel, confusions
from core.evaluation.metrics import match_materials
from core.pipeline import run_pipeline
from core.evaluation.synthetic import make_scene
from core.solvers.unmix_settings import UnmixSettings
from core.solvers.regularisation import Levels, abundance_noise, resolve, sum_zero_curvatures, tv_curvature
from core.models.vae import code_spread, train_vaes
from toy_model import ToyModel


class OffsetToy(ToyModel):
    """A ToyModel whose references are 10 % brighter than its decoders at z0, with a code spread."""

    def __init__(self, spread=0.3, **kwargs):
        super().__init__(**kwargs)
        base = torch.tensor([[1.0, 0.0], [0.5, 0.8]], dtype=torch.float64) * spread
        self.code_spread = base.expand(self.n_materials, -1, -1).clone()
        self.names = ["a", "b", "c"]

    @property
    def m0(self):
        return 1.1 * super().m0


class Linear:
    """Two materials: G_0(z) = m_a + z_1 (m_b - m_a) (drifts towards b), G_1(z) = m_b (fixed)."""

    def __init__(self, spread):
        rng = np.random.default_rng(0)
        self.ma, self.mb = rng.uniform(0.2, 1.0, 20), rng.uniform(0.2, 1.0, 20)
        self.m0 = np.stack([self.ma, self.mb], axis=1)
        self.z0 = torch.zeros(2, 2, dtype=torch.float64)
        self.code_spread = torch.eye(2, dtype=torch.float64).expand(2, -1, -1) * spread
        self.n_materials, self.latent_dim, self.n_bands = 2, 2, 20

    def decode(self, z):
        ma, mb = torch.as_tensor(self.ma), torch.as_tensor(self.mb)
        g0 = ma + z[:, 0, :1] * (mb - ma)
        return torch.stack([g0, mb.expand_as(g0)], dim=2)


def test_whitened_decoder_is_anchored_and_follows_the_spread():
    model = OffsetToy()
    whitened = WhitenedModel(model)
    u = torch.randn(5, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        at_zero = whitened.decode(torch.zeros(1, 3, 2, dtype=torch.float64))[0].numpy()
        z = model.z0 + torch.einsum("pij,npj->npi", model.code_spread, u)
        expected = model.decode(z) * 1.1                   # anchor = m0 / G(z0) = 1.1
        np.testing.assert_allclose(whitened.decode(u).numpy(), expected.numpy(), rtol=1e-12)
        np.testing.assert_allclose(whitened.codes(u).numpy(), z.numpy(), rtol=1e-12)
    np.testing.assert_allclose(at_zero, model.m0, rtol=1e-12)


def test_code_spread_is_the_cholesky_factor_of_the_bundle_codes_covariance():
    rng = np.random.default_rng(1)
    bundles = [rng.uniform(0.1, 0.6, (30, 40)) for _ in range(2)]
    vaes, _ = train_vaes(bundles, 2, 3, 0, "bce", 0.01, None)
    spread = code_spread(vaes, bundles).numpy()
    for vae, bundle, factor in zip(vaes, bundles, spread):
        with torch.no_grad():
            codes = vae.encode(torch.as_tensor(bundle.T / vae.scale, dtype=torch.float32))[0].double().numpy()
        cov = np.cov(codes.T)
        expected = cov + 0.1 ** 2 * np.trace(cov) / 2 * np.eye(2)
        np.testing.assert_allclose(factor @ factor.T, expected, rtol=1e-5)
        assert factor[0, 1] == 0


def test_confusions_name_a_decoder_that_reaches_another_reference_inside_the_trust_region():
    wide = confusions(Linear(spread=1.0))           # u = 1 (inside radius 3) gives exactly m_b
    assert [(p, q) for p, q, _, _ in wide] == [(0, 1)]
    assert confusions(Linear(spread=0.1)) == []      # 0.3 of the way at most: still nearer m_a
    assert TRUST_RADIUS == 3.0


def test_auto_regularisation_levels_against_known_values():
    rng = np.random.default_rng(0)
    noise = 0.05 * rng.standard_normal((3, 64, 64))
    smooth = np.linspace(0, 1, 64)[None, :, None] * np.ones((3, 64, 64))    # a ramp has zero Haar detail
    assert abundance_noise(smooth + noise) == pytest.approx(0.05, rel=0.1)
    assert abundance_noise(smooth) == pytest.approx(0.0, abs=1e-12)
    # a per-material mask: material 0 left out entirely gives the noise of materials 1 and 2 alone
    per_material = np.ones((3, 64, 64), dtype=bool)
    per_material[0] = False
    assert abundance_noise(smooth + noise, per_material) == abundance_noise((smooth + noise)[1:])
    M = np.array([[1.0, 1.0], [0.0, 0.1]])                  # two close materials: difference (0, 0.1)
    assert tv_curvature(M) == pytest.approx(0.1 ** 2 / 2, rel=1e-9)  # one direction: its curvature
    # M^T M = diag(1, 1, 4) on the sum-zero plane, basis (1, -1, 0)/sqrt 2 and (1, 1, -2)/sqrt 6: diag(1, 3)
    D = np.diag([1.0, 1.0, 2.0])
    np.testing.assert_allclose(sum_zero_curvatures(D), [1.0, 3.0], rtol=1e-12)
    assert tv_curvature(D) == pytest.approx(np.sqrt(1.0 * np.sqrt(1.0 * 3.0)), rel=1e-12)
    assert tv_curvature(3.0 * D) == pytest.approx(9.0 * tv_curvature(D), rel=1e-12)     # scales with the data^2
    lz, la = resolve("auto", "auto", Levels(rho2=2.0, sigma_a=0.1, curvature=3.0))
    assert lz == pytest.approx(2.0 * 1.0) and la == pytest.approx(1.25 * 0.1 * 3.0)
    assert resolve(0.3, 0.0, Levels(5.0, 1.0, 1.0)) == (0.3, 0.0)


@pytest.fixture(scope="module")
def close_pair():
    """A DC2-type scene from the other library (rock and soil 6 degrees apart), stored as int16 DN
    (reflectance x 10000), and the pipeline at auto on it in DN and in reflectance (DN x 1e-4)."""
    from bench.accuracy_scenes import OTHER_LIBRARY
    scene = make_scene("DC2", 28, 28, snr_db=30.0, seed=4, n_materials=4, library=OTHER_LIBRARY)
    dn = np.round(scene.image.astype(np.float64) * 10000.0)
    settings = dict(seed=0, epochs=100, settings=UnmixSettings(max_iter=4))
    return scene, run_pipeline(dn * 1e-4, 4, **settings), run_pipeline(dn, 4, **settings)


def _rmse(A, truth):
    A, truth = A.reshape(A.shape[0], -1), truth.reshape(truth.shape[0], -1)
    return float(np.sqrt(np.mean((A[match_materials(A, truth)] - truth) ** 2)))


def test_trust_region_holds_with_two_close_materials(close_pair):
    scene, result, _ = close_pair
    outside = [r["outside"] for r in result.unmixed.report]
    assert max(outside) <= 0.05, result.unmixed.report
    assert _rmse(result.unmixed.abundances, scene.abundances) <= _rmse(result.fcls_abundances, scene.abundances)


def test_auto_regularisation_is_invariant_to_the_data_units(close_pair):
    """int16 DN and the same DN with a 1e-4 scale factor give the same abundances at auto."""
    _, reflectance, dn = close_pair
    assert dn.unmixed.lambda_z == pytest.approx(reflectance.unmixed.lambda_z * 1e8, rel=1e-6)
    assert dn.unmixed.lambda_a == pytest.approx(reflectance.unmixed.lambda_a * 1e8, rel=1e-6)
    assert np.max(np.abs(reflectance.unmixed.abundances - dn.unmixed.abundances)) < 1e-3


@pytest.mark.parametrize("unit", [1.0, 250.0])
def test_held_brightness_keeps_each_references_component_and_its_derivatives_are_exact(unit):
    """BRIGHTNESS abundances: every decoded spectrum's component along its reference is the reference's, the change
    is the free decoder's minus that component, and the derivatives are those of the held decoder (autograd)."""
    model = OffsetToy()
    free, held = WhitenedModel(model, unit), WhitenedModel(model, unit, hold_brightness=True)
    u = torch.randn(4, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    m0 = torch.as_tensor(model.m0, dtype=torch.float64) / unit
    e = m0 / m0.norm(dim=0)
    with torch.no_grad():
        G, G_free = held.decode(u), free.decode(u)
    np.testing.assert_allclose(torch.einsum("nlp,lp->np", G, e).numpy(), m0.norm(dim=0).expand(4, -1).numpy(),
                               rtol=1e-12)
    change = G_free - G                                    # along e_p only
    np.testing.assert_allclose((change - e * torch.einsum("nlp,lp->np", change, e)[:, None]).numpy(), 0, atol=1e-12)
    assert float(change.norm()) > 1e-3 * float(G_free.norm())       # the free decoder does change brightness
    np.testing.assert_allclose(held.decode(torch.zeros(1, 3, 2, dtype=torch.float64))[0].numpy(), m0.numpy(),
                               rtol=1e-12)                 # anchored still
    G_j, D = held.decode_with_jacobian(u)
    np.testing.assert_allclose(G_j.numpy(), G.numpy(), rtol=1e-12)
    for n in range(2):
        J = torch.autograd.functional.jacobian(lambda v: held.decode(v[None])[0], u[n])    # (L, P, P, K)
        expected = torch.stack([J[:, p, p, :] for p in range(3)], dim=1)                  # (L, P, K)
        np.testing.assert_allclose(D[n].numpy(), expected.numpy(), rtol=1e-9, atol=1e-12)


def test_held_brightness_unmixing_keeps_every_pixels_endmember_at_its_references_brightness():
    """End to end on a DC1 scene: with BRIGHTNESS abundances each per-pixel endmember's projection on its reference
    is the reference's norm at every pixel, while the default's per-pixel endmembers do change brightness."""
    from core.solvers.unmix import deepgu_unmix
    scene = make_scene("DC1", 12, 12, 30.0, seed=2, n_materials=3)
    result = run_pipeline(scene.image, 3, seed=0, epochs=20, settings=UnmixSettings(max_iter=2))
    held = deepgu_unmix(scene.image, result.model, UnmixSettings(max_iter=2, brightness="abundances"),
                        A_init=result.fcls_abundances)
    m0 = result.model.m0
    e = m0 / np.linalg.norm(m0, axis=0)
    for endmembers, expect_held in ((held.endmembers, True), (result.unmixed.endmembers, False)):
        along = np.einsum("lprc,lp->prc", endmembers, e)                       # (P, rows, cols)
        deviation = np.abs(along / np.linalg.norm(m0, axis=0)[:, None, None] - 1).max()
        assert (deviation < 1e-5) if expect_held else (deviation > 1e-3), deviation      # float32 spectra
