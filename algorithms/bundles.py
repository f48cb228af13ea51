"""deepgu:bundles - the purest pixels of each material, for training its VAE."""

from qgis.core import (QgsProcessing, QgsProcessingParameterEnum, QgsProcessingParameterFeatureSink,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer)

from ..core.bundles import DEFAULT_WINDOW
from ..core.jobs import bundles as job
from ..core.validation import INT32_MAX
from .base import (DeepGUAlgorithm, advanced, library_destination, library_parameter, memory_parameter,
                   write_pixel_points)


class BundlesAlgorithm(DeepGUAlgorithm):
    def name(self):
        return "bundles"

    def displayName(self):
        return "Extract endmember bundles"

    def shortHelpString(self):
        return (
            "Collects, for every reference material, the image pixels that best represent it: the training "
            "set of that material's variability model (DeepGU, Algorithm 1 step 3). A pixel belongs to at "
            "most one material (the one with the smallest spectral angle).\n\n"
            "INPUT: multiband raster. ENDMEMBERS: CSV library of reference spectra (e.g. from VCA).\n"
            "METHOD: 0 nearest - the N_PIXELS pixels with the smallest spectral angle to each reference "
            "(the paper's choice); 1 angle - all pixels within ANGLE degrees (at most 5000 per material); "
            "2 auto - VCA on random subsets of the image, extracted pixels within ANGLE degrees of a "
            "reference join its bundle (after Somers et al. 2012); 3 spatial - pixels inside homogeneous regions: "
            "the N_PIXELS pixels whose abundance of the material (ABUNDANCES, e.g. the FCLS output), averaged over "
            "a WINDOW x WINDOW neighbourhood, is highest. 'spatial' is what the DeepGU workflow uses: on scenes "
            "whose spectra vary in shape from pixel to pixel, the smallest angle prefers pixels that look like the "
            "reference and mixed pixels over pure pixels that vary, and the VAE then learns too little variability "
            "(bench/bench_table3.py).\n"
            "ABUNDANCES: abundance raster on the image's grid, one band per material (required by 'spatial').\n"
            "MIN_PIXELS (advanced): a material with fewer bundle pixels is an error. SEED: for 'auto'.\n\n"
            "OUTPUT: bundle CSV - one column per pixel, headed by its material, with its row and col.\n"
            "OUTPUT_POINTS (optional): point layer of the bundle pixels with a 'material' attribute."
        )

    def initAlgorithm(self, config=None):
        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral image"))
        self.addParameter(library_parameter("ENDMEMBERS", "Reference endmembers (CSV or ENVI .sli)"))
        self.addParameter(QgsProcessingParameterEnum("METHOD", "Method", ["nearest pixels", "within an angle",
                                                                          "automated (VCA on subsets)",
                                                                          "spatially pure (needs abundances)"],
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("N_PIXELS", "Pixels per material (nearest, spatial)", integer,
                                                       100, minValue=1, maxValue=INT32_MAX))
        self.addParameter(QgsProcessingParameterNumber("ANGLE", "Maximum spectral angle (degrees)",
                                                       QgsProcessingParameterNumber.Double, 5.0, minValue=0.001,
                                                       maxValue=90.0))
        self.addParameter(QgsProcessingParameterRasterLayer("ABUNDANCES", "Abundances (spatial)", optional=True))
        self.addParameter(advanced(QgsProcessingParameterNumber("WINDOW", "Purity window (pixels, odd; spatial)",
                                                                integer, DEFAULT_WINDOW, minValue=1, maxValue=99)))
        self.addParameter(advanced(QgsProcessingParameterNumber("MIN_PIXELS", "Fewest pixels per material",
                                                                integer, 10, minValue=1, maxValue=INT32_MAX)))
        self.addParameter(advanced(QgsProcessingParameterNumber("SEED", "Random seed", integer, 0, minValue=0,
                                                                maxValue=INT32_MAX)))
        self.addParameter(memory_parameter())
        self.addParameter(library_destination("OUTPUT", "Bundles"))
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT_POINTS", "Bundle pixels",
                                                            QgsProcessing.TypeVectorPoint, optional=True,
                                                            createByDefault=False))

    def run_job(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        materials, rows, cols, info = job.run(
            self.raster_path(parameters, "INPUT", context),
            self.parameterAsFile(parameters, "ENDMEMBERS", context),
            output,
            method=job.METHODS[self.parameterAsEnum(parameters, "METHOD", context)],
            n_pixels=self.parameterAsInt(parameters, "N_PIXELS", context),
            max_angle_deg=self.parameterAsDouble(parameters, "ANGLE", context),
            min_pixels=self.parameterAsInt(parameters, "MIN_PIXELS", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            memory_mb=self.parameterAsInt(parameters, "MEMORY_MB", context),
            abundances_path=self.optional_raster_path(parameters, "ABUNDANCES", context),
            window=self.parameterAsInt(parameters, "WINDOW", context),
            feedback=feedback,
        )
        points = write_pixel_points(self, parameters, "OUTPUT_POINTS", context, info, materials, rows, cols)
        return {"OUTPUT": output, "OUTPUT_POINTS": points}
