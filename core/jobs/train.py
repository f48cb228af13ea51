"""Train the per-material VAEs on a bundle CSV and save the model file."""

from ..defaults import TRAINVAE
from ..errors import DeepGUError
from ..checks.paths import check_paths
from ..validation import MAX_BETA, MAX_EPOCHS, MAX_LATENT, as_parameter, finite, integer
from ..feedback import ensure
from ..solvers.latent import TRUST_RADIUS, confusions
from ..files.library import check_bands, read_spectra
from ..models.model_file import save_model
from ..models.vae import train_endmember_model


def run(bundles_csv, endmembers_csv, output_model, latent_dim=TRAINVAE["LATENT_DIM"], epochs=TRAINVAE["EPOCHS"],
        beta=TRAINVAE["BETA"], seed=0, loss=TRAINVAE["LOSS"], feedback=None):
    """Train one VAE per material of ``endmembers_csv`` on its bundle from ``bundles_csv``.

    Materials are matched by name; every reference material needs a bundle.
    The model (weights, scaling, m_p0, z_p0, wavelengths, loss curves) goes
    to ``output_model`` (written atomically). Warns (feedback) when a material's decoder,
    within the trust region of its codes, gets nearer to another material's reference than
    to its own (:func:`core.solvers.latent.confusions`). Returns the model.
    """
    feedback = ensure(feedback)
    check_paths({"BUNDLES": bundles_csv, "ENDMEMBERS": endmembers_csv}, {"OUTPUT": output_model})
    latent_dim = integer("LATENT_DIM", latent_dim, 1, MAX_LATENT)
    epochs = integer("EPOCHS", epochs, 1, MAX_EPOCHS)
    beta = finite("BETA", beta, 0, MAX_BETA)
    seed = integer("SEED", seed)
    with as_parameter("ENDMEMBERS"):
        references = read_spectra(endmembers_csv)
    with as_parameter("BUNDLES"):
        bundle_set = read_spectra(bundles_csv)
    check_bands(bundle_set, references.n_bands, references.wavelengths, "BUNDLES", against="ENDMEMBERS")
    with as_parameter("ENDMEMBERS"):
        m0 = references.as_endmembers()
    groups = {name: spectra for name, spectra, _, _ in bundle_set.by_material()}
    missing = [name for name in references.materials if name not in groups]
    if missing:
        raise DeepGUError("the bundle file has no pixels for material(s) %s" % ", ".join(missing))
    model = train_endmember_model([groups[name] for name in references.materials], m0, references.materials,
                                  wavelengths=references.wavelengths, latent_dim=latent_dim, epochs=epochs,
                                  seed=seed, loss=loss, beta=beta, feedback=feedback)
    save_model(model, output_model)
    for p, q, to_other, to_own in confusions(model):
        feedback.info("WARNING: within %.0f spreads of its code, the VAE of %s generates a spectrum %.2f deg from "
                      "the reference of %s but %.2f deg from its own: the two may be confused in unmixing "
                      "(check the references and bundles of both)" % (TRUST_RADIUS, model.names[p], to_other,
                                                                      model.names[q], to_own))
    return model
