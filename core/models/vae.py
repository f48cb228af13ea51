"""One variational autoencoder per material (paper Sec. VI, Tables I and II).

Layer sizes for ``L`` bands and latent size ``K`` (:func:`encoder_sizes`)::

    encoder  L -> ceil(1.2 L) + 5 -> max(ceil(L/4), K+2) + 3 -> max(ceil(L/10), K+1) -> (mean, log-variance) in R^K
    decoder  K -> max(ceil(L/10), K+1) -> max(ceil(L/4), K+2) + 3 -> ceil(1.2 L) + 5 -> L (sigmoid)

with ReLU on every hidden layer (L = 224, K = 2: 224 -> 274 -> 59 -> 23 -> 2).

Scaling. The sigmoid output lies in (0, 1), so material ``p`` is trained on
``x = y / s_p`` with ``s_p = SCALE_MARGIN * max(bundle_p)`` (bundle values then
lie in [0, 0.8], away from the sigmoid's saturation); negative values (noise)
are clipped to 0. Decoding multiplies back, so :meth:`MaterialVAE.decode`
returns scene units: ``G_p(z) = s_p * sigmoid(decoder_p(z))``.

Training minimises, per sample, a beta-weighted negative ELBO (the authors'
code exposes the weight as ``beta_loss``)::

    loss(x) = L * mean_l BCE(x_l, x_hat_l) + beta KL,   KL = -1/2 sum_k (1 + log s2_k - mu_k^2 - s2_k)

(or ``L * mean_l (x_l - x_hat_l)^2 + beta KL`` with ``loss="mse"``) where
``x_hat = sigmoid(decoder(mu + sqrt(s2) * eps))``, ``eps ~ N(0, I)``; Adam
(lr 1e-3), mini-batches of ``ceil(n/3)`` shuffled pixels, ``epochs`` passes,
float32, Glorot-uniform initial weights and zero biases (Keras' defaults, as
the authors used).
The default ``beta`` is ``core.defaults.TRAINVAE["BETA"]`` = 0.01, not 1, and the default
number of epochs ``TRAINVAE["EPOCHS"]`` = 200, not 50: scene variability is a
few per cent of a spectrum, and with beta = 1 (or 150 Adam steps) the KL term
wins, the posterior collapses and the decoder ignores z, generating only the
bundle mean (``bench/bench_vae_capacity.py`` measures this).
Every random step (initial weights, shuffling, eps) draws from a
``torch.Generator`` seeded from ``(seed, material)``, so training is
reproducible on CPU. All materials are trained together, as one network of stacked weights
(:class:`StackedVAEs`, ``bench/bench_train_vae.py``): each material still gets the model it gets trained
alone from its generator, up to round-off. The stack is computed in two fixed halves, side by side on two
threads when torch has two, each on one torch thread (splitting an operation of such small networks over
threads costs more than it saves, ten times more on a busy machine); the halves are fixed, so the models
are the same on any number of cores.
"""

import contextlib
import math
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..defaults import LOSSES, TRAINVAE
from ..errors import DeepGUError
from ..feedback import ensure

# torch's forward-mode AD (torch.func.jvp, the Z-step's Jacobians) compiles its decompositions with
# torch.jit.script on first use, which torch deprecates: a warning on every run that no user can act on.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=DeprecationWarning)

SCALE_MARGIN = 1.25
CODE_SPREAD_FLOOR = 0.1     # relative floor of the code spread's standard deviation (see code_spread)
LEARNING_RATE = 1e-3
MIN_BUNDLE_PIXELS = 3


def encoder_sizes(L, K):
    """Unit counts ``(L, h1, h2, h3, K)`` of the encoder (Table I); the decoder is the reverse (Table II)."""
    return (
        int(L),
        math.ceil(1.2 * L) + 5,
        max(math.ceil(L / 4), K + 2) + 3,
        max(math.ceil(L / 10), K + 1),
        int(K),
    )


