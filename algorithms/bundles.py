"""deepgu:bundles - the purest pixels of each material, for training its VAE."""

from qgis.core import QgsProcessingParameterFeatureSink

from ..core import defaults
from ..core.defaults import BUNDLE_METHODS
from ..core.validation import INT32_MAX, MAX_ANGLE_PIXELS
from . import compat
from .base import (MEMORY_HELP, DeepGUAlgorithm, advanced, enum, library_destination, library_parameter,
                   memory_parameter, number, write_pixel_points, raster_input)

#: how the dialog shows each of :data:`core.defaults.BUNDLE_METHODS`.
LABELS = {"nearest": "nearest pixels", "angle": "within an angle", "auto": "automated (VCA on subsets)",
          "spatial": "spatially pure (needs abundances)"}


class BundlesAlgorithm(DeepGUAlgorithm):
    INPUT, ENDMEMBERS, METHOD, N_PIXELS, ANGLE = "INPUT", "ENDMEMBERS", "METHOD", "N_PIXELS", "ANGLE"
    ABUNDANCES, WINDOW, MIN_PIXELS, SEED, MEMORY_MB = "ABUNDANCES", "WINDOW", "MIN_PIXELS", "SEED", "MEMORY_MB"
    OUTPUT, OUTPUT_POINTS = "OUTPUT", "OUTPUT_POINTS"
    REQUIRES = ("scipy",)
    NAME, LABEL, DEFAULTS = "bundles", "Extract endmember bundles", defaults.BUNDLES
    HELP = ("Collects, for every reference material, the image pixels that best represent it: the training set of "
            "that material's variability model (DeepGU, Algorithm 1 step 3). A pixel belongs to at most one material "
            "(the one with the smallest spectral angle).")

    def table(self):
        return [
            (raster_input(self.INPUT, "Hyperspectral image"), "multiband raster."),
            (library_parameter(self.ENDMEMBERS, "Reference endmembers (CSV or ENVI .sli)"),
             "library of reference spectra (e.g. from VCA)."),
            (enum(self.METHOD, "Method", BUNDLE_METHODS, self.DEFAULTS[self.METHOD],
                  [LABELS[method] for method in BUNDLE_METHODS]),
             "nearest: the N_PIXELS pixels with the smallest spectral angle to each reference (the paper's choice); "
             "angle: all pixels within ANGLE degrees (at most %d per material); auto: VCA on random subsets of the "
             "image, extracted pixels within ANGLE degrees of a reference join its bundle (after Somers et al. "
             "2012); spatial: pixels inside homogeneous regions, the N_PIXELS pixels whose abundance of the material "
             "(ABUNDANCES, e.g. the FCLS output), averaged over a WINDOW x WINDOW neighbourhood, is highest. "
             "'spatial' is what the DeepGU workflow uses: on scenes whose spectra vary in shape from pixel to pixel, "
             "the smallest angle prefers pixels that look like the reference and mixed pixels over pure pixels that "
             "vary, and the VAE then learns too little variability (bench/bench_table3.py)." % MAX_ANGLE_PIXELS),
            (number(self.N_PIXELS, "Pixels per material (nearest, spatial)", self.DEFAULTS[self.N_PIXELS], 1,
                    INT32_MAX),
             "bundle size of 'nearest' and 'spatial'."),
            (number(self.ANGLE, "Maximum spectral angle (degrees)", self.DEFAULTS[self.ANGLE], 0.001, 90.0),
             "largest angle to the reference of 'angle' and 'auto'."),
            (raster_input(self.ABUNDANCES, "Abundances (spatial)", optional=True),
             "abundance raster on the image's grid, one band per material (required by 'spatial')."),
            (advanced(number(self.WINDOW, "Purity window (pixels, odd; spatial)", self.DEFAULTS[self.WINDOW], 1, 99)),
             "side of the neighbourhood over which 'spatial' averages the abundances."),
            (advanced(number(self.MIN_PIXELS, "Fewest pixels per material", self.DEFAULTS[self.MIN_PIXELS], 1,
                             INT32_MAX)),
             "a material with fewer bundle pixels is an error."),
            (advanced(number(self.SEED, "Random seed", self.DEFAULTS[self.SEED], 0, INT32_MAX)),
             "for 'auto', and the ties of 'spatial'."),
            (memory_parameter(self.DEFAULTS[self.MEMORY_MB]), MEMORY_HELP),
            (library_destination(self.OUTPUT, "Bundles"),
             "bundle library: one spectrum per pixel, headed by its material, with its row and col."),
            (QgsProcessingParameterFeatureSink(self.OUTPUT_POINTS, "Bundle pixels", compat.SOURCE_VECTOR_POINT,
                                               optional=True, createByDefault=False),
             "point layer of the bundle pixels with a 'material' attribute."),
        ]

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import bundles as job      # scipy: imported only here (REQUIRES)

        values = self.values(parameters, context)
        materials, rows, cols, info = job.run(
            values[self.INPUT], values[self.ENDMEMBERS], values[self.OUTPUT], method=values[self.METHOD],
            n_pixels=values[self.N_PIXELS], max_angle_deg=values[self.ANGLE], min_pixels=values[self.MIN_PIXELS],
            seed=values[self.SEED], memory_mb=values[self.MEMORY_MB], abundances_path=values[self.ABUNDANCES],
            window=values[self.WINDOW], feedback=feedback)
        points = write_pixel_points(self, parameters, self.OUTPUT_POINTS, context, info, materials, rows, cols)
        return {self.OUTPUT: values[self.OUTPUT], self.OUTPUT_POINTS: points}
