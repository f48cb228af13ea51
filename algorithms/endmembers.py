"""deepgu:endmembers - reference endmembers by VCA with restarts, N-FINDR or a whole-scene refinement."""

from qgis.core import (QgsProcessingParameterEnum, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterLayer)

from ..core.bundles import DEFAULT_WINDOW
from ..core import endmembers as methods
from ..core.jobs import endmembers as job
from ..core.jobs.vca import DEFAULT_SAMPLE
from ..core.validation import INT32_MAX, MAX_MATERIALS
from .base import DeepGUAlgorithm, advanced, memory_parameter

#: METHOD choices: (core method name, label), in the order of the enum.
CHOICES = (("refined", "refined: mean of the spatially purest pixels (default)"),
           ("vca-best", "VCA, best of several restarts"),
           ("nfindr", "N-FINDR (largest simplex volume)"),
           ("vca", "VCA, one run (as deepgu:vca)"))


class EndmembersAlgorithm(DeepGUAlgorithm):
    def name(self):
        return "endmembers"

    def displayName(self):  # noqa: N802
        return "Extract reference endmembers"

    def shortHelpString(self):  # noqa: N802
        return (
            "Reference spectra of the P materials of a hyperspectral image: the first step of DeepGU, and what "
            "FCLS and the DeepGU prior are anchored to.\n\n"
            "INPUT: multiband raster; nodata and NaN pixels are ignored. ENDMEMBERS: number of materials P.\n"
            "METHOD:\n"
            "- refined (default, the workflow's): VCA with restarts, then alternately FCLS and, per material, "
            "the mean of the FRACTION (a third) of the pixels it dominates whose FCLS abundance, averaged "
            "over a WINDOW x WINDOW neighbourhood, is highest; ITERATIONS times. VCA and N-FINDR pick the "
            "most extreme pixels, which under "
            "variability and noise are atypical; the mean of the purest pixels is the material's typical "
            "spectrum (bench/bench_endmembers.py).\n"
            "- vca-best: VCA with RESTARTS seeds, keeping the run with the lowest FCLS reconstruction error.\n"
            "- nfindr: N-FINDR, the P pixels spanning the largest simplex, started from VCA.\n"
            "- vca: one VCA run, as deepgu:vca.\n"
            "SEED: seeds every random step (sample, VCA directions, ties); same seed, same result.\n"
            "SAMPLE_SIZE (advanced): VCA and N-FINDR see a seeded sample of this many pixels; the refinement "
            "streams the whole image in blocks of MEMORY_MB.\n\n"
            "OUTPUT: CSV spectral library (EM1..EMP), usable wherever deepgu:vca's output is."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Hyperspectral image"))
        self.addParameter(QgsProcessingParameterNumber("ENDMEMBERS", "Number of endmembers", integer, 3,
                                                       minValue=2, maxValue=MAX_MATERIALS))
        self.addParameter(QgsProcessingParameterEnum("METHOD", "Method", [label for _, label in CHOICES],
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("SEED", "Random seed", integer, 0, minValue=0,
                                                       maxValue=INT32_MAX))
        self.addParameter(advanced(QgsProcessingParameterNumber("RESTARTS", "VCA restarts", integer,
                                                                methods.DEFAULT_RESTARTS, minValue=1, maxValue=1000)))
        self.addParameter(advanced(QgsProcessingParameterNumber("FRACTION", "Fraction of its pixels averaged (refined)",
                                                                QgsProcessingParameterNumber.Double,
                                                                methods.DEFAULT_REFINE_FRACTION, minValue=0.001,
                                                                maxValue=1.0)))
        self.addParameter(advanced(QgsProcessingParameterNumber("WINDOW", "Purity window (pixels, odd; refined)",
                                                                integer, DEFAULT_WINDOW, minValue=1, maxValue=99)))
        self.addParameter(advanced(QgsProcessingParameterNumber("ITERATIONS", "Refinement iterations", integer,
                                                                methods.DEFAULT_REFINE_ITERATIONS, minValue=1,
                                                                maxValue=100)))
        self.addParameter(advanced(QgsProcessingParameterNumber("SAMPLE_SIZE", "Pixels sampled (VCA, N-FINDR)",
                                                                integer, DEFAULT_SAMPLE, minValue=10,
                                                                maxValue=INT32_MAX)))
        self.addParameter(memory_parameter())
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Endmembers", "CSV files (*.csv)"))

    def run_job(self, parameters, context, feedback):
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        job.run(
            self.raster_path(parameters, "INPUT", context),
            self.parameterAsInt(parameters, "ENDMEMBERS", context),
            output,
            method=CHOICES[self.parameterAsEnum(parameters, "METHOD", context)][0],
            seed=self.parameterAsInt(parameters, "SEED", context),
            sample_size=self.parameterAsInt(parameters, "SAMPLE_SIZE", context),
            restarts=self.parameterAsInt(parameters, "RESTARTS", context),
            fraction=self.parameterAsDouble(parameters, "FRACTION", context),
            window=self.parameterAsInt(parameters, "WINDOW", context),
            iterations=self.parameterAsInt(parameters, "ITERATIONS", context),
            memory_mb=self.parameterAsInt(parameters, "MEMORY_MB", context),
            feedback=feedback,
        )
        return {"OUTPUT": output}
