"""Latent codes in units of what each VAE saw: whitening, trust region and confusion checks.

A material's VAE is trained on its bundle only, so its decoder is trustworthy near the
codes of that bundle and arbitrary elsewhere: far from them it can produce another
material's spectrum, and the solver can then swap materials. The model records, per
material p, the spread of the bundle's codes as a Cholesky factor ``C_p`` (K, K)
(:func:`core.models.vae.code_spread`). The solver works in whitened codes ``u`` with

    z_p = z0_p + C_p u_p,      G~_p(u_p) = G_p(z0_p + C_p u_p),

so the prior ``lambda_Z/2 ||u||^2`` is the Mahalanobis distance to the reference code in
the metric of the bundle's spread: the same number means the same thing for every
material, latent size and training run (raw codes of a VAE have an arbitrary scale).
``||u_p|| <= TRUST_RADIUS`` is the trust region: about where the bundle's codes lie
(for a Gaussian spread, 99 % of a K = 2 bundle lies within 3).

The decoders are also anchored to the references: a VAE need not reproduce ``m0_p`` at
its code ``z0_p`` (the reference is a mean of many pixels and the decoder a smooth fit of
its bundle; on Samson they were 2 degrees apart), and then DeepGU starts from, and is pulled
towards, a spectrum that is not the reference. The solver's decoder is

    G~_p(u_p) = G_p(z0_p + C_p u_p) (.) m0_p / G_p(z0_p)        (band-wise, (.) the product),

so ``G~_p(0) = m0_p`` exactly: at u = 0 DeepGU *is* FCLS with the references, and the VAE
supplies only the relative, band-wise change of the spectrum as the code moves.

With the brightness held (``hold_brightness``, ``deepgu:unmix``'s BRIGHTNESS = abundances), the change
a code makes loses its component along the reference, ``e_p = m0_p / ||m0_p||``:

    G'_p(u_p) = G~_p(u_p) - e_p (e_p^T G~_p(u_p) - ||m0_p||),     dG'_p/du_p = (I - e_p e_p^T) dG~_p/du_p,

so ``e_p^T G'_p = ||m0_p||`` for every code and a pure scaling ``s m0_p`` is no change at all: the codes change
the spectrum's shape, and a pixel's brightness is left to the abundances, as in FCLS. Under sum-to-one the two
explain brightness equally well, and the data alone do not say which is right: the paper's model (the default)
puts it in the spectra. On Samson, whose reference abundances are FCLS with fixed spectra, holding it brings
DeepGU from 1.08x to 0.95x its FCLS and removes its dependence on the training seed; on the synthetic DC1 scenes,
whose spectra do vary in brightness, it costs (0.50x to 0.62x on DC1-usgs): ``bench/bench_shape_only.py``.
"""

import numpy as np
import torch

from .zstep import decode_with_jacobian

TRUST_RADIUS = 3.0


