"""deepgu:vca - reference endmembers by Vertex Component Analysis."""

from qgis.core import QgsProcessingParameterFeatureSink, QgsProcessingParameterFileDestination

from ..core import defaults
from ..core.jobs import vca as job
from ..core.validation import INT32_MAX
from . import compat
from .base import DeepGUAlgorithm, advanced, number, raster_input, write_pixel_points


class VCAAlgorithm(DeepGUAlgorithm):
    INPUT, ENDMEMBERS, SEED, SAMPLE_SIZE = "INPUT", "ENDMEMBERS", "SEED", "SAMPLE_SIZE"
    OUTPUT, OUTPUT_POINTS = "OUTPUT", "OUTPUT_POINTS"
    NAME, LABEL, DEFAULTS = "vca", "Extract endmembers (VCA)", defaults.VCA
    HELP = ("Finds the spectra of the purest pixels of a hyperspectral image with Vertex Component Analysis "
            "(Nascimento & Bioucas-Dias, 2005): the first step of DeepGU.")

    def table(self):
        return [
            (raster_input(self.INPUT, "Hyperspectral image"),
             "multiband raster (one band per wavelength); nodata and NaN pixels are ignored."),
            (number(self.ENDMEMBERS, "Number of endmembers", self.DEFAULTS[self.ENDMEMBERS], 2, INT32_MAX),
             "number of materials P (2 to the number of bands)."),
            (advanced(number(self.SEED, "Random seed", self.DEFAULTS[self.SEED], 0, INT32_MAX)),
             "VCA's random directions and the pixel sample; same seed, same result."),
            (advanced(number(self.SAMPLE_SIZE, "Pixels sampled for VCA", self.DEFAULTS[self.SAMPLE_SIZE], 10,
                             INT32_MAX)),
             "VCA looks at a seeded random sample of this many valid pixels, so images larger than memory work; "
             "smaller images are used whole."),
            (QgsProcessingParameterFileDestination(self.OUTPUT, "Endmembers", "CSV files (*.csv)"),
             "CSV spectral library, one row per band (wavelength column when the raster has wavelengths), one "
             "column per endmember (EM1..EMP) with the row/col of its pixel."),
            (QgsProcessingParameterFeatureSink(self.OUTPUT_POINTS, "Endmember pixels", compat.SOURCE_VECTOR_POINT,
                                               optional=True, createByDefault=False),
             "point layer at the chosen pixels."),
        ]

    def run_job(self, parameters, context, feedback):
        values = self.values(parameters, context)
        endmembers, rows, cols, info = job.run(values[self.INPUT], values[self.ENDMEMBERS], values[self.OUTPUT],
                                               seed=values[self.SEED], sample_size=values[self.SAMPLE_SIZE],
                                               feedback=feedback)
        names = ["EM%d" % (i + 1) for i in range(endmembers.shape[1])]
        points = write_pixel_points(self, parameters, self.OUTPUT_POINTS, context, info, names, rows, cols)
        return {self.OUTPUT: values[self.OUTPUT], self.OUTPUT_POINTS: points}
