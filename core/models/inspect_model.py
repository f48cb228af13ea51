"""Look inside a trained endmember model: spectra generated around each reference code.

For material ``p`` the latent grid is ``z = z_p0 + (u_i, u_j, 0, ..., 0)`` with
``u`` running over ``steps`` evenly spaced offsets in ``[-span, span]`` (only
the first two latent dimensions vary, or the only one when K = 1); its
decoded spectra ``G_p(z)`` show the variability the VAE has learnt.
"""

import numpy as np
import torch

from ..files.atomic import atomic_output
from ..defaults import SAMPLEVAE
from ..errors import DeepGUError

MAX_BUNDLE_LINES = 200


def _material_index(model, material):
    """Index of ``material`` given as an index or a name."""
    if isinstance(material, str):
        if material not in model.names:
            raise DeepGUError("no material named %r in the model (it has %s)" % (material, ", ".join(model.names)))
        return model.names.index(material)
    if not 0 <= int(material) < model.n_materials:
        raise DeepGUError("material index %s out of range (the model has %d)" % (material, model.n_materials))
    return int(material)


def latent_offsets(span, steps):
    """``steps`` offsets evenly spaced in ``[-span, span]``; the middle one is exactly 0 when ``steps`` is odd."""
    half = max(steps - 1, 1) / 2.0
    return span * (np.arange(steps) - (steps - 1) / 2.0) / half


def sample_latent_grid(model, material, span=SAMPLEVAE["SPAN"], steps=SAMPLEVAE["STEPS"]):
    """Decoded spectra (L, steps^d), d = min(K, 2), on the latent grid around ``z_p0`` (row-major over the grid)."""
    p = _material_index(model, material)
    if int(steps) < 1:
        raise DeepGUError("the latent grid needs at least 1 step, got %s" % (steps,))
    dims = min(model.latent_dim, 2)
    offsets = latent_offsets(float(span), int(steps))
    grid = np.stack(np.meshgrid(*[offsets] * dims, indexing="ij"), axis=-1).reshape(-1, dims)
    z = model.z0[p].repeat(grid.shape[0], 1)
    z[:, :dims] += torch.as_tensor(grid, dtype=z.dtype, device=z.device)
    with torch.no_grad():
        return model.vaes[p].decode(z).T.cpu().double().numpy()


def plot_model(model, path_png, bundles=None, span=SAMPLEVAE["SPAN"], steps=SAMPLEVAE["STEPS"], what="OUTPUT_PLOT"):
    """Write a PNG with one panel per material: generated spectra (colour), bundle (grey), ``m_p0`` (black).

    ``bundles``: optional list of (L, n_p) arrays; at most :data:`MAX_BUNDLE_LINES` pixels of each are drawn.
    Uses matplotlib's Agg canvas directly, so no global backend is changed. The PNG is written at exactly
    ``path_png`` (no extension added), atomically.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = model.wavelengths if model.wavelengths is not None else np.arange(1, model.n_bands + 1)
    figure = Figure(figsize=(3.6 * model.n_materials, 3.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, model.n_materials, squeeze=False)[0]
    for p, axis in enumerate(axes):
        if bundles is not None:
            axis.plot(x, np.asarray(bundles[p])[:, :MAX_BUNDLE_LINES], color="0.75", linewidth=0.5)
        generated = sample_latent_grid(model, p, span, steps)
        colours = colormaps["viridis"](np.linspace(0.0, 1.0, generated.shape[1]))
        for spectrum, colour in zip(generated.T, colours):
            axis.plot(x, spectrum, color=colour, linewidth=0.8)
        axis.plot(x, model.m0[:, p], color="black", linewidth=1.5)
        axis.set_title(model.names[p])
        axis.set_xlabel("wavelength (nm)" if model.wavelengths is not None else "band")
    with atomic_output(path_png, "wb", what=what) as stream:
        figure.savefig(stream, format="png", dpi=100)
