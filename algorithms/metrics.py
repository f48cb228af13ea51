"""deepgu:metrics - accuracy of an unmixing result against a known truth."""

from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterLayer)

from ..core.jobs import metrics as job
from .base import DeepGUAlgorithm, memory_parameter

NUMBERS = ("RMSE_A", "RMSE_M", "SAM_M")


class MetricsAlgorithm(DeepGUAlgorithm):
    def name(self):
        return "metrics"

    def displayName(self):
        return "Unmixing accuracy (RMSE, SAM)"

    def shortHelpString(self):
        return (
            "Scores estimated abundances against reference abundances, as in the DeepGU paper (eq. 14-15). "
            "Estimated materials are first matched to reference ones (the permutation with the least "
            "abundance RMSE); pixels that are nodata in any input are left out.\n\n"
            "ESTIMATE, REFERENCE: abundance rasters with one band per material, same size.\n"
            "ESTIMATE_ENDMEMBERS, REFERENCE_ENDMEMBERS (optional, both or neither): per-pixel endmember "
            "rasters (materials x bands, material-major, as written by 'DeepGU unmixing' and 'Synthetic "
            "scene').\n\n"
            "RMSE_A = sqrt(mean (A - A*)^2); RMSE_M likewise on endmembers; SAM_M = mean over pixels of the "
            "sum over materials of the spectral angle (radians). RMSE_M and SAM_M are computed only with both "
            "endmember rasters; otherwise they are null (absent from the report). "
            "OUTPUT_REPORT: the same numbers, the permutation and the pixel count as JSON."
        )

    def initAlgorithm(self, config=None):
        self.addParameter(QgsProcessingParameterRasterLayer("ESTIMATE", "Estimated abundances"))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", "Reference abundances"))
        self.addParameter(QgsProcessingParameterRasterLayer("ESTIMATE_ENDMEMBERS", "Estimated per-pixel endmembers",
                                                            optional=True))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE_ENDMEMBERS", "Reference per-pixel endmembers",
                                                            optional=True))
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT_REPORT", "Report", "JSON files (*.json)",
                                                                optional=True))
        self.addParameter(memory_parameter())
        for key in NUMBERS:
            self.addOutput(QgsProcessingOutputNumber(key, key))

    def run_job(self, parameters, context, feedback):
        report = self.parameterAsFileOutput(parameters, "OUTPUT_REPORT", context) or None
        metrics = job.run(
            self.raster_path(parameters, "ESTIMATE", context),
            self.raster_path(parameters, "REFERENCE", context),
            estimate_endmembers=self.optional_raster_path(parameters, "ESTIMATE_ENDMEMBERS", context),
            reference_endmembers=self.optional_raster_path(parameters, "REFERENCE_ENDMEMBERS", context),
            report=report,
            memory_mb=self.parameterAsInt(parameters, "MEMORY_MB", context),
            feedback=feedback,
        )
        for key in NUMBERS:
            feedback.info("%s = %s" % (key, metrics.get(key, "not computed")))
        results = {key: metrics.get(key) for key in NUMBERS}      # None (null): not computed
        results["OUTPUT_REPORT"] = report
        return results