class WhitenedModel:
    """The solver's view of ``model``: whitened codes ``u`` (N, P, K), ``z0`` = 0, anchored decoders (see above).

    Spectra are in units of ``unit`` (the solver divides the scene by its RMS value, so that its
    tolerances mean the same whatever the data's units). ``hold_brightness``: each decoded spectrum keeps its
    reference's component along the reference (see above).
    """

    def __init__(self, model, unit=1.0, hold_brightness=False):
        self.model = model
        self.unit = float(unit)
        self.z0 = torch.zeros_like(model.z0)
        spread = getattr(model, "code_spread", None)
        self.spread = torch.eye(model.latent_dim).expand(model.n_materials, -1, -1) if spread is None else spread
        with torch.no_grad():
            at_z0 = model.decode(model.z0[None])[0]                                   # (L, P)
        m0 = torch.as_tensor(model.m0, dtype=at_z0.dtype, device=at_z0.device)
        self.anchor = m0 / (at_z0.clamp(min=torch.finfo(at_z0.dtype).tiny) * self.unit)
        self.hold_brightness = bool(hold_brightness)
        norms = m0.norm(dim=0)
        self.direction, self.brightness = m0 / norms.clamp(min=torch.finfo(m0.dtype).tiny), norms / self.unit

    @property
    def m0(self):
        """The references (L, P) in the solver's units (scene units / ``unit``)."""
        return self.model.m0 / self.unit

    n_materials = property(lambda self: self.model.n_materials)
    latent_dim = property(lambda self: self.model.latent_dim)
    n_bands = property(lambda self: self.model.n_bands)

    def to(self, device=None, dtype=None):
        self.model.to(device=device, dtype=dtype)
        self.z0 = self.z0.to(device=device, dtype=dtype)
        self.spread = self.spread.to(device=device, dtype=dtype)
        self.anchor = self.anchor.to(device=device, dtype=dtype)
        self.direction = self.direction.to(device=device, dtype=dtype)
        self.brightness = self.brightness.to(device=device, dtype=dtype)
        return self

    def codes(self, u):
        """Raw latent codes z (N, P, K) of whitened codes u (N, P, K), in u's dtype."""
        spread = self.spread.to(device=u.device, dtype=u.dtype)
        return self.model.z0.to(device=u.device, dtype=u.dtype) + torch.einsum("pij,npj->npi", spread, u)

    def decode(self, u):
        """Anchored endmembers (N, L, P) of whitened codes u (N, P, K); autograd flows through."""
        dtype = self.model.z0.dtype
        return self._held(self.model.decode(self.codes(u.to(dtype))) * self.anchor.to(dtype))

    def _held(self, G):
        """``G`` (N, L, P) with the brightness held (module docstring), or ``G`` itself."""
        if not self.hold_brightness:
            return G
        e, norms = self.direction.to(G.dtype), self.brightness.to(G.dtype)
        return G - e * (torch.einsum("nlp,lp->np", G, e) - norms)[:, None, :]

    def _held_directions(self, D):
        """Derivatives ``D`` (N, L, P, K) with the brightness held: ``(I - e_p e_p^T) D_p``."""
        if not self.hold_brightness:
            return D
        e = self.direction.to(D.dtype)
        return D - e[None, :, :, None] * torch.einsum("nlpk,lp->npk", D, e)[:, None]

    def decode_with_jacobian(self, u):
        """:meth:`decode` (N, L, P) and its derivatives D (N, L, P, K), ``D[:, :, p, k] = dG~_p/du_pk``.

        Chain rule through z = z0 + C u and the anchor: ``dG~_p/du_p = anchor_p (.) (dG_p/dz_p) C_p``,
        i.e. the derivatives of G_p along the columns of C_p: computed so directly by models that
        take ``directions`` (the VAE decoders), else from :func:`.zstep.decode_with_jacobian`; exact,
        in the model's dtype.
        """
        dtype = self.model.z0.dtype
        z, spread = self.codes(u.to(dtype)), self.spread.to(dtype)
        if hasattr(self.model, "decode_with_jacobian"):
            G, D = self.model.decode_with_jacobian(z, spread.transpose(1, 2), factor=self.anchor)
        else:
            G, D = decode_with_jacobian(self.model, z)
            anchor = self.anchor.to(dtype)
            G, D = G * anchor, torch.einsum("nlpi,pij->nlpj", D, spread) * anchor[:, :, None]
        return self._held(G), self._held_directions(D)


def trust_distances(u):
    """(N, P) whitened distance ``||u_p||`` of every pixel's code from the reference code."""
    return u.norm(dim=2)


def confusions(model, radius=TRUST_RADIUS, steps=9):
    """Pairs ``(p, q, angle_pq, angle_pp)``: within the trust region, p's decoder gets closer to q's reference.

    The decoder of p is evaluated on a ``steps``^K grid of whitened codes in the ball of ``radius``
    (K <= 3; a random sample of 2000 codes, seed 0, beyond); angles in degrees between each
    decoded spectrum and every reference ``m0``. A pair is reported when some decoded
    spectrum of p is nearer (in angle) to ``m0_q`` than to ``m0_p``: there the solver
    could explain material q with p's endmember.
    """
    whitened = WhitenedModel(model)
    k, n_materials = model.latent_dim, model.n_materials
    if k <= 3:
        axis = np.linspace(-radius, radius, steps)
        grid = np.stack(np.meshgrid(*[axis] * k, indexing="ij"), axis=-1).reshape(-1, k)
    else:
        grid = np.random.default_rng(0).uniform(-radius, radius, (2000, k))
    grid = grid[np.linalg.norm(grid, axis=1) <= radius + 1e-9]
    u = torch.as_tensor(np.repeat(grid[:, None, :], n_materials, axis=1), dtype=model.z0.dtype)
    with torch.no_grad():
        spectra = whitened.decode(u).double().cpu().numpy()                 # (G, L, P)
    m0 = model.m0 / np.linalg.norm(model.m0, axis=0)
    unit = spectra / np.linalg.norm(spectra, axis=1, keepdims=True).clip(min=1e-300)
    angles = np.degrees(np.arccos(np.clip(np.einsum("glp,lq->gpq", unit, m0), -1.0, 1.0)))   # (G, P, Q)
    found = []
    for p in range(n_materials):
        for q in range(n_materials):
            if q != p:
                closer = angles[:, p, q] < angles[:, p, p]
                if closer.any():
                    g = int(np.argmin(angles[:, p, q] - angles[:, p, p]))
                    found.append((p, q, float(angles[g, p, q]), float(angles[g, p, p])))
    return found
