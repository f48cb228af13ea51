"""deepgu:elmm, deepgu:glmm, deepgu:plmm - the paper's parametric endmember-variability models (Table III)."""

from qgis.core import QgsProcessingParameterRasterDestination

from ..core import defaults
from ..core.validation import MAX_ITERATIONS, MAX_LAMBDA
from .base import (CLUSTER_HELP, EXTENT_HELP, DeepGUAlgorithm, cluster_parameter, extent_parameter, library_parameter,
                   memory_parameter, number, write_abundance_style, raster_input)

AUTO_HELP = ("empty: set from the data (core/solvers/variability_models.py), so it follows the data's units and "
             "band count; the log states the value used. A number overrides it")


class VariabilityAlgorithm(DeepGUAlgorithm):
    """What the three share; subclasses set METHOD, NAME, LABEL, HELP, DEFAULTS, WEIGHTS (rows of (key, label,
    description)) and VARIABILITY (the label and description of OUTPUT_VARIABILITY)."""

    INPUT, ENDMEMBERS, INIT_ABUNDANCES, EXTENT = "INPUT", "ENDMEMBERS", "INIT_ABUNDANCES", "EXTENT"
    MAX_ITER, TOLERANCE, MEMORY_MB, CLUSTER = "MAX_ITER", "TOLERANCE", "MEMORY_MB", "CLUSTER"
    OUTPUT, OUTPUT_ENDMEMBERS, OUTPUT_VARIABILITY, OUTPUT_RMSE = ("OUTPUT", "OUTPUT_ENDMEMBERS", "OUTPUT_VARIABILITY",
                                                                  "OUTPUT_RMSE")
    needs_torch = True
    METHOD = ""
    WEIGHTS = ()
    VARIABILITY = ("", "")

    def table(self):
        weights = [(number(key, label, self.DEFAULTS[key], 0.0, MAX_LAMBDA, optional=True, double=True),
                    "%s; %s." % (description, AUTO_HELP)) for key, label, description in self.WEIGHTS]
        return [
            (raster_input(self.INPUT, "Hyperspectral image"), "multiband raster."),
            (library_parameter(self.ENDMEMBERS, "Reference endmembers (CSV or ENVI .sli)"),
             "the references M0 (e.g. from 'Extract endmembers'), one spectrum per material, with the raster's band "
             "count (and wavelengths, when both have them)."),
            (raster_input(self.INIT_ABUNDANCES, "Initial abundances", optional=True),
             "starting abundances (of INPUT's size, or of EXTENT's window); empty: FCLS with the references."),
            (extent_parameter(), EXTENT_HELP),
        ] + weights + [
            (number(self.MAX_ITER, "Maximum iterations", self.DEFAULTS[self.MAX_ITER], 1, MAX_ITERATIONS),
             "alternations of the method's steps at most."),
            (number(self.TOLERANCE, "Tolerance", self.DEFAULTS[self.TOLERANCE], 0.0, 1.0),
             "the alternations stop when the relative changes of the abundances and of the variability are both "
             "below it."),
            (memory_parameter(self.DEFAULTS[self.MEMORY_MB]),
             "the image is solved in square tiles of about this working size (MB), each with an 8-pixel overlap so "
             "the smoothing leaves no seams; without CLUSTER, one tile per CPU core is solved at a time."),
            (cluster_parameter(self.DEFAULTS[self.CLUSTER]), CLUSTER_HELP),
            (QgsProcessingParameterRasterDestination(self.OUTPUT, "Abundances"),
             "abundances, one band per material named after it; nodata where the input is nodata."),
            (QgsProcessingParameterRasterDestination(self.OUTPUT_ENDMEMBERS, "Per-pixel endmembers", optional=True,
                                                     createByDefault=False),
             "the per-pixel endmember spectra, materials x bands (material-major)."),
            (QgsProcessingParameterRasterDestination(self.OUTPUT_VARIABILITY, self.VARIABILITY[0], optional=True,
                                                     createByDefault=False), self.VARIABILITY[1]),
            (QgsProcessingParameterRasterDestination(self.OUTPUT_RMSE, "Reconstruction RMSE", optional=True,
                                                     createByDefault=False),
             "per-pixel reconstruction RMSE sqrt(mean_l (y - M_n a)^2)."),
        ]

    def run_job(self, parameters, context, feedback):
        from ..core.jobs import variability as job

        values = self.values(parameters, context)
        settings = job.VariabilitySettings(
            self.METHOD, {key.lower(): values[key] for key, _, _ in self.WEIGHTS}, max_iter=values[self.MAX_ITER],
            tol=values[self.TOLERANCE], memory_mb=values[self.MEMORY_MB], cluster=values[self.CLUSTER])
        outputs = {key: values[key] for key in (self.OUTPUT, self.OUTPUT_ENDMEMBERS, self.OUTPUT_VARIABILITY,
                                                self.OUTPUT_RMSE)}
        job.run(values[self.INPUT], values[self.ENDMEMBERS], outputs[self.OUTPUT], settings,
                init_abundances=values[self.INIT_ABUNDANCES], output_endmembers=outputs[self.OUTPUT_ENDMEMBERS],
                output_variability=outputs[self.OUTPUT_VARIABILITY], output_rmse=outputs[self.OUTPUT_RMSE],
                window=self.pixel_window(parameters, context, values[self.INPUT]), feedback=feedback)
        write_abundance_style(outputs[self.OUTPUT])
        return outputs