def _mlp(chain):
    """Linear + ReLU for each consecutive pair of ``chain``."""
    layers = []
    for n_in, n_out in zip(chain[:-1], chain[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers)


class MaterialVAE(nn.Module):
    """VAE of one material: ``sizes = (L, h1, h2, h3, K)``, ``scale`` the positive scene-unit factor."""

    def __init__(self, sizes, scale=1.0):
        super().__init__()
        self.sizes = tuple(int(s) for s in sizes)
        self.scale = float(scale)
        self.encoder = _mlp(self.sizes[:-1])
        self.mean = nn.Linear(self.sizes[-2], self.sizes[-1])
        self.log_var = nn.Linear(self.sizes[-2], self.sizes[-1])
        reverse = self.sizes[::-1]
        self.decoder = _mlp(reverse[:-1])
        self.output = nn.Linear(reverse[-2], reverse[-1])

    def reset_parameters(self, generator):
        """Glorot-uniform weights ``U(-r, r)``, ``r = sqrt(6 / (fan_in + fan_out))``, zero biases."""
        with torch.no_grad():
            for layer in self.modules():
                if isinstance(layer, nn.Linear):
                    bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.zero_()

    def encode(self, x):
        """Scaled spectra ``x`` (n, L) -> mean and log-variance, each (n, K)."""
        h = self.encoder(x)
        return self.mean(h), self.log_var(h)

    def logits(self, z):
        """Latent codes ``z`` (n, K) -> pre-sigmoid output (n, L)."""
        return self.output(self.decoder(z))

    def decode(self, z):
        """Latent codes ``z`` (n, K) -> spectra (n, L) in scene units."""
        return torch.sigmoid(self.logits(z)) * self.scale

    def loss(self, x, kind, beta, generator):
        """Per-sample loss (n,) of scaled spectra ``x`` (n, L): reconstruction + ``beta`` KL, one draw of eps."""
        mu, log_var = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        logits = self.logits(mu + torch.exp(0.5 * log_var) * eps)
        if kind == "bce":
            reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
        else:
            reconstruction = ((torch.sigmoid(logits) - x) ** 2).sum(dim=1)
        kl = -0.5 * torch.sum(1.0 + log_var - mu**2 - torch.exp(log_var), dim=1)
        return reconstruction + beta * kl


def _generators(seed, n):
    """``n`` independent CPU generators derived from ``seed``."""
    states = np.random.SeedSequence(seed).spawn(n)
    return [torch.Generator().manual_seed(int(s.generate_state(1)[0])) for s in states]


@contextlib.contextmanager
def _one_thread():
    """Run torch on a single CPU thread inside the block, then restore the thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_bundles(bundles, n_bands=None):
    """Validate bundles (list of (L, n_p) arrays); returns float64 arrays."""
    if len(bundles) == 0:
        raise DeepGUError("no bundles to train on")
    checked = []
    for p, bundle in enumerate(bundles):
        bundle = np.asarray(bundle, dtype=np.float64)
        label = "bundle of material %d" % (p + 1)
        if bundle.ndim != 2:
            raise DeepGUError("%s must be a (bands, pixels) array, got shape %s" % (label, bundle.shape))
        if n_bands is not None and bundle.shape[0] != n_bands:
            raise DeepGUError("%s has %d bands but the reference endmembers have %d"
                              % (label, bundle.shape[0], n_bands))
        if bundle.shape[1] < MIN_BUNDLE_PIXELS:
            raise DeepGUError("%s has %d pixels; at least %d are needed" % (label, bundle.shape[1], MIN_BUNDLE_PIXELS))
        if not np.all(np.isfinite(bundle)):
            raise DeepGUError("%s contains non-finite values" % label)
        if bundle.max() <= 0:
            raise DeepGUError("%s has no positive value, so it cannot be scaled for the VAE" % label)
        checked.append(bundle)
    if len({b.shape[0] for b in checked}) > 1:
        raise DeepGUError("bundles have different band counts: %s" % sorted({b.shape[0] for b in checked}))
    return checked


def _batch_size(n):
    """Mini-batch size for a bundle of ``n`` pixels: a third of it, rounded up."""
    return math.ceil(n / 3)


class StackedVAEs:
    """The VAEs of P materials as one network with stacked weights, trained together (:func:`train_vaes`).

    Layer ``i`` of all materials is ``W_i`` (P, n_in, n_out) and ``b_i`` (P, 1, n_out), views of one flat
    parameter vector (so one Adam update covers every material), and an activation ``h`` (P, B, n_in) goes
    through all materials' layers in one batched product ``h W_i + b_i``. The encoder's mean and log-variance
    layers are one layer of ``2K`` outputs (mean first). Forward and backward passes are written out (no
    autograd): for a mini-batch x (P, B, L) with per-sample weights w (P, B) (``1/b_p`` for the ``b_p`` real
    samples of material p, 0 for padding), the objective ``sum_p sum_i w_pi loss(x_pi)`` has the gradient of
    each material's mean loss in that material's weights, so one Adam step on the stack is each material's own
    step (Adam works element by element). With ``a = h W + b``, ``h' = relu(a)``::

        dW = h^T da,   db = sum_B da,   dh = da W^T,   da = dh' (.) 1[a > 0]

        d loss / d logits = w (sigmoid(logits) - x)                          (bce)
                          = 2 w (s - x) s (1 - s),  s = sigmoid(logits)       (mse)
        z = mu + exp(lv / 2) eps:   d/dmu = dz + w beta mu,   d/dlv = dz eps exp(lv / 2) / 2 + w beta (exp(lv) - 1) / 2
    """

    def __init__(self, sizes, n_materials):
        self.sizes = tuple(int(s) for s in sizes)
        L, h1, h2, h3, K = self.sizes
        self.n_materials = P = int(n_materials)
        self.shapes = [(L, h1), (h1, h2), (h2, h3), (h3, 2 * K), (K, h3), (h3, h2), (h2, h1), (h1, L)]
        n_values = sum(P * (n_in + 1) * n_out for n_in, n_out in self.shapes)
        self.flat = torch.zeros(n_values)
        self.grad = torch.zeros(n_values)
        self.layers, self.grads = self._views(self.flat), self._views(self.grad)

    def _views(self, flat):
        """``[(W_i, b_i)]``: views of ``flat`` in the layers' shapes."""
        views, offset = [], 0
        for n_in, n_out in self.shapes:
            size = self.n_materials * n_in * n_out
            W = flat[offset:offset + size].view(self.n_materials, n_in, n_out)
            offset += size
            b = flat[offset:offset + self.n_materials * n_out].view(self.n_materials, 1, n_out)
            offset += self.n_materials * n_out
            views.append((W, b))
        return views

    def reset_parameters(self, generators):
        """Material p's weights exactly as :meth:`MaterialVAE.reset_parameters` draws them from ``generators[p]``."""
        L, h1, h2, h3, K = self.sizes
        # (n_in, n_out) of each nn.Linear in MaterialVAE's module order: encoder, mean, log_var, decoder, output
        modules = [(L, h1), (h1, h2), (h2, h3), (h3, K), (h3, K), (K, h3), (h3, h2), (h2, h1), (h1, L)]
        for p, generator in enumerate(generators):
            drawn = []
            for n_in, n_out in modules:
                bound = math.sqrt(6.0 / (n_in + n_out))
                drawn.append(torch.empty(n_out, n_in).uniform_(-bound, bound, generator=generator).T)
            drawn[3:5] = [torch.cat(drawn[3:5], dim=1)]
            for (W, b), weight in zip(self.layers, drawn):
                W[p] = weight
                b[p] = 0.0

    def unstack(self, scales):
        """One :class:`MaterialVAE` per material (eval mode, gradients off), with the scene-unit ``scales``."""
        K = self.sizes[-1]
        vaes = []
        for p, scale in enumerate(scales):
            vae = MaterialVAE(self.sizes, scale)
            linears = [m for m in vae.modules() if isinstance(m, nn.Linear)]
            weights = [(W[p].T, b[p, 0]) for W, b in self.layers]
            head_W, head_b = weights[3]
            weights[3:4] = [(head_W[:K], head_b[:K]), (head_W[K:], head_b[K:])]
            with torch.no_grad():
                for linear, (W, b) in zip(linears, weights):
                    linear.weight.copy_(W)
                    linear.bias.copy_(b)
            vaes.append(vae.eval().requires_grad_(False))
        return vaes

    def loss_and_gradient(self, x, eps, weights, kind, beta):
        """Per-sample losses (P, B) of the mini-batch ``x`` (P, B, L) with noise ``eps`` (P, B, K); writes the
        gradient of ``sum(weights * loss)`` (``weights`` (P, B, 1)) into :attr:`grad` (the products write in place,
        so the gradients keep their place in memory)."""
        K = self.sizes[-1]
        h, hidden = x, []
        layers, grads = self.layers, self.grads
        for i, (W, b) in enumerate(layers):                 # forward; hidden[i] = input of layer i
            hidden.append(h)
            a = torch.baddbmm(b, h, W)
            if i == 3:                                      # the mean | log-variance head
                mu, log_var = a[..., :K], a[..., K:]
                std = torch.exp(0.5 * log_var)
                h = torch.addcmul(mu, std, eps)
            elif i < 7:
                h = a.relu_()
            else:
                logits = a
        if kind == "bce":
            reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=2)
            delta = torch.sigmoid(logits).sub_(x).mul_(weights)
        else:
            s = torch.sigmoid(logits)
            error = s - x
            reconstruction = error.square().sum(dim=2)
            delta = error.mul_(weights * 2.0).mul_(s).mul_(1.0 - s)
        variance = std.square()
        kl = -0.5 * torch.sum(1.0 + log_var - mu.square() - variance, dim=2)
        for i in range(7, -1, -1):                           # backward; delta = d objective / d a_i
            W, _ = layers[i]
            dW, db = grads[i]
            torch.bmm(hidden[i].transpose(1, 2), delta, out=dW)
            torch.sum(delta, dim=1, keepdim=True, out=db)
            if i == 0:
                break
            back = torch.bmm(delta, W.transpose(1, 2))
            if i == 4:                                      # through z = mu + std eps, plus the KL term
                kl_weight = weights * beta
                delta = torch.cat([back + kl_weight * mu,
                                   back * eps * (0.5 * std) + kl_weight * 0.5 * (variance - 1.0)], dim=2)
            else:                                           # ReLU: the gradient where the output is positive
                delta = torch.ops.aten.threshold_backward(back, hidden[i], 0.0)
        return reconstruction + beta * kl


