"""deepgu:synthetic - a synthetic scene with known truth (paper Section VII-A)."""

from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination

from ..core.jobs import synthetic as job
from ..core.validation import INT32_MAX, MAX_SYNTHETIC_SIDE
from .base import DeepGUAlgorithm, advanced, library_destination, write_abundance_style

KINDS = ["DC1", "DC2"]


class SyntheticAlgorithm(DeepGUAlgorithm):
    def name(self):
        return "synthetic"

    def displayName(self):
        return "Synthetic scene with known truth"

    def shortHelpString(self):
        return (
            "Generates a hyperspectral scene whose abundances and per-pixel endmembers are known, as in "
            "the DeepGU paper's experiments, from a USGS spectral library shipped with the plugin "
            "(198 AVIRIS bands, 4 materials).\n\n"
            "KIND: DC1 - every pixel's endmembers are scaled by random piecewise-linear functions of "
            "wavelength; DC2 - scaling factors vary smoothly in space and in wavelength.\n"
            "ROWS, COLS: image size. MATERIALS: number of materials (1-4). SNR: white Gaussian noise level "
            "in dB. SEED: same seed, same scene. EPSG (advanced): projected CRS of the output (30 m pixels).\n\n"
            "OUTPUT: the image (band wavelengths in nm). OUTPUT_ABUNDANCES: true abundances, one named band "
            "per material. OUTPUT_LIBRARY: the library spectra used (CSV), the variability-free endmembers. "
            "OUTPUT_ENDMEMBERS (optional): true per-pixel endmembers, materials x bands."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterEnum("KIND", "Variability model", KINDS, defaultValue=0))
        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(QgsProcessingParameterNumber("ROWS", "Rows", integer, 70, minValue=2,
                                                       maxValue=MAX_SYNTHETIC_SIDE))
        self.addParameter(QgsProcessingParameterNumber("COLS", "Columns", integer, 70, minValue=2,
                                                       maxValue=MAX_SYNTHETIC_SIDE))
        self.addParameter(QgsProcessingParameterNumber("MATERIALS", "Materials", integer, 3, minValue=1,
                                                       maxValue=4))
        self.addParameter(QgsProcessingParameterNumber("SNR", "SNR (dB)", QgsProcessingParameterNumber.Double,
                                                       30.0, minValue=-100.0, maxValue=200.0))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", integer, 0, minValue=0,
                                                       maxValue=INT32_MAX))
        self.addParameter(advanced(QgsProcessingParameterNumber("EPSG", "EPSG code of the CRS", integer, 32633,
                                                                minValue=1, maxValue=INT32_MAX)))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Scene"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_ABUNDANCES", "True abundances",
                                                                  optional=True))
        self.addParameter(library_destination("OUTPUT_LIBRARY", "Library spectra", optional=True))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_ENDMEMBERS", "True per-pixel endmembers",
                                                                  optional=True, createByDefault=False))

    def run_job(self, parameters, context, feedback):
        outputs = {
            "OUTPUT": self.parameterAsOutputLayer(parameters, "OUTPUT", context),
            "OUTPUT_ABUNDANCES": self.parameterAsOutputLayer(parameters, "OUTPUT_ABUNDANCES", context) or None,
            "OUTPUT_LIBRARY": self.parameterAsFileOutput(parameters, "OUTPUT_LIBRARY", context) or None,
            "OUTPUT_ENDMEMBERS": self.parameterAsOutputLayer(parameters, "OUTPUT_ENDMEMBERS", context) or None,
        }
        job.run(
            KINDS[self.parameterAsEnum(parameters, "KIND", context)],
            self.parameterAsInt(parameters, "ROWS", context),
            self.parameterAsInt(parameters, "COLS", context),
            outputs["OUTPUT"],
            output_abundances=outputs["OUTPUT_ABUNDANCES"],
            output_library=outputs["OUTPUT_LIBRARY"],
            output_endmembers=outputs["OUTPUT_ENDMEMBERS"],
            snr_db=self.parameterAsDouble(parameters, "SNR", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            n_materials=self.parameterAsInt(parameters, "MATERIALS", context),
            epsg=self.parameterAsInt(parameters, "EPSG", context),
            feedback=feedback,
        )
        if outputs["OUTPUT_ABUNDANCES"]:
            write_abundance_style(outputs["OUTPUT_ABUNDANCES"])
        return outputs
