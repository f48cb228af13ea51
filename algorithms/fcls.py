"""deepgu:fcls - fully constrained least-squares abundances."""

from qgis.core import QgsProcessingParameterRasterDestination

from ..core import defaults
from ..core.jobs import fcls as job
from .base import (CLUSTER_HELP, EXTENT_HELP, MEMORY_HELP, DeepGUAlgorithm, cluster_parameter, extent_parameter,
                   library_parameter, memory_parameter, write_abundance_style, raster_input)


class FCLSAlgorithm(DeepGUAlgorithm):
    INPUT, ENDMEMBERS, EXTENT, MEMORY_MB, CLUSTER = "INPUT", "ENDMEMBERS", "EXTENT", "MEMORY_MB", "CLUSTER"
    OUTPUT, OUTPUT_RMSE = "OUTPUT", "OUTPUT_RMSE"
    NAME, LABEL, DEFAULTS = "fcls", "Unmix with fixed endmembers (FCLS)", defaults.FCLS
    HELP = ("Fully constrained least squares: for every pixel y, the abundances a >= 0 with sum(a) = 1 that minimise "
            "||y - M a||^2 for a fixed endmember matrix M. Exact (every active set is examined), vectorised, block by "
            "block for rasters larger than memory.")

    def table(self):
        return [
            (raster_input(self.INPUT, "Hyperspectral image"), "multiband raster."),
            (library_parameter(self.ENDMEMBERS, "Endmembers (CSV or ENVI .sli)"),
             "spectral library (e.g. from 'Extract endmembers (VCA)') with the raster's band count (and wavelengths, "
             "when both have them)."),
            (extent_parameter(), EXTENT_HELP),
            (memory_parameter(self.DEFAULTS[self.MEMORY_MB]), MEMORY_HELP),
            (cluster_parameter(self.DEFAULTS[self.CLUSTER]), CLUSTER_HELP),
            (QgsProcessingParameterRasterDestination(self.OUTPUT, "Abundances"),
             "abundance raster, one band per material named after it; nodata where the input is nodata."),
            (QgsProcessingParameterRasterDestination(self.OUTPUT_RMSE, "Reconstruction RMSE", optional=True,
                                                     createByDefault=False),
             "per-pixel reconstruction RMSE sqrt(mean_l (y - M a)^2)."),
        ]

    def run_job(self, parameters, context, feedback):
        values = self.values(parameters, context)
        job.run(values[self.INPUT], values[self.ENDMEMBERS], values[self.OUTPUT], output_rmse=values[self.OUTPUT_RMSE],
                memory_mb=values[self.MEMORY_MB], cluster=values[self.CLUSTER],
                window=self.pixel_window(parameters, context, values[self.INPUT]), feedback=feedback)
        write_abundance_style(values[self.OUTPUT], feedback)
        return {self.OUTPUT: values[self.OUTPUT], self.OUTPUT_RMSE: values[self.OUTPUT_RMSE]}