class _Adam:
    """Adam (lr :data:`LEARNING_RATE`, betas 0.9 and 0.999, eps 1e-8) on a list of parameter tensors: torch's fused
    CPU kernel (``torch._fused_adam_``, what ``torch.optim.Adam(fused=True)`` runs, one pass over each), called
    directly because creating a ``torch.optim`` optimiser imports torch's compiler (``torch._dynamo``), a second (as
    long as importing torch) that every training paid."""

    def __init__(self, parameters, grads, lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-8):
        self.parameters, self.grads, self.lr, self.betas, self.eps = parameters, grads, lr, betas, eps
        self.mean, self.square = [torch.zeros_like(t) for t in parameters], [torch.zeros_like(t) for t in parameters]
        self.steps = torch.zeros(())

    def step(self):
        """``m <- m + (1 - b1)(g - m)``, ``v <- b2 v + (1 - b2) g^2``,
        ``theta <- theta - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)``."""
        self.steps += 1
        torch._fused_adam_(self.parameters, self.grads, self.mean, self.square, [], [self.steps] * len(self.parameters),
                           lr=self.lr,
                           beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps, amsgrad=False,
                           maximize=False)


def _epoch_draws(generators, sizes, n_steps, latent_dim):
    """One epoch's random draws: each material's shuffle, then one eps per mini-batch, from its own generator in
    the order the per-material loop drew them. Returns ``index`` (n_steps, P, B) pixel of each mini-batch slot,
    ``eps`` (n_steps, P, B, K) and ``weights`` (n_steps, P, B, 1): 1/b for the b real samples of a material's
    mini-batch, 0 for the padding that brings every material to the largest batch B (index 0, eps 0)."""
    batches = [_batch_size(n) for n in sizes]
    P, B = len(sizes), max(batches)
    index = torch.zeros(n_steps, P, B, dtype=torch.long)
    eps = torch.zeros(n_steps, P, B, latent_dim)
    weights = torch.zeros(n_steps, P, B, 1)
    for p, (generator, n, batch) in enumerate(zip(generators, sizes, batches)):
        order = torch.randperm(n, generator=generator)
        for step, start in enumerate(range(0, n, batch)):
            part = order[start:start + batch]
            index[step, p, :part.numel()] = part
            eps[step, p, :part.numel()] = torch.randn((part.numel(), latent_dim), generator=generator)
            weights[step, p, :part.numel()] = 1.0 / part.numel()
    return index, eps, weights


