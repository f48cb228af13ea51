"""A small decoder model with known weights, standing in for trained VAEs in Z-step and unmixing tests."""

import torch


class ToyModel:
    """P small random MLP decoders ``K -> H -> H -> L``, tanh hidden layers, ``scale * sigmoid`` output.

    Follows the EndmemberModel protocol: ``decode`` (N, P, K) -> (N, L, P), ``z0`` (P, K), ``m0`` (L, P).
    """

    def __init__(self, n_bands=30, n_materials=3, latent_dim=2, hidden=16, scale=0.8, seed=0,
                 dtype=torch.float64):
        g = torch.Generator().manual_seed(seed)
        sizes = (latent_dim, hidden, hidden, n_bands)
        self.layers = [[(torch.randn(o, i, generator=g, dtype=dtype) * (1.5 / i ** 0.5),
                         torch.randn(o, generator=g, dtype=dtype) * 0.5)
                        for i, o in zip(sizes[:-1], sizes[1:])] for _ in range(n_materials)]
        self.scale = scale
        self.z0 = torch.randn(n_materials, latent_dim, generator=g, dtype=dtype) * 0.5
        self.n_bands, self.n_materials, self.latent_dim = n_bands, n_materials, latent_dim

    def decode(self, z):
        out = []
        for p, layers in enumerate(self.layers):
            h = z[:, p]
            for j, (w, b) in enumerate(layers):
                h = h @ w.T + b
                h = torch.tanh(h) if j < len(layers) - 1 else torch.sigmoid(h)
            out.append(h * self.scale)
        return torch.stack(out, dim=2)

    @property
    def m0(self):
        with torch.no_grad():
            return self.decode(self.z0[None])[0].numpy()

    def to(self, device):
        return self
