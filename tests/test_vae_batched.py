"""Batched VAE training (core.models.vae.StackedVAEs): each material gets the model it gets trained alone.

The reference below is the per-material training loop as it was before the batching (nn.Linear layers,
autograd, torch.optim.Adam, one material at a time), written independently of core.models.vae's stacked code: the
batched run must give every material the same weights and loss curve to float tolerance, with bundles of
different sizes (padded mini-batches) and a 4-pixel bundle (2 mini-batches per epoch, its own group).
"""

import math

import numpy as np
import pytest
import torch

from core.errors import Canceled, DeepGUError
from core.models.vae import SCALE_MARGIN, MaterialVAE, StackedVAEs, _generators, _one_thread, encoder_sizes, train_vaes
from helpers import Recorder


def reference_training(bundle, generator, latent_dim, epochs, loss, beta):
    """One material alone: Glorot weights, then per epoch a shuffle and mini-batches of ceil(n/3), one eps draw each,
    all from ``generator``; Adam (lr 1e-3) on the mean loss of each mini-batch. Returns the VAE and its curve."""
    n_bands, n = bundle.shape
    scale = SCALE_MARGIN * float(bundle.max())
    x = torch.as_tensor(np.maximum(bundle.T / scale, 0.0), dtype=torch.float32)
    vae = MaterialVAE(encoder_sizes(n_bands, latent_dim), scale)
    vae.reset_parameters(generator)
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    batch, curve = math.ceil(n / 3), []
    for _ in range(epochs):
        order, total = torch.randperm(n, generator=generator), 0.0
        for start in range(0, n, batch):
            sample_loss = vae.loss(x[order[start:start + batch]], loss, beta, generator)
            optimizer.zero_grad()
            sample_loss.mean().backward()
            optimizer.step()
            total += float(sample_loss.detach().sum())
        curve.append(total / n)
    return vae, np.array(curve)


def bundles_of_sizes(sizes, n_bands=24, seed=0):
    """Bundles (n_bands, n) of a smooth spectrum per material, scaled per pixel, with noise."""
    rng = np.random.default_rng(seed)
    w = np.linspace(0.0, 1.0, n_bands)[:, None]
    bundles = []
    for p, n in enumerate(sizes):
        spectrum = 0.3 + 0.2 * np.exp(-((w - 0.2 + 0.15 * p) / 0.2) ** 2)
        bundle = spectrum * rng.uniform(0.7, 1.3, n) * (1 + rng.uniform(-0.2, 0.2, n) * (w - 0.5))
        bundles.append(bundle + 0.01 * rng.standard_normal((n_bands, n)))
    return bundles


def parameters(vae):
    return torch.cat([p.detach().flatten() for p in vae.parameters()])


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_batched_training_gives_each_material_its_own_model(loss):
    sizes = [30, 17, 4, 25, 9]                  # unequal: padded mini-batches; the 4-pixel bundle takes 2 per epoch
    bundles = bundles_of_sizes(sizes)
    vaes, curves = train_vaes(bundles, latent_dim=3, epochs=12, seed=5, loss=loss, beta=0.05)
    z = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    for p, (bundle, generator) in enumerate(zip(bundles, _generators(5, len(sizes)))):
        with _one_thread():                         # tiny networks: more threads only wait for each other
            alone, curve = reference_training(bundle, generator, 3, 12, loss, 0.05)
        np.testing.assert_allclose(curves[p], curve, rtol=1e-5, err_msg="material %d" % p)
        torch.testing.assert_close(parameters(vaes[p]), parameters(alone), rtol=0, atol=1e-5)
        torch.testing.assert_close(vaes[p].decode(z), alone.decode(z).detach(), rtol=1e-5, atol=1e-6)
        assert vaes[p].scale == alone.scale and not vaes[p].training


def test_a_material_does_not_depend_on_the_others():
    """Swapping another material's bundle for a different one leaves a material's model as it was (to round-off),
    and changing its own bundle changes it: no gradient leaks between the stacked networks."""
    bundles = bundles_of_sizes([20, 20, 20])
    other = bundles_of_sizes([20, 20, 20], seed=1)
    first, _ = train_vaes(bundles, epochs=8, seed=2)
    second, _ = train_vaes([bundles[0], other[1], bundles[2]], epochs=8, seed=2)
    for p in (0, 2):
        torch.testing.assert_close(parameters(first[p]), parameters(second[p]), rtol=0, atol=1e-6)
    assert float((parameters(first[1]) - parameters(second[1])).abs().max()) > 1e-3


def test_the_diverging_material_is_named(monkeypatch):
    """A non-finite loss of material 2 in its second epoch (injected: no bundle can make it, the inputs are scaled)
    stops training at the end of that epoch, naming material 2 and epoch 2."""
    calls = []

    def poisoned(self, *args):
        sample_loss = original(self, *args)
        if self.n_materials == 2:                   # the half of materials 1 and 2 (the other is material 3)
            calls.append(1)
            if len(calls) == 4:                     # epoch 2, first mini-batch
                sample_loss[1, 0] = float("nan")
        return sample_loss

    original = StackedVAEs.loss_and_gradient
    monkeypatch.setattr(StackedVAEs, "loss_and_gradient", poisoned)
    recorder = Recorder()
    with pytest.raises(DeepGUError, match="material 2: training diverged at epoch 2: the loss is not finite"):
        train_vaes(bundles_of_sizes([10, 10, 10]), epochs=5, feedback=recorder)
    assert len(calls) == 6 and len(recorder.progress) == 1     # the rest of epoch 2 ran, epoch 3 did not


def test_nan_stop_names_the_first_material_that_diverged_and_keeps_the_others_finite():
    """With a huge beta every material diverges; the message names material 1, in epoch 1."""
    with pytest.raises(DeepGUError, match="material 1: training diverged at epoch 1"):
        train_vaes(bundles_of_sizes([10, 7]), epochs=3, beta=1e308)


def test_cancel_is_checked_before_every_mini_batch_and_progress_comes_per_epoch():
    bundles = bundles_of_sizes([12, 4, 9])        # groups: 3 mini-batches per epoch (12, 9), 2 (4)
    recorder = Recorder()
    train_vaes(bundles, epochs=5, feedback=recorder)
    assert recorder.checks == 5 * 3 + 5 * 2       # one check per mini-batch of each group
    assert len(recorder.progress) == 10 and recorder.progress == sorted(recorder.progress)
    assert recorder.progress[-1] == pytest.approx(100.0)
    canceler = Recorder(cancel_after=7, counting="checks")
    with pytest.raises(Canceled):
        train_vaes(bundles, epochs=1000, feedback=canceler)
    assert canceler.checks == 8 and len(canceler.progress) == 2     # stopped in the third epoch


@pytest.mark.parametrize("sizes", [[30, 17, 25, 9, 12], [20, 20, 20, 20]])
def test_the_models_do_not_depend_on_the_threads(sizes):
    """Two halves of the stack stepped side by side on two threads give, to the bit, the models and loss curves of
    the same halves computed one after the other on one thread."""
    bundles = bundles_of_sizes(sizes)
    one, one_curves = train_vaes(bundles, latent_dim=2, epochs=6, seed=3, n_threads=1)
    two, two_curves = train_vaes(bundles, latent_dim=2, epochs=6, seed=3, n_threads=2)
    for p in range(len(sizes)):
        assert torch.equal(parameters(one[p]), parameters(two[p])), "material %d" % p
        assert np.array_equal(one_curves[p], two_curves[p]), "material %d" % p