class _Half:
    """One of the two fixed halves of a group of materials: their own :class:`StackedVAEs`, Adam state, generators
    and scaled spectra ``x`` (P, N, L) (the bundles padded to the group's largest, N pixels). A half depends on nothing
    of the other (the materials' networks are independent and Adam works element by element), so it runs whole
    epochs on its own."""

    def __init__(self, x, sizes, generators, latent_dim, n_steps):
        self.sizes, self.generators, self.n_steps, self.latent_dim = sizes, generators, n_steps, latent_dim
        self.n_pixels = x.shape[1]
        self.x = x.reshape(-1, x.shape[2])
        self.offsets = torch.arange(x.shape[0])[:, None] * self.n_pixels
        self.stack = StackedVAEs(encoder_sizes(x.shape[2], latent_dim), x.shape[0])
        self.stack.reset_parameters(generators)
        self.optimizer = _Adam([self.stack.flat], [self.stack.grad])

    def epoch(self, loss, beta, check_canceled=None):
        """One epoch (:func:`_epoch_draws`, then an Adam step per mini-batch, ``check_canceled()`` before each);
        returns the summed per-sample losses (P,) float64 of the epoch."""
        index, eps, weights = _epoch_draws(self.generators, self.sizes, self.n_steps, self.latent_dim)
        real = weights[..., 0] > 0
        rows = (index + self.offsets).view(self.n_steps, -1)
        total = torch.zeros(len(self.sizes), dtype=torch.float64)
        for step in range(self.n_steps):
            if check_canceled is not None:
                check_canceled()
            x = self.x.index_select(0, rows[step]).view(len(self.sizes), -1, self.x.shape[1])
            losses = self.stack.loss_and_gradient(x, eps[step], weights[step], loss, beta)
            self.optimizer.step()
            total += torch.where(real[step], losses, 0.0).sum(dim=1)
        return total


