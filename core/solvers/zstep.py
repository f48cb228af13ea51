"""DeepGU Z-step: per-pixel latent codes by batched Levenberg-Marquardt (torch).

With the abundances fixed, Algorithm 1 step 9 (paper eq. 12) splits into one
problem per pixel over its K*P latent variables z = vec(Z_n) (index p*K + k):

    f_n(z) = 1/2 ||y_n - G(Z_n) a_n||^2 + lambda_Z/2 ||Z_n - Z0||_F^2,
    G(Z_n) = [G_1(z_1n) ... G_P(z_Pn)]  (L, P).

This regularised nonlinear least-squares problem is solved for all pixels at
once by Levenberg-Marquardt (Nielsen's damping rule) instead of the authors'
L-BFGS with finite differences. With D (L, PK) the exact derivatives
``D[:, pK+k] = dG_p/dz_pk``, w = (a_1 1_K, ..., a_P 1_K), so that the Jacobian
of G(Z_n) a_n is ``J = D diag(w)``, and r = y_n - G(Z_n) a_n:

    H = J^T J + lambda_Z I,  g = -J^T r + lambda_Z (z - z0),
    (H + mu I) delta = -g,   predicted decrease  q = 1/2 delta^T (mu delta - g),
    gain = (f(z) - f(z + delta)) / q;  the step is taken iff f decreases, so f
    never increases; mu <- mu max(1/3, 1 - (2 gain - 1)^3), nu <- 2 after a
    success, mu <- mu nu, nu <- 2 nu after a failure.

Everything above depends on z only through the per-pixel statistics of
E = [G(Z_n), D] (L, P + PK): ``S = E^T E`` and ``e = E^T y_n`` (:class:`PixelStats`),
e.g. ``H = (w w^T) * S_DD + lambda_Z I``, ``J^T r = w * (e_D - S_DG a)``,
``||r||^2 = y^T y - 2 a^T e_G + a^T S_GG a``. So the statistics at the current
codes are kept between calls (the A-step changes a, not Z) and the A-step reads
its Gram matrices ``M_n^T M_n = S_GG``, ``M_n^T y_n = e_G`` from them.

A model with its own ``decode_with_jacobian`` gives G and D in one pass: the VAE
decoders do forward-mode differentiation written out, the tangents riding along with
the activations in one matrix product per layer (:meth:`.vae.EndmemberModel.decode_with_jacobian`);
that is several times cheaper than torch's JVPs and does not load torch's compiler
at start-up (seconds on a small scene). For any other model, because column p of G
depends only on z_p, the K tangents e_k applied to every material at once give all
of D: K forward-mode JVPs of ``model.decode`` (batched with ``torch.func.vmap``).
Both are exact to round-off.

A trial point's objective is read from its statistics, which are computed with the Jacobian in the same
pass: on the bench scenes most trials are accepted, and a separate forward pass to check each would cost
more than the Jacobians of the rejected ones. A pixel stops when its
Levenberg-Marquardt step is small, ``||delta|| <= tol * max(||z||, 1)`` (the
paper's relative change of z, with a floor for codes near the origin; that last
step is not taken, so it costs no decoder call), or after ``max_iter``
iterations; stopped pixels are dropped from further work. Pixels are processed in chunks so memory stays bounded. The
decoder runs in the model's own dtype (that of ``model.z0``); the statistics
and the Levenberg-Marquardt algebra in the dtype of ``Y``.
"""

from dataclasses import dataclass

import torch
from torch.func import jvp, vmap

from ..feedback import ensure

_MU_INIT = 1e-3
_RESOLUTION = 4.0          # the decoder's round-off in f, in units of its dtype's eps (see _lm_chunk)
CHUNK = 8192
#: pixels decoded together on a CPU: a decoder layer's arrays for about a thousand pixels (and their tangents)
#: stay in the CPU's cache, where one pass over a whole chunk would stream them through main memory, layer
#: after layer. A GPU decodes a whole chunk at once (small pieces would only add kernel launches).
CACHE_CHUNK = 1024


