"""deepgu:trainvae - one variational autoencoder per material, saved as a model file."""

from qgis.core import QgsProcessingParameterFileDestination

from ..core import defaults
from ..core.defaults import LOSSES
from ..core.validation import INT32_MAX, MAX_BETA, MAX_EPOCHS, MAX_LATENT
from .base import DeepGUAlgorithm, advanced, enum, library_parameter, number


class TrainVAEAlgorithm(DeepGUAlgorithm):
    BUNDLES, ENDMEMBERS, LATENT_DIM, EPOCHS = "BUNDLES", "ENDMEMBERS", "LATENT_DIM", "EPOCHS"
    BETA, LOSS, SEED, OUTPUT = "BETA", "LOSS", "SEED", "OUTPUT"
    REQUIRES = ("torch",)
    NAME, LABEL, DEFAULTS = "trainvae", "Train endmember variability models (VAE)", defaults.TRAINVAE
    HELP = ("Learns how each material's spectrum varies in the scene: one small variational autoencoder per material "
            "(DeepGU, Tables I-II), trained on that material's bundle of pure pixels. Needs PyTorch.")

    def table(self):
        return [
            (library_parameter(self.BUNDLES, "Bundles (CSV or ENVI .sli)"),
             "bundle library (from 'Extract endmember bundles')."),
            (library_parameter(self.ENDMEMBERS, "Reference endmembers (CSV or ENVI .sli)"),
             "the reference library; every material in it needs a bundle; its spectra give the reference latent "
             "codes z_p0."),
            (advanced(number(self.LATENT_DIM, "Latent dimension", self.DEFAULTS[self.LATENT_DIM], 1, MAX_LATENT)),
             "latent size K (2 in the paper)."),
            (advanced(number(self.EPOCHS, "Epochs", self.DEFAULTS[self.EPOCHS], 1, MAX_EPOCHS)),
             "Adam epochs over mini-batches of a third of the bundle (the paper's 50 are too few to learn much)."),
            (advanced(number(self.BETA, "KL weight (beta)", self.DEFAULTS[self.BETA], 0.0, MAX_BETA)),
             "weight of the KL term (with the paper's 1 the model ignores its latent code on typical scenes and "
             "generates only the mean spectrum)."),
            (advanced(enum(self.LOSS, "Reconstruction loss", LOSSES, self.DEFAULTS[self.LOSS])),
             "bce: binary cross-entropy summed over bands (as the authors); mse: squared error."),
            (advanced(number(self.SEED, "Random seed", self.DEFAULTS[self.SEED], 0, INT32_MAX)),
             "same seed, same model (on CPU)."),
            (QgsProcessingParameterFileDestination(self.OUTPUT, "Model file", "DeepGU model (*.pt);;All files (*)"),
             "model file (any name, e.g. model.pt) with every material's weights, scaling, reference spectrum and "
             "code, band count, wavelengths and training loss. It is read without executing code."),
        ]

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import train as job

        values = self.values(parameters, context)
        job.run(values[self.BUNDLES], values[self.ENDMEMBERS], values[self.OUTPUT], latent_dim=values[self.LATENT_DIM],
                epochs=values[self.EPOCHS], beta=values[self.BETA], seed=values[self.SEED], loss=values[self.LOSS],
                feedback=feedback)
        return {self.OUTPUT: values[self.OUTPUT]}
