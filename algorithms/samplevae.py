"""deepgu:samplevae - look at the spectral variability a trained model has learned."""

from qgis.core import QgsProcessingParameterFile, QgsProcessingParameterFileDestination

from ..core import defaults
from .base import DeepGUAlgorithm, library_destination, library_parameter, number


class SampleVAEAlgorithm(DeepGUAlgorithm):
    MODEL, BUNDLES, SPAN, STEPS, OUTPUT, OUTPUT_PLOT = "MODEL", "BUNDLES", "SPAN", "STEPS", "OUTPUT", "OUTPUT_PLOT"
    REQUIRES = ("torch",)
    NAME, LABEL, DEFAULTS = "samplevae", "Inspect endmember variability model", defaults.SAMPLEVAE
    HELP = ("Decodes a grid of latent codes around each material's reference code z_p0 and shows the spectra the "
            "model generates: the variability it learned. Needs PyTorch.")

    def table(self):
        return [
            (QgsProcessingParameterFile(self.MODEL, "DeepGU model file"),
             "file from 'Train endmember variability models'."),
            (library_parameter(self.BUNDLES, "Bundles (CSV or ENVI .sli)", optional=True),
             "the bundles the model was trained on, drawn in grey for comparison."),
            (number(self.SPAN, "Latent half-width", self.DEFAULTS[self.SPAN], 0.0, 100.0),
             "half-width of the grid in latent units (the prior is a unit Gaussian, so 2 covers most of it)."),
            (number(self.STEPS, "Steps per latent axis", self.DEFAULTS[self.STEPS], 1, 50),
             "grid points per latent axis (the first two axes vary)."),
            (library_destination(self.OUTPUT, "Generated spectra", optional=True),
             "library of the generated spectra, one each, headed by its material."),
            (QgsProcessingParameterFileDestination(self.OUTPUT_PLOT, "Plot", "PNG files (*.png)", optional=True),
             "PNG, one panel per material: generated spectra in colour, bundle in grey, reference in black."),
        ]

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import inspect as job

        values = self.values(parameters, context)
        job.run(values[self.MODEL], output_csv=values[self.OUTPUT], output_png=values[self.OUTPUT_PLOT],
                bundles_csv=values[self.BUNDLES], span=values[self.SPAN], steps=values[self.STEPS])
        return {self.OUTPUT: values[self.OUTPUT], self.OUTPUT_PLOT: values[self.OUTPUT_PLOT]}
