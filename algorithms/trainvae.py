"""deepgu:trainvae - one variational autoencoder per material, saved as a model file."""

from qgis.core import (QgsProcessingParameterEnum, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber)

from ..core.defaults import DEFAULT_BETA, DEFAULT_EPOCHS
from ..core.validation import INT32_MAX, MAX_BETA, MAX_EPOCHS, MAX_LATENT
from .base import DeepGUAlgorithm, advanced, library_parameter

LOSSES = ["bce", "mse"]


class TrainVAEAlgorithm(DeepGUAlgorithm):
    needs_torch = True

    def name(self):
        return "trainvae"

    def displayName(self):
        return "Train endmember variability models (VAE)"

    def shortHelpString(self):
        return (
            "Learns how each material's spectrum varies in the scene: one small variational autoencoder "
            "per material (DeepGU, Tables I-II), trained on that material's bundle of pure pixels. Needs "
            "PyTorch.\n\n"
            "BUNDLES: bundle CSV (from 'Extract endmember bundles'). ENDMEMBERS: the reference library "
            "(CSV); every material in it needs a bundle; its spectra give the reference latent codes z_p0.\n"
            "LATENT_DIM (advanced): latent size K (2 in the paper). EPOCHS (advanced): Adam epochs over "
            "mini-batches of a third of the bundle (200; the paper's 50 are too few to learn much). BETA "
            "(advanced): weight of the KL term (0.01; with 1 the model ignores its latent code on typical "
            "scenes and generates only the mean spectrum). LOSS (advanced): binary cross-entropy summed over "
            "bands (as the authors) or squared error. SEED: same seed, same model (on CPU).\n\n"
            "OUTPUT: model file (any name, e.g. model.pt) with every material's weights, scaling, reference "
            "spectrum and code, band count, wavelengths and training loss. It is read without executing code."
        )

    def initAlgorithm(self, config=None):
        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(library_parameter("BUNDLES", "Bundles (CSV or ENVI .sli)"))
        self.addParameter(library_parameter("ENDMEMBERS", "Reference endmembers (CSV or ENVI .sli)"))
        self.addParameter(advanced(QgsProcessingParameterNumber("LATENT_DIM", "Latent dimension", integer, 2,
                                                                minValue=1, maxValue=MAX_LATENT)))
        self.addParameter(advanced(QgsProcessingParameterNumber("EPOCHS", "Epochs", integer, DEFAULT_EPOCHS,
                                                                minValue=1, maxValue=MAX_EPOCHS)))
        self.addParameter(advanced(QgsProcessingParameterNumber("BETA", "KL weight (beta)",
                                                                QgsProcessingParameterNumber.Double, DEFAULT_BETA,
                                                                minValue=0.0, maxValue=MAX_BETA)))
        self.addParameter(advanced(QgsProcessingParameterEnum("LOSS", "Reconstruction loss", LOSSES,
                                                              defaultValue=0)))
        self.addParameter(advanced(QgsProcessingParameterNumber("SEED", "Random seed", integer, 0, minValue=0,
                                                                maxValue=INT32_MAX)))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Model file",
                                                                "DeepGU model (*.pt);;All files (*)"))

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import train as job

        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        job.run(
            self.parameterAsFile(parameters, "BUNDLES", context),
            self.parameterAsFile(parameters, "ENDMEMBERS", context),
            output,
            latent_dim=self.parameterAsInt(parameters, "LATENT_DIM", context),
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            beta=self.parameterAsDouble(parameters, "BETA", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            loss=LOSSES[self.parameterAsEnum(parameters, "LOSS", context)],
            feedback=feedback,
        )
        return {"OUTPUT": output}
