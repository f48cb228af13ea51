"""deepgu:compare - FCLS, PLMM, ELMM, GLMM and DeepGU on one scene, side by side in one HTML report."""

from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterFile, QgsProcessingParameterFileDestination

from ..core import defaults
from ..core.defaults import COMPARE_MAX_PIXELS, COMPARE_METHODS
from .base import (CLUSTER_HELP, DeepGUAlgorithm, cluster_parameter, extent_parameter, library_parameter,
                   memory_parameter, raster_input)

#: the dialog's names of the methods (:data:`core.defaults.COMPARE_METHODS`, in order).
METHOD_LABELS = ("FCLS", "PLMM", "ELMM", "GLMM", "DeepGU (needs MODEL)")


class CompareAlgorithm(DeepGUAlgorithm):
    INPUT, ENDMEMBERS, MODEL, REFERENCE, METHODS = "INPUT", "ENDMEMBERS", "MODEL", "REFERENCE", "METHODS"
    REFERENCE_ENDMEMBERS = "REFERENCE_ENDMEMBERS"
    EXTENT, MEMORY_MB, CLUSTER, OUTPUT_HTML = "EXTENT", "MEMORY_MB", "CLUSTER", "OUTPUT_HTML"
    REQUIRES = ("torch", "scipy")
    NAME, LABEL, DEFAULTS = "compare", "Compare unmixing methods (HTML report)", defaults.COMPARE
    HELP = ("Runs FCLS, PLMM, ELMM, GLMM and DeepGU (with a MODEL) on the image, each as its own algorithm runs it "
            "at its defaults (weights set from the data), and writes one HTML report: the abundance maps side by "
            "side (a row per material, a column per method), each method's per-pixel reconstruction error map, its "
            "time, the weights it used and its reconstruction RMSE, and with REFERENCE abundances the paper's RMSE_A "
            "of each method (with REFERENCE_ENDMEMBERS also RMSE_M and SAM_M: the paper's Table III). The report "
            "shows every map, so the image (or its EXTENT) may have at most %d pixels. Open it from the Results "
            "Viewer." % COMPARE_MAX_PIXELS)

    def table(self):
        methods = QgsProcessingParameterEnum(self.METHODS, "Methods (empty: every one that can run)",
                                             list(METHOD_LABELS), allowMultiple=True, optional=True)
        methods.setMetadata({"deepgu_choices": list(COMPARE_METHODS)})
        return [
            (raster_input(self.INPUT, "Hyperspectral image"), "multiband raster."),
            (library_parameter(self.ENDMEMBERS, "Reference endmembers (CSV or ENVI .sli)"),
             "the references M0 of FCLS, PLMM, ELMM and GLMM (e.g. from 'Extract endmembers'), one spectrum per "
             "material."),
            (QgsProcessingParameterFile(self.MODEL, "DeepGU model file", optional=True),
             "file from 'Train endmember variability models', with as many materials as ENDMEMBERS; DeepGU runs only "
             "when it is given (its references are the model's)."),
            (raster_input(self.REFERENCE, "Reference abundances", optional=True),
             "known abundances on INPUT's grid, one band per material (e.g. from 'Synthetic scene'): each method is "
             "scored against them (RMSE_A, materials matched)."),
            (raster_input(self.REFERENCE_ENDMEMBERS, "Reference per-pixel endmembers", optional=True),
             "with REFERENCE: the true per-pixel endmembers on INPUT's grid, materials x bands (material-major, as "
             "'Synthetic scene' writes them); each method is then scored on its endmembers too (RMSE_M, SAM_M)."),
            (methods, "the methods to run; empty: all of them, DeepGU only with a MODEL."),
            (extent_parameter(), "compare only the pixels covering this map extent (in any CRS; snapped outward to "
                                 "whole pixels). Empty: the whole image."),
            (memory_parameter(self.DEFAULTS[self.MEMORY_MB]), "each method's memory budget per block or tile (MB), "
                                                              "as in its own algorithm."),
            (cluster_parameter(self.DEFAULTS[self.CLUSTER]), CLUSTER_HELP),
            (QgsProcessingParameterFileDestination(self.OUTPUT_HTML, "Comparison report", "HTML files (*.html)"),
             "the report, one self-contained HTML file (the maps are embedded PNG images)."),
        ]

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import compare as job

        values = self.values(parameters, context)
        methods = []            # empty: every method that can run (parameterAsEnums would give the first)
        if parameters.get(self.METHODS) not in (None, "", []):
            methods = [COMPARE_METHODS[index] for index in self.parameterAsEnums(parameters, self.METHODS, context)]
        job.run(values[self.INPUT], values[self.ENDMEMBERS], values[self.OUTPUT_HTML], methods=methods,
                model_path=values[self.MODEL], reference=values[self.REFERENCE],
                reference_endmembers=values[self.REFERENCE_ENDMEMBERS], memory_mb=values[self.MEMORY_MB],
                cluster=values[self.CLUSTER], window=self.pixel_window(parameters, context, values[self.INPUT]),
                feedback=feedback)
        return {self.OUTPUT_HTML: values[self.OUTPUT_HTML]}
