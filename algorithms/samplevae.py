"""deepgu:samplevae - look at the spectral variability a trained model has learned."""

from qgis.core import (QgsProcessingParameterFile, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber)

from .base import DeepGUAlgorithm, library_destination, library_parameter


class SampleVAEAlgorithm(DeepGUAlgorithm):
    needs_torch = True

    def name(self):
        return "samplevae"

    def displayName(self):
        return "Inspect endmember variability model"

    def shortHelpString(self):
        return (
            "Decodes a grid of latent codes around each material's reference code z_p0 and shows the "
            "spectra the model generates: the variability it learned. Needs PyTorch.\n\n"
            "MODEL: file from 'Train endmember variability models'. BUNDLES (optional): the bundle CSV the "
            "model was trained on, drawn in grey for comparison. SPAN: half-width of the grid in latent "
            "units (the prior is a unit Gaussian, so 2 covers most of it). STEPS: grid points per latent "
            "axis (the first two axes vary).\n\n"
            "OUTPUT: CSV library of the generated spectra, one column each, headed by its material. "
            "OUTPUT_PLOT: PNG, one panel per material: generated spectra in colour, bundle in grey, "
            "reference in black."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterFile("MODEL", "DeepGU model file"))
        self.addParameter(library_parameter("BUNDLES", "Bundles (CSV or ENVI .sli)", optional=True))
        self.addParameter(QgsProcessingParameterNumber("SPAN", "Latent half-width", QgsProcessingParameterNumber.Double,
                                                       2.0, minValue=0.0, maxValue=100.0))
        self.addParameter(QgsProcessingParameterNumber("STEPS", "Steps per latent axis",
                                                       QgsProcessingParameterNumber.Integer, 5, minValue=1,
                                                       maxValue=50))
        self.addParameter(library_destination("OUTPUT", "Generated spectra", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_PLOT", "Plot", "PNG files (*.png)",
                                                                optional=True))

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import inspect as job

        outputs = {"OUTPUT": self.parameterAsFileOutput(parameters, "OUTPUT", context) or None,
                   "OUTPUT_PLOT": self.parameterAsFileOutput(parameters, "OUTPUT_PLOT", context) or None}
        job.run(
            self.parameterAsFile(parameters, "MODEL", context),
            output_csv=outputs["OUTPUT"],
            output_png=outputs["OUTPUT_PLOT"],
            bundles_csv=self.parameterAsFile(parameters, "BUNDLES", context) or None,
            span=self.parameterAsDouble(parameters, "SPAN", context),
            steps=self.parameterAsInt(parameters, "STEPS", context),
        )
        return outputs