def _pieces(n, device):
    """Slices of ``range(n)`` decoded together on ``device`` (see :data:`CACHE_CHUNK`)."""
    step = CACHE_CHUNK if device.type == "cpu" else max(n, 1)
    return [slice(s, s + step) for s in range(0, n, step)]


def decode_with_jacobian(model, Z):
    """G(Z) (N, L, P) and D (N, L, P, K) with D[:, :, p, k] = d G_p / d z_pk, in Z's dtype.

    The model's own exact ``decode_with_jacobian`` when it has one (the VAE decoders, :mod:`.latent`);
    otherwise K forward-mode JVPs of ``model.decode`` (module docstring).
    """
    G, D = _model_decode_with_jacobian(model, Z)
    return G.to(Z.dtype), D.to(Z.dtype)


def _model_decode_with_jacobian(model, Z):
    """:func:`decode_with_jacobian` in the model's own dtype (no conversion of the results)."""
    dtype = model.z0.dtype
    z = Z.to(dtype).contiguous()
    with torch.no_grad():
        if hasattr(model, "decode_with_jacobian"):
            return model.decode_with_jacobian(z)
        n, p, k = z.shape
        basis = torch.eye(k, dtype=dtype, device=z.device)[:, None, None, :].expand(k, n, p, k)
        primal, tangents = vmap(lambda v: jvp(model.decode, (z,), (v,)), out_dims=(None, 0))(basis)
        return primal, tangents.permute(1, 2, 3, 0)


def _columns_t(model, Z, dtype, Y=None):
    """E^T = [G(Z_n), D_n]^T (N, P + PK, L) in ``dtype``: G and D are converted straight into it, a band
    row at a time (the layout the VAE decoders produce, and the one the statistics' products want). With pixels
    ``Y`` (N, L): [E, y_n]^T (N, P + PK + 1, L), y_n the last row."""
    G, D = _model_decode_with_jacobian(model, Z)
    n, length, p, k = D.shape
    Et = torch.empty((n, p + p * k + (Y is not None), length), dtype=dtype, device=G.device)
    Et[:, :p] = G.transpose(1, 2)
    Et[:, p:p + p * k].view(n, p, k, length).copy_(D.permute(0, 2, 3, 1))
    if Y is not None:
        Et[:, -1] = Y
    return Et


def decode(model, Z):
    """G(Z) (N, L, P) in Z's dtype, decoded in cache-sized pieces (:data:`CACHE_CHUNK`)."""
    dtype = model.z0.dtype
    with torch.no_grad():
        return torch.cat([model.decode(Z[piece].to(dtype)).to(Z.dtype) for piece in _pieces(len(Z), Z.device)])


