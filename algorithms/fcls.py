"""deepgu:fcls - fully constrained least-squares abundances."""

from qgis.core import QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer

from ..core.jobs import fcls as job
from .base import DeepGUAlgorithm, library_parameter, memory_parameter, write_abundance_style


class FCLSAlgorithm(DeepGUAlgorithm):
    def name(self):
        return "fcls"

    def displayName(self):
        return "Unmix with fixed endmembers (FCLS)"

    def shortHelpString(self):
        return (
            "Fully constrained least squares: for every pixel y, the abundances a >= 0 with sum(a) = 1 "
            "that minimise ||y - M a||^2 for a fixed endmember matrix M. Exact (every active set is "
            "examined), vectorised, block by block for rasters larger than memory.\n\n"
            "INPUT: multiband raster. ENDMEMBERS: CSV library (e.g. from 'Extract endmembers (VCA)') with "
            "the raster's band count (and wavelengths, when both have them).\n"
            "MEMORY_MB (advanced): memory budget per block.\n\n"
            "OUTPUT: abundance raster, one band per material named after it; nodata where the input is "
            "nodata. OUTPUT_RMSE (optional): per-pixel reconstruction RMSE sqrt(mean_l (y - M a)^2)."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral image"))
        self.addParameter(library_parameter("ENDMEMBERS", "Endmembers (CSV or ENVI .sli)"))
        self.addParameter(memory_parameter())
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Abundances"))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT_RMSE", "Reconstruction RMSE",
                                                                  optional=True, createByDefault=False))

    def run_job(self, parameters, context, feedback):
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        rmse = self.parameterAsOutputLayer(parameters, "OUTPUT_RMSE", context) or None
        job.run(
            self.raster_path(parameters, "INPUT", context),
            self.parameterAsFile(parameters, "ENDMEMBERS", context),
            output,
            output_rmse=rmse,
            memory_mb=self.parameterAsInt(parameters, "MEMORY_MB", context),
            feedback=feedback,
        )
        write_abundance_style(output)
        return {"OUTPUT": output, "OUTPUT_RMSE": rmse}
