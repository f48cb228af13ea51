"""The whole unsupervised DeepGU pipeline on an in-memory image (paper, Algorithm 1).

VCA -> FCLS -> bundles -> one VAE per material -> DeepGU. The Processing
workflow model chains the same steps file to file; this function serves
benchmarks, tests and scripts.
"""

import time
from dataclasses import dataclass, field

import numpy as np

from .extraction.bundles import local_purity, select_bundles
from .defaults import ENDMEMBERS, PURITY_WINDOW, TRAINVAE, WORKFLOW_BUNDLES
from .extraction.endmembers import best_start, image_strips, refine_purest, vca_starts
from .solvers.fcls import fcls
from .feedback import SubFeedback, ensure
from .solvers.unmix import deepgu_unmix
from .models.vae import MIN_BUNDLE_PIXELS, train_endmember_model
from .extraction.vca import vca


@dataclass
class PipelineResult:
    """Every intermediate of the pipeline; images are ``(.., rows, cols)``, NaN outside the mask."""

    reference: np.ndarray          # (L, P) reference endmembers M0
    fcls_abundances: np.ndarray    # (P, rows, cols)
    model: object                  # EndmemberModel
    unmixed: object                # UnmixResult
    seconds: dict = field(default_factory=dict)


def run_pipeline(Y, n_materials, mask=None, seed=0, endmember_method=ENDMEMBERS["METHOD"],
                 bundle_method=WORKFLOW_BUNDLES["METHOD"], n_pixels=WORKFLOW_BUNDLES["N_PIXELS"], window=PURITY_WINDOW,
                 latent_dim=TRAINVAE["LATENT_DIM"], epochs=TRAINVAE["EPOCHS"], settings=None, names=None,
                 feedback=None):
    """Run Algorithm 1 on ``Y`` (L, rows, cols) with validity ``mask`` (rows, cols) (default: finite pixels).

    ``settings``: the DeepGU step's :class:`.unmix_settings.UnmixSettings` (default: the defaults).

    ``endmember_method``: ``"refined"`` (the workflow's: VCA restarts screened by
    :func:`core.extraction.endmembers.best_start`, then :func:`core.extraction.endmembers.refine_purest`) or ``"vca"``
    (the paper's, one run).
    ``bundle_method`` and ``n_pixels`` are those of :func:`core.extraction.bundles.select_bundles`;
    ``"spatial"`` (the default) measures purity on the FCLS abundances over ``window x window``
    neighbourhoods; the paper's choice is ``"nearest"`` with 100 pixels.
    """
    feedback = ensure(feedback)
    L, rows, cols = Y.shape
    mask = np.all(np.isfinite(Y), axis=0) if mask is None else mask
    pixels = Y[:, mask]
    names = names or ["EM%d" % (p + 1) for p in range(n_materials)]
    seconds = {}

    start = time.perf_counter()
    if endmember_method == "refined":
        starts = vca_starts(pixels, n_materials, seed=seed)
        best = best_start(Y, starts, mask, window=window)[0]
        M0 = refine_purest(image_strips(Y, mask), starts[best], window=window)[0]
    else:
        M0 = vca(pixels, n_materials, seed=seed).endmembers
    seconds["endmembers"] = time.perf_counter() - start

    start = time.perf_counter()
    A0 = np.full((n_materials, rows, cols), np.nan)
    A0[:, mask] = fcls(pixels, M0)
    seconds["fcls"] = time.perf_counter() - start

    start = time.perf_counter()
    purity = local_purity(A0, mask, window)[:, mask] if bundle_method == "spatial" else None
    bundles = [spectra for spectra, _ in select_bundles(pixels, M0, bundle_method, n_pixels=n_pixels, seed=seed,
                                                        purity=purity, min_pixels=MIN_BUNDLE_PIXELS)]
    seconds["bundles"] = time.perf_counter() - start

    start = time.perf_counter()
    model = train_endmember_model(bundles, M0, names, latent_dim=latent_dim, epochs=epochs, seed=seed,
                                  feedback=SubFeedback(feedback, 0, 30))
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    unmixed = deepgu_unmix(Y, model, settings, mask=mask, A_init=np.nan_to_num(A0),
                           feedback=SubFeedback(feedback, 30, 100))
    seconds["deepgu"] = time.perf_counter() - start
    return PipelineResult(M0, A0, model, unmixed, seconds)