@dataclass
class PixelStats:
    """Per-pixel statistics of E = [G(Z_n), D_n] (module docstring) at the current codes.

    S (N, P + PK, P + PK) = E^T E and e (N, P + PK) = E^T y_n; n_materials = P.
    """

    S: torch.Tensor
    e: torch.Tensor
    n_materials: int

    @classmethod
    def evaluate(cls, model, Z, Y):
        """Statistics at Z (N, P, K) for the pixels Y (N, L), in cache-sized pieces (:data:`CACHE_CHUNK`)."""
        n, p, k = Z.shape
        q = p + p * k
        S, e = Y.new_empty((n, q, q)), Y.new_empty((n, q))
        for piece in _pieces(n, Y.device):
            Et = _columns_t(model, Z[piece], Y.dtype, Y[piece])      # [E, y]^T: one product gives E^T E and E^T y
            product = torch.bmm(Et, Et.transpose(1, 2))
            S[piece], e[piece] = product[:, :q, :q], product[:, q, :q]
        return cls(S, e, p)

    @classmethod
    def shared(cls, model, z, Y):
        """Statistics of pixels Y (N, L) that all have the codes z (P, K): one decoder evaluation."""
        Et = _columns_t(model, z[None], Y.dtype)[0]
        S = (Et @ Et.T).expand(Y.shape[0], -1, -1).clone()
        return cls(S, Y @ Et.T, z.shape[0])

    @property
    def gram(self):
        """M_n^T M_n (N, P, P) with M_n = G(Z_n)."""
        p = self.n_materials
        return self.S[:, :p, :p]

    @property
    def mty(self):
        """M_n^T y_n (N, P)."""
        return self.e[:, :self.n_materials]

    def __getitem__(self, idx):
        return PixelStats(self.S[idx], self.e[idx], self.n_materials)

    def __setitem__(self, idx, other):
        self.S[idx] = other.S
        self.e[idx] = other.e

    def residual_squares(self, yy, a):
        """||y_n - G(Z_n) a_n||^2 (N,) for abundances a (N, P) and yy = y^T y (N,)."""
        return yy - 2.0 * (a * self.mty).sum(1) + torch.einsum("ni,nij,nj->n", a, self.gram, a)

    def objective(self, yy, a, dz, lambda_z):
        """f_n (N,) for abundances a (N, P), yy = y^T y (N,) and dz = z - z0 (N, PK)."""
        return 0.5 * (self.residual_squares(yy, a) + lambda_z * (dz * dz).sum(1))

    def system(self, a, dz, lambda_z):
        """Gauss-Newton matrix H (N, PK, PK) and gradient g (N, PK) of f_n."""
        p = self.n_materials
        w = a.repeat_interleave(dz.shape[1] // p, dim=1)
        H = w[:, :, None] * self.S[:, p:, p:] * w[:, None, :]
        H.diagonal(dim1=1, dim2=2).add_(lambda_z)
        jtr = w * (self.e[:, p:] - torch.einsum("nip,np->ni", self.S[:, p:, :p], a))
        return H, lambda_z * dz - jtr


@dataclass
class ZStepResult:
    """Latent codes Z (N, P, K), the statistics there, and per-pixel stats of the run."""

    Z: torch.Tensor
    stats: PixelStats
    iterations: torch.Tensor   # (N,) Levenberg-Marquardt iterations per pixel (with the final check)
    converged: torch.Tensor    # (N,) bool, stopped by the step-size test
    objective_start: float     # sum_n f_n at the warm start
    objective: float           # sum_n f_n at the result
    evaluations: int = 0       # pixel decoder evaluations (G, D and the statistics), summed over the pixels
    solves: int = 0            # per-pixel Levenberg-Marquardt systems solved, summed over the pixels

    @property
    def n_converged(self):
        return int(self.converged.sum())


def _lm_chunk(model, y, a, z, stats, z0, lambda_z, tol, max_iter, feedback):
    """Levenberg-Marquardt on one chunk, in place on z (n, PK) and its stats; returns (iterations, converged,
    decoder evaluations, systems solved), the last two summed over the pixels."""
    n, pk = z.shape
    yy = (y * y).sum(1)
    f = stats.objective(yy, a, z - z0, lambda_z)
    H, g = stats.system(a, z - z0, lambda_z)
    mu = (_MU_INIT * torch.diagonal(H, dim1=1, dim2=2).amax(dim=1)).clamp(min=torch.finfo(z.dtype).eps)
    nu = torch.full_like(mu, 2.0)
    eye = torch.eye(pk, dtype=z.dtype, device=z.device)
    # the decoder's round-off in f: |delta f| ~ |r| |delta G a| <= sqrt(2 f) eps ||y||; a smaller predicted
    # decrease cannot be told from it, so the pixel has converged to the decoder's precision
    resolution = _RESOLUTION * torch.finfo(model.z0.dtype).eps * (2.0 * f).sqrt() * yy.sqrt()
    iterations = torch.zeros(n, dtype=torch.long, device=z.device)
    converged = torch.zeros(n, dtype=torch.bool, device=z.device)
    active = torch.arange(n, device=z.device)
    evaluations = solves = 0
    for _ in range(max_iter):
        if not len(active):
            break
        feedback.check_canceled()
        iterations[active] += 1
        solves += len(active)
        delta = torch.linalg.solve(H[active] + mu[active, None, None] * eye, -g[active])
        predicted = 0.5 * (delta * (mu[active, None] * delta - g[active])).sum(1)
        small = ((delta.norm(dim=1) <= tol * z[active].norm(dim=1).clamp(min=1.0))
                 | (predicted <= resolution[active]))
        converged[active[small]] = True
        active, delta, predicted = active[~small], delta[~small], predicted[~small]
        if not len(active):
            break
        z_new = z[active] + delta
        evaluations += len(active)
        trial = PixelStats.evaluate(model, z_new.reshape(len(active), a.shape[1], -1), y[active])
        f_new = trial.objective(yy[active], a[active], z_new - z0, lambda_z)
        gain = (f[active] - f_new) / predicted.clamp(min=torch.finfo(f.dtype).tiny)
        ok = f_new < f[active]
        mu[active] = torch.where(ok, mu[active] * torch.clamp(1 - (2 * gain - 1) ** 3, min=1.0 / 3),
                                 mu[active] * nu[active])
        nu[active] = torch.where(ok, torch.full_like(f_new, 2.0), 2 * nu[active])
        acc = active[ok]
        if len(acc):
            z[acc], f[acc] = z_new[ok], f_new[ok]
            accepted = trial[ok]
            stats[acc] = accepted
            H[acc], g[acc] = accepted.system(a[acc], z[acc] - z0, lambda_z)
    return iterations, converged, evaluations, solves


def zstep(model, Y, A, Z, lambda_z, stats=None, tol=1e-3, max_iter=20, chunk_size=CHUNK, feedback=None):
    """Minimise f_n (module docstring) for every pixel, warm-started at Z.

    Parameters
    ----------
    model : generative model with ``decode`` (N, P, K) -> (N, L, P) and ``z0`` (P, K),
        on the device of the tensors.
    Y : (N, L) pixels; A : (N, P) abundances; Z : (N, P, K) warm start.
    lambda_z : weight of the pull towards ``model.z0``.
    stats : PixelStats at Z (from the previous call) to skip re-evaluating the decoder there.
    tol : per-pixel step-size tolerance; max_iter : LM iterations per pixel at most.
    chunk_size : pixels processed together; feedback : checked for cancellation per iteration.

    Returns
    -------
    ZStepResult with Z (N, P, K), the PixelStats there and per-pixel statistics.
    """
    feedback = ensure(feedback)
    n, p, k = Z.shape
    dtype = Y.dtype
    z0 = model.z0.to(device=Y.device, dtype=dtype).reshape(1, p * k)
    Z = Z.to(dtype).reshape(n, p * k).clone()
    A = A.to(dtype)
    q = p + p * k
    out = (PixelStats(Y.new_empty((n, q, q)), Y.new_empty((n, q)), p) if stats is None
           else PixelStats(stats.S.clone(), stats.e.clone(), p))
    iterations = torch.zeros(n, dtype=torch.long, device=Y.device)
    converged = torch.zeros(n, dtype=torch.bool, device=Y.device)
    f_start = f_end = 0.0
    evaluations, solves = (0 if stats is not None else n), 0
    with torch.no_grad():
        for start in range(0, n, chunk_size):
            sl = slice(start, min(start + chunk_size, n))
            y, a, z = Y[sl], A[sl], Z[sl]
            chunk = out[sl] if stats is not None else PixelStats.evaluate(model, z.reshape(-1, p, k), y)
            yy = (y * y).sum(1)
            f_start += float(chunk.objective(yy, a, z - z0, lambda_z).sum())
            iterations[sl], converged[sl], chunk_evaluations, chunk_solves = _lm_chunk(
                model, y, a, z, chunk, z0, lambda_z, tol, max_iter, feedback)
            evaluations, solves = evaluations + chunk_evaluations, solves + chunk_solves
            out[sl] = chunk
            f_end += float(chunk.objective(yy, a, z - z0, lambda_z).sum())
    return ZStepResult(Z.reshape(n, p, k), out, iterations, converged, f_start, f_end, evaluations, solves)