def _train_group(bundles, generators, latent_dim, epochs, loss, beta, progress, check_canceled, n_threads=1):
    """Train the VAEs of bundles (L, n_p) that take the same number of mini-batches per epoch; returns
    ``(vaes, curves)`` with curves (P, epochs), the mean per-sample loss of each epoch.

    Material p gets the model it gets trained alone from ``generators[p]``, up to round-off. ``check_canceled()``
    runs before every mini-batch and ``progress(epoch)`` after every epoch. A non-finite loss stops training at the
    end of its epoch with a :class:`DeepGUError` naming the (first) material (its index in the group).

    The group is trained as two halves (:class:`_Half`; materials ``[0, ceil(P/2))`` and the rest), always, so
    that the arithmetic does not depend on the threads: an element-wise torch operation rounds the last few
    elements of a tensor (its tail after the vectorised loop) differently, so a material's round-off depends on
    which stack it is computed in. ``n_threads`` 2: each epoch of the second half runs on a worker thread while the
    calling thread runs the first half's (each on one torch thread; torch releases the GIL in its operations), so
    the threads meet once per epoch. The models do not depend on ``n_threads`` (bitwise, ``tests/test_vae_batched.py``).
    """
    n_bands = bundles[0].shape[0]
    sizes = [b.shape[1] for b in bundles]
    n_steps = math.ceil(sizes[0] / _batch_size(sizes[0]))
    scales = [SCALE_MARGIN * float(b.max()) for b in bundles]
    x = torch.zeros(len(bundles), max(sizes), n_bands)
    for p, (bundle, scale) in enumerate(zip(bundles, scales)):
        x[p, :sizes[p]] = torch.as_tensor(np.maximum(bundle.T / scale, 0.0), dtype=torch.float32)
    half = math.ceil(len(bundles) / 2)
    halves = [_Half(x[start:start + half], sizes[start:start + half], generators[start:start + half], latent_dim,
                    n_steps) for start in range(0, len(bundles), half)]
    count = torch.tensor(sizes, dtype=torch.float64)
    curves = np.empty((len(bundles), epochs))
    with contextlib.ExitStack() as context:
        worker = None
        if len(halves) > 1 and n_threads > 1:
            worker = context.enter_context(ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)))
        for epoch in range(epochs):
            other = None if worker is None else worker.submit(halves[-1].epoch, loss, beta)
            totals = [halves[0].epoch(loss, beta, check_canceled)]
            totals += [h.epoch(loss, beta) for h in halves[1:len(halves) - (other is not None)]]
            if other is not None:
                totals.append(other.result())
            curves[:, epoch] = (torch.cat(totals) / count).numpy()
            diverged = np.flatnonzero(~np.isfinite(curves[:, epoch]))
            if diverged.size:
                raise _Diverged(int(diverged[0]), epoch)
            progress(epoch)
    return [vae for start, h in zip(range(0, len(bundles), half), halves)
            for vae in h.stack.unstack(scales[start:start + half])], curves


class _Diverged(Exception):
    """Material ``index`` (of its group) got a non-finite loss in ``epoch`` (from 0)."""

    def __init__(self, index, epoch):
        super().__init__(index, epoch)
        self.index, self.epoch = index, epoch


