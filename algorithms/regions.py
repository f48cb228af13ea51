"""deepgu:regions - reference spectra from polygons or points an analyst drew over pure areas."""

from qgis.core import QgsProcessingParameterFileDestination

from ..core import defaults
from ..core.jobs import regions as job
from ..core.files.raster_io import open_raster
from ..core.validation import INT32_MAX
from .base import (LIBRARY_OUTPUT_FILTER, MEMORY_HELP, DeepGUAlgorithm, library_destination,
                   material_field_parameter, memory_parameter, number, region_features, regions_parameter, raster_input)


class RegionsAlgorithm(DeepGUAlgorithm):
    INPUT, REGIONS, MATERIAL_FIELD, MIN_PIXELS = "INPUT", "REGIONS", "MATERIAL_FIELD", "MIN_PIXELS"
    MEMORY_MB, OUTPUT, OUTPUT_BUNDLES = "MEMORY_MB", "OUTPUT", "OUTPUT_BUNDLES"
    NAME, LABEL, DEFAULTS = "regions", "Reference spectra from regions", defaults.REGIONS
    HELP = ("Draw polygons (or points) over areas you know to be pure - a stretch of road, a field, a lake - with a "
            "field naming each one's material, and this gives one reference spectrum per material: what FCLS, the "
            "bundles and the DeepGU prior are anchored to. Use it where the extracted references are wrong: two "
            "close materials merged, a rare material (a few pixels wide, a small share of the scene) missed, a "
            "dark material split. The reference is the trimmed mean of the pixels: the mean of the 90 % nearest "
            "to their band-wise median. The mean keeps the material's typical brightness (which matters to FCLS as "
            "much as the shape); the trim drops stray pixels an outline lets in. deepgu:endmembers and the workflow "
            "take the same REGIONS and extract any further materials with these held fixed (docs/regions.md).")

    def table(self):
        return [
            (raster_input(self.INPUT, "Hyperspectral image"),
             "multiband raster; nodata and NaN pixels are skipped. Only the windows under the features are read."),
            (regions_parameter(optional=False),
             "polygons (a pixel belongs when its centre is inside; holes and multi-part features as drawn) or points "
             "(the pixel containing the point), in any CRS (reprojected to INPUT's). A pixel inside regions of two "
             "materials is left out of both."),
            (material_field_parameter(optional=False), "the field naming each feature's material (text or number)."),
            (number(self.MIN_PIXELS, "Fewest pixels per material", self.DEFAULTS[self.MIN_PIXELS], 1, INT32_MAX),
             "a material with fewer valid pixels inside its regions is an error."),
            (memory_parameter(self.DEFAULTS[self.MEMORY_MB]),
             MEMORY_HELP + " The region pixels are kept in memory: at most this much."),
            (library_destination(self.OUTPUT, "Reference spectra"),
             "library of one spectrum per material, named as in MATERIAL_FIELD (CSV or ENVI .sli)."),
            (QgsProcessingParameterFileDestination(self.OUTPUT_BUNDLES, "Region pixels (bundles)",
                                                   LIBRARY_OUTPUT_FILTER, optional=True, createByDefault=False),
             "optional: every region pixel with its material, row and col: a bundle file, as deepgu:bundles writes."),
        ]

    def run_job(self, parameters, context, feedback):
        values = self.values(parameters, context)
        info = open_raster(values[self.INPUT], "INPUT")
        regions = region_features(self, parameters, context, info.crs_wkt)
        job.run(values[self.INPUT], regions, values[self.OUTPUT], values[self.OUTPUT_BUNDLES],
                min_pixels=values[self.MIN_PIXELS], memory_mb=values[self.MEMORY_MB], feedback=feedback)
        return {self.OUTPUT: values[self.OUTPUT], self.OUTPUT_BUNDLES: values[self.OUTPUT_BUNDLES]}
