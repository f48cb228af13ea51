"""deepgu:synthetic - a synthetic scene with known truth (paper Section VII-A)."""

from qgis.core import QgsProcessingParameterRasterDestination

from ..core import defaults
from ..core.defaults import SCENE_KINDS
from ..core.jobs import synthetic as job
from ..core.validation import INT32_MAX, MAX_SYNTHETIC_SIDE
from .base import DeepGUAlgorithm, advanced, enum, library_destination, number, write_abundance_style


class SyntheticAlgorithm(DeepGUAlgorithm):
    KIND, ROWS, COLS, MATERIALS, SNR, SEED, EPSG = "KIND", "ROWS", "COLS", "MATERIALS", "SNR", "SEED", "EPSG"
    OUTPUT, OUTPUT_ABUNDANCES = "OUTPUT", "OUTPUT_ABUNDANCES"
    OUTPUT_LIBRARY, OUTPUT_ENDMEMBERS = "OUTPUT_LIBRARY", "OUTPUT_ENDMEMBERS"
    NAME, LABEL, DEFAULTS = "synthetic", "Synthetic scene with known truth", defaults.SYNTHETIC
    HELP = ("Generates a hyperspectral scene whose abundances and per-pixel endmembers are known, as in the DeepGU "
            "paper's experiments, from a USGS spectral library shipped with the plugin (198 AVIRIS bands, "
            "4 materials).")

    def table(self):
        return [
            (enum(self.KIND, "Variability model", SCENE_KINDS, self.DEFAULTS[self.KIND]),
             "DC1: every pixel's endmembers are scaled by random piecewise-linear functions of wavelength; DC2: "
             "scaling factors vary smoothly in space and in wavelength."),
            (number(self.ROWS, "Rows", self.DEFAULTS[self.ROWS], 2, MAX_SYNTHETIC_SIDE), "image height in pixels."),
            (number(self.COLS, "Columns", self.DEFAULTS[self.COLS], 2, MAX_SYNTHETIC_SIDE), "image width in pixels."),
            (number(self.MATERIALS, "Materials", self.DEFAULTS[self.MATERIALS], 1, 4), "number of materials (1-4)."),
            (number(self.SNR, "SNR (dB)", self.DEFAULTS[self.SNR], -100.0, 200.0),
             "white Gaussian noise level in dB."),
            (number(self.SEED, "Random seed", self.DEFAULTS[self.SEED], 0, INT32_MAX), "same seed, same scene."),
            (advanced(number(self.EPSG, "EPSG code of the CRS", self.DEFAULTS[self.EPSG], 1, INT32_MAX)),
             "projected CRS of the output (30 m pixels)."),
            (QgsProcessingParameterRasterDestination(self.OUTPUT, "Scene"), "the image (band wavelengths in nm)."),
            (QgsProcessingParameterRasterDestination(self.OUTPUT_ABUNDANCES, "True abundances", optional=True),
             "true abundances, one named band per material."),
            (library_destination(self.OUTPUT_LIBRARY, "Library spectra", optional=True),
             "the library spectra used, the variability-free endmembers."),
            (QgsProcessingParameterRasterDestination(self.OUTPUT_ENDMEMBERS, "True per-pixel endmembers",
                                                     optional=True, createByDefault=False),
             "true per-pixel endmembers, materials x bands."),
        ]

    def run_job(self, parameters, context, feedback):
        values = self.values(parameters, context)
        outputs = {key: values[key] for key in (self.OUTPUT, self.OUTPUT_ABUNDANCES, self.OUTPUT_LIBRARY,
                                                self.OUTPUT_ENDMEMBERS)}
        job.run(values[self.KIND], values[self.ROWS], values[self.COLS], outputs[self.OUTPUT],
                output_abundances=outputs[self.OUTPUT_ABUNDANCES], output_library=outputs[self.OUTPUT_LIBRARY],
                output_endmembers=outputs[self.OUTPUT_ENDMEMBERS], snr_db=values[self.SNR], seed=values[self.SEED],
                n_materials=values[self.MATERIALS], epsg=values[self.EPSG], feedback=feedback)
        if outputs[self.OUTPUT_ABUNDANCES]:
            write_abundance_style(outputs[self.OUTPUT_ABUNDANCES], feedback)
        return outputs
