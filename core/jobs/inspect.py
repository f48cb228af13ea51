"""Spectra a trained model generates around each reference code, as a CSV library and a PNG plot."""

import numpy as np

from ..files.atomic import together
from ..defaults import SAMPLEVAE
from ..errors import DeepGUError
from ..models.inspect_model import plot_model, sample_latent_grid
from ..files.library import check_bands, read_spectra, write_spectra
from ..models.model_file import load_model
from ..checks.paths import check_paths
from ..validation import as_parameter, finite, integer


def run(model_path, output_csv=None, output_png=None, bundles_csv=None, span=SAMPLEVAE["SPAN"],
        steps=SAMPLEVAE["STEPS"]):
    """Decode a ``steps``-per-axis latent grid of half-width ``span`` around each ``z_p0``.

    ``output_csv``: all generated spectra, one column each, headed by its material.
    ``output_png``: one panel per material, generated spectra in colour, the bundle
    (from ``bundles_csv``, when given) in grey, the reference spectrum in black.
    Returns the number of spectra generated per material.
    """
    check_paths({"MODEL": model_path, "BUNDLES": bundles_csv}, {"OUTPUT": output_csv, "OUTPUT_PLOT": output_png})
    span = finite("SPAN", span, 0, 100)
    steps = integer("STEPS", steps, 1, 50)
    with as_parameter("MODEL"):
        model = load_model(model_path)
    generated = [sample_latent_grid(model, p, span, steps) for p in range(model.n_materials)]
    with together():
        _write(model, generated, output_csv, output_png, bundles_csv, span, steps)
    return generated[0].shape[1]


def _write(model, generated, output_csv, output_png, bundles_csv, span, steps):
    """Write the requested outputs (the caller makes them appear together)."""
    if output_csv:
        materials = [name for name, g in zip(model.names, generated) for _ in range(g.shape[1])]
        write_spectra(output_csv, np.concatenate(generated, axis=1), materials, model.wavelengths)
    if output_png:
        bundles = None
        if bundles_csv:
            with as_parameter("BUNDLES"):
                bundle_set = read_spectra(bundles_csv)
                check_bands(bundle_set, model.n_bands, model.wavelengths, "the bundle file")
            groups = {name: spectra for name, spectra, _, _ in bundle_set.by_material()}
            missing = [name for name in model.names if name not in groups]
            if missing:
                raise DeepGUError("the bundle file has no pixels for material(s) %s" % ", ".join(missing))
            bundles = [groups[name] for name in model.names]
        plot_model(model, output_png, bundles=bundles, span=span, steps=steps)