def train_vaes(bundles, latent_dim=TRAINVAE["LATENT_DIM"], epochs=TRAINVAE["EPOCHS"], seed=0, loss=TRAINVAE["LOSS"],
               beta=TRAINVAE["BETA"], feedback=None, n_threads=None):
    """Train one VAE per bundle (``bundles``: list of (L, n_p) arrays in scene units).

    Returns ``(vaes, loss_curves)``: the trained :class:`MaterialVAE` modules
    (eval mode, gradients off) and a list of (epochs,) arrays of the mean
    per-sample training loss of each epoch.

    Material p's random draws come from its own generator (``_generators(seed, P)[p]``), so its model is the
    one it gets trained alone from that generator (up to round-off); the materials are trained together as
    :class:`StackedVAEs`, in groups of equal mini-batch counts per epoch (3, or 2 for a 4-pixel bundle).
    Progress is reported after every epoch, cancellation checked before every mini-batch; a non-finite loss
    stops training at the end of its epoch, naming the material. ``n_threads``: 1, or 2 to train two halves of
    the materials side by side (the default when torch has at least 2 threads); the models are the same either way.
    """
    bundles = _check_bundles(bundles)
    n_threads = min(2, torch.get_num_threads()) if n_threads is None else int(n_threads)
    if int(latent_dim) < 1 or int(epochs) < 1:
        raise DeepGUError("latent size and epochs must be at least 1, got %s and %s" % (latent_dim, epochs))
    if loss not in LOSSES:
        raise DeepGUError("unknown VAE loss %r (choose one of %s)" % (loss, ", ".join(LOSSES)))
    feedback = ensure(feedback)
    epochs = int(epochs)
    generators = _generators(seed, len(bundles))
    groups = {}
    for p, bundle in enumerate(bundles):
        groups.setdefault(math.ceil(bundle.shape[1] / _batch_size(bundle.shape[1])), []).append(p)
    vaes, curves, done = [None] * len(bundles), [None] * len(bundles), 0
    for members in groups.values():
        share = len(members)

        def progress(epoch, done=done, share=share):
            feedback.set_progress(100.0 * (done + share * (epoch + 1)) / (len(bundles) * epochs))

        with _one_thread():
            try:
                trained, group_curves = _train_group([bundles[p] for p in members], [generators[p] for p in members],
                                                     int(latent_dim), epochs, loss, float(beta), progress,
                                                     feedback.check_canceled, n_threads)
            except _Diverged as error:
                raise DeepGUError("material %d: training diverged at epoch %d: the loss is not finite (lower BETA, or "
                                  "check the bundle's values)" % (members[error.index] + 1, error.epoch + 1)) from None
        for p, vae, curve in zip(members, trained, group_curves):
            vaes[p], curves[p] = vae, curve
        done += len(members) * epochs
    for p, (bundle, curve) in enumerate(zip(bundles, curves)):
        feedback.info("material %d: VAE trained on %d pixels, final loss %.4g" % (p + 1, bundle.shape[1], curve[-1]))
    return vaes, curves


