"""deepgu:endmembers - reference endmembers by VCA with restarts, N-FINDR or a whole-scene refinement."""

from qgis.core import QgsProcessingParameterFileDestination

from ..core import defaults
from ..core.defaults import ENDMEMBER_METHODS
from ..core.validation import INT32_MAX, MAX_MATERIALS
from ..core.files.raster_io import open_raster
from .base import (MATERIAL_FIELD_HELP, MEMORY_HELP, REGIONS_HELP, DeepGUAlgorithm, advanced, enum,
                   material_field_parameter, memory_parameter, number, region_features, regions_parameter, raster_input)

#: how the dialog shows each of :data:`core.defaults.ENDMEMBER_METHODS`.
LABELS = {"refined": "refined: mean of the spatially purest pixels (default)",
          "vca-best": "VCA, best of several restarts",
          "nfindr": "N-FINDR (largest simplex volume)",
          "vca": "VCA, one run (as deepgu:vca)"}


class EndmembersAlgorithm(DeepGUAlgorithm):
    INPUT, ENDMEMBERS, METHOD, SEED, RESTARTS = "INPUT", "ENDMEMBERS", "METHOD", "SEED", "RESTARTS"
    FRACTION, WINDOW, ITERATIONS, SAMPLE_SIZE = "FRACTION", "WINDOW", "ITERATIONS", "SAMPLE_SIZE"
    MEMORY_MB, OUTPUT = "MEMORY_MB", "OUTPUT"
    REQUIRES = ("scipy",)
    NAME, LABEL, DEFAULTS = "endmembers", "Extract reference endmembers", defaults.ENDMEMBERS
    HELP = ("Reference spectra of the P materials of a hyperspectral image: the first step of DeepGU, and what FCLS "
            "and the DeepGU prior are anchored to. VCA and N-FINDR pick the most extreme pixels, which under "
            "variability and noise are atypical; the mean of the purest pixels ('refined') is the material's typical "
            "spectrum (bench/bench_endmembers.py).")

    def table(self):
        return [
            (raster_input(self.INPUT, "Hyperspectral image"),
             "multiband raster; nodata and NaN pixels are ignored."),
            (number(self.ENDMEMBERS, "Number of endmembers", self.DEFAULTS[self.ENDMEMBERS], 2, MAX_MATERIALS),
             "number of materials P."),
            (enum(self.METHOD, "Method", ENDMEMBER_METHODS, self.DEFAULTS[self.METHOD],
                  [LABELS[method] for method in ENDMEMBER_METHODS]),
             "refined (the workflow's): VCA with RESTARTS seeds, the best kept, then alternately FCLS and, per "
             "material, the mean of the FRACTION of the pixels it dominates whose FCLS abundance, averaged over a "
             "WINDOW x WINDOW neighbourhood, is highest; ITERATIONS times. vca-best: VCA with RESTARTS seeds, keeping "
             "the run with the lowest FCLS reconstruction error. nfindr: N-FINDR, the P pixels spanning the largest "
             "simplex, started from VCA. vca: one VCA run, as deepgu:vca."),
            (number(self.SEED, "Random seed", self.DEFAULTS[self.SEED], 0, INT32_MAX),
             "seeds every random step (sample, VCA directions, ties); same seed, same result."),
            (advanced(number(self.RESTARTS, "VCA restarts", self.DEFAULTS[self.RESTARTS], 1, 1000)),
             "VCA runs (refined, vca-best)."),
            (advanced(number(self.FRACTION, "Fraction of its pixels averaged (refined)", self.DEFAULTS[self.FRACTION],
                             0.001, 1.0)),
             "fraction of the pixels a material dominates that are averaged (refined)."),
            (advanced(number(self.WINDOW, "Purity window (pixels, odd; refined)", self.DEFAULTS[self.WINDOW], 1, 99)),
             "side of the neighbourhood over which abundances are averaged (refined)."),
            (advanced(number(self.ITERATIONS, "Refinement iterations", self.DEFAULTS[self.ITERATIONS], 1, 100)),
             "FCLS and averaging rounds at most (refined); they stop when the endmembers change by less than 1e-5."),
            (advanced(number(self.SAMPLE_SIZE, "Pixels sampled (VCA, N-FINDR)", self.DEFAULTS[self.SAMPLE_SIZE], 10,
                             INT32_MAX)),
             "VCA and N-FINDR see a seeded sample of this many pixels; the refinement streams the whole image."),
            (memory_parameter(self.DEFAULTS[self.MEMORY_MB]), MEMORY_HELP),
            (regions_parameter(optional=True), REGIONS_HELP + " With fewer named than ENDMEMBERS, METHOD must be "
             "'refined'."),
            (material_field_parameter(optional=True), MATERIAL_FIELD_HELP),
            (QgsProcessingParameterFileDestination(self.OUTPUT, "Endmembers", "CSV files (*.csv)"),
             "CSV spectral library (EM1..EMP; the materials REGIONS name first, by name), usable wherever "
             "deepgu:vca's output is."),
        ]

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import endmembers as job      # scipy: imported only here (REQUIRES)

        values = self.values(parameters, context)
        job.run(values[self.INPUT], values[self.ENDMEMBERS], values[self.OUTPUT], method=values[self.METHOD],
                seed=values[self.SEED], sample_size=values[self.SAMPLE_SIZE], restarts=values[self.RESTARTS],
                fraction=values[self.FRACTION], window=values[self.WINDOW], iterations=values[self.ITERATIONS],
                memory_mb=values[self.MEMORY_MB], feedback=feedback,
                regions=region_features(self, parameters, context, open_raster(values[self.INPUT], "INPUT").crs_wkt))
        return {self.OUTPUT: values[self.OUTPUT]}
