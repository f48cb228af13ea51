"""deepgu:vca - reference endmembers by Vertex Component Analysis."""

from qgis.core import (QgsProcessing, QgsProcessingParameterFeatureSink, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer)

from ..core.jobs import vca as job
from ..core.validation import INT32_MAX
from .base import DeepGUAlgorithm, advanced, write_pixel_points


class VCAAlgorithm(DeepGUAlgorithm):
    def name(self):
        return "vca"

    def displayName(self):  # noqa: N802
        return "Extract endmembers (VCA)"

    def shortHelpString(self):  # noqa: N802
        return (
            "Finds the spectra of the purest pixels of a hyperspectral image with Vertex Component "
            "Analysis (Nascimento & Bioucas-Dias, 2005): the first step of DeepGU.\n\n"
            "INPUT: multiband raster (one band per wavelength); nodata and NaN pixels are ignored.\n"
            "ENDMEMBERS: number of materials P (2 to the number of bands).\n"
            "SEED: random seed (VCA's random directions and the pixel sample); same seed, same result.\n"
            "SAMPLE_SIZE (advanced): VCA looks at a seeded random sample of this many valid pixels, so "
            "images larger than memory work; smaller images are used whole.\n\n"
            "OUTPUT: CSV spectral library, one row per band (wavelength column when the raster has "
            "wavelengths), one column per endmember (EM1..EMP) with the row/col of its pixel.\n"
            "OUTPUT_POINTS (optional): point layer at the chosen pixels."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral image"))
        self.addParameter(QgsProcessingParameterNumber("ENDMEMBERS", "Number of endmembers",
                                                       QgsProcessingParameterNumber.Integer, 3, minValue=2,
                                                       maxValue=INT32_MAX))
        self.addParameter(advanced(QgsProcessingParameterNumber("SEED", "Random seed",
                                                                QgsProcessingParameterNumber.Integer, 0,
                                                                minValue=0, maxValue=INT32_MAX)))
        self.addParameter(advanced(QgsProcessingParameterNumber("SAMPLE_SIZE", "Pixels sampled for VCA",
                                                                QgsProcessingParameterNumber.Integer,
                                                                job.DEFAULT_SAMPLE, minValue=10,
                                                                maxValue=INT32_MAX)))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Endmembers",
                                                                "CSV files (*.csv)"))
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT_POINTS", "Endmember pixels",
                                                            QgsProcessing.TypeVectorPoint, optional=True,
                                                            createByDefault=False))

    def run_job(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        endmembers, rows, cols, info = job.run(
            self.raster_path(parameters, "INPUT", context),
            self.parameterAsInt(parameters, "ENDMEMBERS", context),
            output,
            seed=self.parameterAsInt(parameters, "SEED", context),
            sample_size=self.parameterAsInt(parameters, "SAMPLE_SIZE", context),
            feedback=feedback,
        )
        names = ["EM%d" % (i + 1) for i in range(endmembers.shape[1])]
        points = write_pixel_points(self, parameters, "OUTPUT_POINTS", context, info, names, rows, cols)
        return {"OUTPUT": output, "OUTPUT_POINTS": points}