class EndmemberModel:
    """The trained generative endmember model ``G(Z) = [G_1(z_1) ... G_P(z_P)]`` used by the solver.

    Attributes: ``names`` (P,) strings; ``wavelengths`` (L,) NumPy or None;
    ``m0`` (L, P) NumPy reference endmembers; ``z0`` (P, K) torch tensor, their
    encoder means, on the decoders' device and in their dtype (it moves with
    :meth:`to`); ``vaes`` the P :class:`MaterialVAE`; ``loss_curves`` P NumPy
    arrays (epochs,); ``bundle_sizes`` (P,) ints; ``code_spread`` (P, K, K) torch tensor
    like ``z0``: per material, the lower Cholesky factor ``C_p`` of the covariance of the
    encoder means of its bundle, i.e. the region of latent space the VAE was trained on
    (:func:`code_spread`; the identity for models saved without it).
    """

    def __init__(self, vaes, m0, z0, names, wavelengths=None, loss_curves=None, bundle_sizes=None,
                 code_spread=None):
        self.vaes = list(vaes)
        self.m0 = np.asarray(m0, dtype=np.float64)
        weight = self._parameter()
        self.z0 = torch.as_tensor(z0, dtype=weight.dtype, device=weight.device)
        self.names = [str(n) for n in names]
        self.wavelengths = None if wavelengths is None else np.asarray(wavelengths, dtype=np.float64)
        curves = [[]] * len(self.vaes) if loss_curves is None else loss_curves
        self.loss_curves = [np.asarray(c, dtype=np.float64) for c in curves]
        sizes = np.zeros(len(self.vaes)) if bundle_sizes is None else bundle_sizes
        self.bundle_sizes = np.asarray(sizes, dtype=np.int64)
        if code_spread is None:
            code_spread = torch.eye(self.latent_dim).expand(len(self.vaes), -1, -1)
        self.code_spread = torch.as_tensor(code_spread, dtype=weight.dtype, device=weight.device).clone()
        self._stacked = None

    @property
    def n_bands(self):
        return self.vaes[0].sizes[0]

    @property
    def n_materials(self):
        return len(self.vaes)

    @property
    def latent_dim(self):
        return self.vaes[0].sizes[-1]

    @property
    def scales(self):
        """(P,) scene-unit factor of each material's decoder."""
        return np.array([vae.scale for vae in self.vaes])

    def _parameter(self):
        return next(self.vaes[0].parameters())

    def to(self, device=None, dtype=None):
        """Move the decoders/encoders to ``device`` and/or ``dtype`` (e.g. torch.float64); returns self."""
        for vae in self.vaes:
            vae.to(device=device, dtype=dtype)
        self.z0 = self.z0.to(device=device, dtype=dtype)
        self.code_spread = self.code_spread.to(device=device, dtype=dtype)
        self._stacked = None
        return self

    def _decoder_layers(self):
        """The P decoders stacked, per layer: ``(W, b, relu)`` with W (P, n_in, n_out) and b (P, 1, n_out).

        Built once per device and dtype (the decoders are fixed once trained), so that one batched
        matrix product per layer runs all materials' decoders together.
        """
        if self._stacked is None:
            with torch.no_grad():
                per_vae = [[m for m in list(vae.decoder) + [vae.output] if isinstance(m, nn.Linear)]
                           for vae in self.vaes]
                n_layers = len(per_vae[0])
                self._stacked = [(torch.stack([layers[i].weight.T for layers in per_vae]).contiguous(),
                                  torch.stack([layers[i].bias for layers in per_vae])[:, None, :],
                                  i < n_layers - 1) for i in range(n_layers)]
        return self._stacked

    def _codes(self, z):
        if z.ndim != 3 or tuple(z.shape[1:]) != (self.n_materials, self.latent_dim):
            raise DeepGUError("latent codes must have shape (N, %d, %d), got %s"
                              % (self.n_materials, self.latent_dim, tuple(z.shape)))
        weight = self._parameter()
        return z.to(device=weight.device, dtype=weight.dtype)

    def _output_scale(self, factor, like):
        """(P, 1, L): each decoder's scene-unit factor s_p, times ``factor`` (L, P) band-wise when given."""
        scale = torch.as_tensor(self.scales, dtype=like.dtype, device=like.device)[:, None, None]
        return scale if factor is None else scale * factor.to(like.dtype).T[:, None, :]

    def decode(self, z):
        """Latent codes ``z`` (N, P, K) torch tensor -> endmembers (N, L, P) in scene units.

        ``z`` is moved to the model's device and dtype (autograd flows through to z).
        """
        X = self._codes(z).transpose(0, 1)                                  # (P, N, K)
        for W, b, relu in self._decoder_layers():
            X = torch.baddbmm(b, X, W)
            if relu:
                X = torch.relu(X)
        return (torch.sigmoid(X) * self._output_scale(None, X)).permute(1, 2, 0)

    def decode_with_jacobian(self, z, directions=None, factor=None):
        """Endmembers ``G(z)`` (N, L, P) of codes ``z`` (N, P, K) and D (N, L, P, J), ``D[..., p, j] = dG_p/dz_p v_pj``.

        ``directions`` V (P, J, K): the latent directions to differentiate along (default the
        identity, J = K: ``D[:, :, p, k] = dG_p/dz_pk``); ``factor`` (L, P): multiplies G and D band-wise
        (the solver's anchoring, :mod:`.latent`), folded into the output layer's scale.
        Forward-mode differentiation written out (exact, no autograd), all materials at once:
        the activation h (P, N, n) and its J tangents T (P, N, J, n), dh along v_j, go through one
        batched matrix product per layer each,

            linear layer   h <- h W + b,   T <- T W      (T_0 = V_p for every pixel: T_1 = V_p W_1 is
                                                          computed once and copied to every pixel),
            ReLU           h <- max(h, 0), T <- T (.) 1[h > 0]   (its derivative is the same mask),
            output         G = s sigmoid(h),  dG v_j = s sigmoid(h) (1 - sigmoid(h)) (.) T_j.

        In the model's dtype. The work is a few passes over (P, N, J + 1, width) arrays per layer: call it
        on chunks of about a thousand pixels (:mod:`core.solvers.zstep` does) so that they stay in the CPU's cache.
        """
        z = self._codes(z)
        n, p, k = z.shape
        V = (torch.eye(k, dtype=z.dtype, device=z.device).expand(p, k, k) if directions is None
             else directions.to(z.dtype))
        j = V.shape[1]
        h, T = z.transpose(0, 1), None                                       # (P, N, K); T after the first layer
        for W, b, relu in self._decoder_layers():
            if T is None:
                T = torch.bmm(V, W)[:, None].expand(p, n, j, W.shape[2]).clone()
            else:
                T = torch.bmm(T.view(p, n * j, -1), W).view(p, n, j, -1)
            h = torch.baddbmm(b, h, W)
            if relu:
                T.mul_((h > 0)[:, :, None, :])
                h = h.relu_()
        s = torch.sigmoid(h)                                                 # (P, N, L)
        G = s * self._output_scale(factor, s)
        D = T.mul_((G * (1.0 - s))[:, :, None, :])                          # (P, N, J, L)
        return G.permute(1, 2, 0), D.permute(1, 3, 0, 2)

    def encode_mean(self, spectra):
        """Encoder means (P, K), torch like ``z0``, of one spectrum per material: ``spectra`` (L, P) in scene units."""
        spectra = np.asarray(spectra, dtype=np.float64)
        if spectra.shape != (self.n_bands, self.n_materials):
            raise DeepGUError("spectra must have shape (%d, %d), got %s"
                              % (self.n_bands, self.n_materials, spectra.shape))
        weight = self._parameter()
        x = torch.as_tensor(spectra.T / self.scales[:, None], device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            means = [vae.encode(x[p:p + 1])[0][0] for p, vae in enumerate(self.vaes)]
        return torch.stack(means)


def train_endmember_model(bundles, m0, names, wavelengths=None, latent_dim=TRAINVAE["LATENT_DIM"],
                          epochs=TRAINVAE["EPOCHS"], seed=0, loss=TRAINVAE["LOSS"], beta=TRAINVAE["BETA"],
                          feedback=None):
    """Train the VAEs on ``bundles`` (P arrays (L, n_p)) and set ``z0`` = encoder means of ``m0`` (L, P)."""
    m0 = np.asarray(m0, dtype=np.float64)
    if m0.ndim != 2 or not np.all(np.isfinite(m0)):
        raise DeepGUError("reference endmembers must be a finite (bands, materials) array, got shape %s"
                          % (m0.shape,))
    n_bands, n_materials = m0.shape
    if len(bundles) != n_materials or len(names) != n_materials:
        raise DeepGUError("got %d bundles and %d names for %d reference endmembers"
                          % (len(bundles), len(names), n_materials))
    if wavelengths is not None and np.shape(wavelengths) != (n_bands,):
        raise DeepGUError("got %d wavelengths for %d bands" % (np.size(wavelengths), n_bands))
    bundles = _check_bundles(bundles, n_bands)
    vaes, curves = train_vaes(bundles, latent_dim, epochs, seed, loss, beta, feedback)
    model = EndmemberModel(vaes, m0, torch.zeros(n_materials, int(latent_dim)), names, wavelengths, curves,
                           [b.shape[1] for b in bundles], code_spread(vaes, bundles))
    model.z0 = model.encode_mean(m0)
    return model


def code_spread(vaes, bundles, floor=CODE_SPREAD_FLOOR):
    """(P, K, K) lower Cholesky factors of the covariance of each bundle's encoder means.

    ``bundles`` P arrays (L, n_p) in scene units. ``C_p C_p^T = cov(mu_p(x)) + floor^2 tr/K I`` over the
    bundle's pixels, with ``floor`` relative to the mean variance so a degenerate bundle
    (identical pixels, n_p <= K) still gives a regular factor.
    """
    factors = []
    for vae, bundle in zip(vaes, bundles):
        param = next(vae.parameters())
        x = torch.as_tensor(np.asarray(bundle, dtype=np.float64).T / vae.scale, dtype=param.dtype)
        with torch.no_grad():
            codes = vae.encode(x.clamp(min=0.0))[0].double().numpy()
        k = codes.shape[1]
        cov = np.cov(codes.T).reshape(k, k) if codes.shape[0] > 1 else np.zeros((k, k))
        level = max(float(np.trace(cov)) / k, 1e-12)
        factors.append(np.linalg.cholesky(cov + floor ** 2 * level * np.eye(k)))
    return torch.as_tensor(np.stack(factors))
