"""deepgu:metrics - accuracy of an unmixing result against a known truth."""

from qgis.core import QgsProcessingOutputNumber, QgsProcessingParameterFileDestination

from ..core import defaults
from .base import MEMORY_HELP, DeepGUAlgorithm, memory_parameter, raster_input


class MetricsAlgorithm(DeepGUAlgorithm):
    ESTIMATE, REFERENCE = "ESTIMATE", "REFERENCE"
    ESTIMATE_ENDMEMBERS, REFERENCE_ENDMEMBERS = "ESTIMATE_ENDMEMBERS", "REFERENCE_ENDMEMBERS"
    OUTPUT_REPORT, MEMORY_MB = "OUTPUT_REPORT", "MEMORY_MB"
    NUMBERS = ("RMSE_A", "RMSE_M", "SAM_M")
    REQUIRES = ("scipy",)
    NAME, LABEL, DEFAULTS = "metrics", "Unmixing accuracy (RMSE, SAM)", defaults.METRICS
    HELP = ("Scores estimated abundances against reference abundances, as in the DeepGU paper (eq. 14-15). Estimated "
            "materials are first matched to reference ones (the permutation with the least abundance RMSE); pixels "
            "that are nodata in any input are left out.")

    def table(self):
        endmembers = ("per-pixel endmember raster (materials x bands, material-major, as written by 'DeepGU unmixing' "
                      "and 'Synthetic scene'); give both or neither.")
        return [
            (raster_input(self.ESTIMATE, "Estimated abundances"),
             "abundance raster with one band per material."),
            (raster_input(self.REFERENCE, "Reference abundances"),
             "abundance raster with one band per material, the size of ESTIMATE."),
            (raster_input(self.ESTIMATE_ENDMEMBERS, "Estimated per-pixel endmembers",
                                               optional=True), endmembers),
            (raster_input(self.REFERENCE_ENDMEMBERS, "Reference per-pixel endmembers",
                                               optional=True), endmembers),
            (QgsProcessingParameterFileDestination(self.OUTPUT_REPORT, "Report", "JSON files (*.json)", optional=True),
             "the numbers, the permutation and the pixel count as JSON."),
            (memory_parameter(self.DEFAULTS[self.MEMORY_MB]), MEMORY_HELP),
            (QgsProcessingOutputNumber("RMSE_A", "RMSE_A"), "sqrt(mean (A - A*)^2)."),
            (QgsProcessingOutputNumber("RMSE_M", "RMSE_M"),
             "the same on endmembers; computed only with both endmember rasters, otherwise null (absent from the "
             "report)."),
            (QgsProcessingOutputNumber("SAM_M", "SAM_M"),
             "mean over pixels of the sum over materials of the spectral angle (radians); null like RMSE_M."),
        ]

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import metrics as job      # scipy: imported only here (REQUIRES)

        values = self.values(parameters, context)
        metrics = job.run(values[self.ESTIMATE], values[self.REFERENCE],
                          estimate_endmembers=values[self.ESTIMATE_ENDMEMBERS],
                          reference_endmembers=values[self.REFERENCE_ENDMEMBERS], report=values[self.OUTPUT_REPORT],
                          memory_mb=values[self.MEMORY_MB], feedback=feedback)
        for key in self.NUMBERS:
            feedback.info("%s = %s" % (key, metrics.get(key, "not computed")))
        results = {key: metrics.get(key) for key in self.NUMBERS}      # None (null): not computed
        results[self.OUTPUT_REPORT] = values[self.OUTPUT_REPORT]
        return results