_TIE_AND_TV = (
    ("LAMBDA_S", "Endmember tie (lambda_S; empty = auto)",
     "weight of the per-pixel endmembers' distance to the scaled references (dimensionless; auto: 1)"),
    ("LAMBDA_A", "Spatial smoothing (lambda_A; empty = auto)",
     "weight of the total variation of the abundance maps (auto: as deepgu:unmix's)"),
)
_PSI_LABEL = "Scaling-factor smoothness (lambda_psi; empty = auto)"


class ELMMAlgorithm(VariabilityAlgorithm):
    METHOD, NAME, LABEL, DEFAULTS = "elmm", "elmm", "Unmix with scaled endmembers (ELMM)", defaults.ELMM
    HELP = ("Extended linear mixing model (Drumetz et al. 2016): every pixel's endmembers are the references scaled "
            "by one factor per material, smooth in space, plus a small free part: minimises 1/2 ||y - S a||^2 + "
            "LAMBDA_S/2 ||S - M0 diag(psi)||^2 + LAMBDA_A TV(A) + LAMBDA_PSI/2 ||grad psi||^2 with the abundances on "
            "the simplex; the abundance step is deepgu:unmix's. Needs PyTorch. Nodata pixels stay nodata.")
    WEIGHTS = _TIE_AND_TV + (("LAMBDA_PSI", _PSI_LABEL, "weight of the squared spatial differences of the scaling "
                              "factors (auto: 1000 x the median squared FCLS residual per pixel)"),)
    VARIABILITY = ("Scaling factors", "the scaling factor psi of every material (P bands).")


class GLMMAlgorithm(VariabilityAlgorithm):
    METHOD, NAME, LABEL, DEFAULTS = "glmm", "glmm", "Unmix with band-wise scaled endmembers (GLMM)", defaults.GLMM
    HELP = ("Generalised linear mixing model (Imbiriba et al. 2018): as ELMM with one scaling factor per material "
            "and band, M0 (.) Psi, each smooth in space. Needs PyTorch. Nodata pixels stay nodata.")
    WEIGHTS = _TIE_AND_TV + (("LAMBDA_PSI", _PSI_LABEL, "weight of the squared spatial differences of the scaling "
                              "factors (auto: 1000 x the median squared FCLS residual per pixel and band)"),)
    VARIABILITY = ("Scaling factors", "the scaling factor of every material and band (materials x bands, "
                                      "material-major).")


class PLMMAlgorithm(VariabilityAlgorithm):
    METHOD, NAME, LABEL, DEFAULTS = "plmm", "plmm", "Unmix with perturbed endmembers (PLMM)", defaults.PLMM
    HELP = ("Perturbed linear mixing model (Thouvenin et al. 2016): every pixel's endmembers are a shared matrix M "
            "plus a perturbation dM_n: minimises 1/2 ||y - (M + dM_n) a||^2 + ALPHA/2 ||grad A||^2 + BETA/2 "
            "||M - M0||^2 (per pixel) + GAMMA/2 ||dM_n||^2 with the abundances on the simplex (the positivity "
            "constraints on M and M + dM_n are left out); the abundance step is deepgu:unmix's with a quadratic "
            "smoothness. Each tile estimates its own M. Needs PyTorch. Nodata pixels stay nodata.")
    WEIGHTS = (
        ("ALPHA", "Abundance smoothness (alpha; empty = auto)",
         "weight of the squared spatial differences of the abundance maps (auto: 0.01 x the data's curvature on the "
         "simplex)"),
        ("BETA", "Endmember prior (beta; empty = auto)",
         "weight per pixel of the shared endmembers' distance to the references (dimensionless; auto: 1)"),
        ("GAMMA", "Perturbation penalty (gamma; empty = auto)",
         "weight of the per-pixel perturbations' energy (dimensionless; auto: 1)"),
    )
    VARIABILITY = ("Perturbation norms", "the Frobenius norm of each material's perturbation, ||dM_n||, per pixel "
                                         "(P bands, the data's units).")
