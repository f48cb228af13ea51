"""Every default a user sees, by algorithm and parameter name, and every choice list (importable without
torch or qgis).

Each algorithm's table (``algorithms/*.py``) takes its parameter defaults from here, the jobs
(``core/jobs/*.py``), their command lines and the array-level functions take theirs from here too,
and ``tests/test_qgis_defaults.py`` checks that every parameter default of every ``deepgu:``
algorithm is the one written here and that its help text says so. Enum parameters are given by
name; a choice list's order is the enum's index order, which headless callers and saved models
use, so new choices go at the end.
"""

from types import MappingProxyType


def _frozen(**values):
    return MappingProxyType(values)


def format_default(value):
    """How help texts show a default: None is 'auto' (the regularisation weights), '' is 'empty'."""
    if value is None:
        return "auto"
    if isinstance(value, float):
        return "%g" % value
    return str(value) if value != "" else "empty"


# Choice lists (enum options, by name, in enum index order).
#: scene kinds of core.evaluation.synthetic (paper Section VII-A).
SCENE_KINDS = ("DC1", "DC2")
#: reference endmember methods of core.extraction.endmembers.
ENDMEMBER_METHODS = ("refined", "vca-best", "nfindr", "vca")
#: bundle methods of core.extraction.bundles.
BUNDLE_METHODS = ("nearest", "angle", "auto", "spatial")
#: VAE reconstruction losses of core.models.vae.
LOSSES = ("bce", "mse")
#: total-variation kinds of the A-step (core.solvers.astep).
TV_KINDS = ("anisotropic", "isotropic", "group")
#: where DeepGU puts a material's change of brightness: in its spectrum (the codes change brightness and shape, the
#: paper's model) or in the abundances (the codes change the shape only, brightness is left to the abundances as
#: in FCLS; core/solvers/latent.py, bench/bench_shape_only.py).
BRIGHTNESS_KINDS = ("spectra", "abundances")
#: where DeepGU runs (core.solvers.unmix.resolve_device).
DEVICES = ("auto", "cpu", "cuda")

#: side (pixels, odd) of the neighbourhood over which abundance purity is averaged (bundles 'spatial', endmembers
#: 'refined').
PURITY_WINDOW = 5
#: pixels VCA and N-FINDR look at, a seeded random sample; smaller scenes are used whole.
SAMPLE_SIZE = 1_000_000
#: MEMORY_MB of the strip-by-strip steps (VCA's sample, endmembers, FCLS, bundles, metrics).
MEMORY_MB = 256

SYNTHETIC = _frozen(KIND="DC1", ROWS=70, COLS=70, MATERIALS=3, SNR=30.0, SEED=0, EPSG=32633)
VCA = _frozen(ENDMEMBERS=3, SEED=0, SAMPLE_SIZE=SAMPLE_SIZE)
ENDMEMBERS = _frozen(ENDMEMBERS=3, METHOD="refined", SEED=0, RESTARTS=12, FRACTION=1 / 3, WINDOW=PURITY_WINDOW,
                     ITERATIONS=30, SAMPLE_SIZE=SAMPLE_SIZE, MEMORY_MB=MEMORY_MB)
FCLS = _frozen(MEMORY_MB=MEMORY_MB, CLUSTER="")
BUNDLES = _frozen(METHOD="nearest", N_PIXELS=100, ANGLE=5.0, WINDOW=PURITY_WINDOW, MIN_PIXELS=10, SEED=0,
                  MEMORY_MB=MEMORY_MB)
#: VAE training: epochs and KL weight (see core/models/vae.py for why they differ from the paper's 50 and 1).
TRAINVAE = _frozen(LATENT_DIM=2, EPOCHS=200, BETA=0.01, LOSS="bce", SEED=0)
SAMPLEVAE = _frozen(SPAN=2.0, STEPS=5)
#: LAMBDA_Z, LAMBDA_A None: 'auto', set from the data (core/solvers/regularisation.py).
UNMIX = _frozen(LAMBDA_Z=None, LAMBDA_A=None, MAX_ITER=10, TOLERANCE=1e-3, TV="anisotropic", BRIGHTNESS="spectra",
                DEVICE="auto", MEMORY_MB=1024, CLUSTER="")
METRICS = _frozen(MEMORY_MB=MEMORY_MB)
#: the workflow model's inputs (scripts/build_workflow_model.py).
WORKFLOW = _frozen(MATERIALS=3, SEED=0, LAMBDA_A=None)
#: the workflow's bundles step (and core.pipeline's): the 200 spatially purest pixels per material, down to the
#: VAE's minimum of 3 for a material that dominates few pixels (bench/bench_table3.py, bench/bench_accuracy.py).
WORKFLOW_BUNDLES = _frozen(METHOD="spatial", N_PIXELS=200, MIN_PIXELS=3)

#: the defaults of each ``deepgu:`` algorithm, by its name.
ALGORITHMS = _frozen(synthetic=SYNTHETIC, vca=VCA, endmembers=ENDMEMBERS, fcls=FCLS, bundles=BUNDLES,
                     trainvae=TRAINVAE, samplevae=SAMPLEVAE, unmix=UNMIX, metrics=METRICS, workflow=WORKFLOW)

# deepgu:install_dependencies (issue 23): empty TARGET is <QGIS profile>/python/dependencies (core/dependencies.py).
INSTALL_DEPENDENCIES = _frozen(TARGET="", FIND_LINKS="", INDEX_URL="")
ALGORITHMS = _frozen(install_dependencies=INSTALL_DEPENDENCIES, **ALGORITHMS)
# --- Analyst regions (issue 22): deepgu:regions, and REGIONS of deepgu:endmembers and the workflow ---
#: MIN_PIXELS: a material with fewer valid pixels inside its regions is refused (its mean would be noise).
REGIONS = _frozen(MIN_PIXELS=5, MEMORY_MB=MEMORY_MB)
ALGORITHMS = _frozen(**ALGORITHMS, regions=REGIONS)
# --- Temporary files (issue 24) -------------------------------------------------------------------------------
#: a ``.deepgu-*`` temporary file whose owner cannot be checked (written from another machine, boot or PID
#: namespace, or where there is no /proc) is swept by a later run into its folder once unchanged this long.
STALE_TEMPORARY_HOURS = 24
# ---------------------------------------------------------------------------------------------------------------
# The paper's parametric variability models (deepgu:elmm, deepgu:glmm, deepgu:plmm; core/solvers/variability_models.py).
#: weights None: 'auto', set from the data (core/solvers/variability_models.py, resolve_weights).
ELMM = _frozen(LAMBDA_S=None, LAMBDA_A=None, LAMBDA_PSI=None, MAX_ITER=100, TOLERANCE=1e-3, MEMORY_MB=1024, CLUSTER="")
GLMM = _frozen(LAMBDA_S=None, LAMBDA_A=None, LAMBDA_PSI=None, MAX_ITER=100, TOLERANCE=1e-3, MEMORY_MB=1024, CLUSTER="")
#: PLMM: at most 20 sweeps, as its authors.
PLMM = _frozen(ALPHA=None, BETA=None, GAMMA=None, MAX_ITER=20, TOLERANCE=1e-3, MEMORY_MB=1024, CLUSTER="")
ALGORITHMS = _frozen(**ALGORITHMS, elmm=ELMM, glmm=GLMM, plmm=PLMM)
# --- deepgu:compare (issue 25): the methods side by side in one HTML report (core/jobs/compare.py) --------------
#: the methods deepgu:compare can run, in the report's column order (enum index order).
COMPARE_METHODS = ("fcls", "plmm", "elmm", "glmm", "deepgu")
#: pixels of the scene (or its EXTENT window) at most: the report holds and shows every map of every method
#: (1000 x 1000 pixels: with 5 methods and 5 materials, about 120 MB of maps in memory).
COMPARE_MAX_PIXELS = 1_000_000
COMPARE = _frozen(MEMORY_MB=1024, CLUSTER="")
ALGORITHMS = _frozen(**ALGORITHMS, compare=COMPARE)
# --- Smooth variability for DeepGU (issue 25 item 4; docs/smooth_variability.md) ---------------------------------
#: CODE_SMOOTHING: weight of the spatial prior on the whitened latent codes (0: off, today's solver; None: auto);
#: START: where the codes and abundances start (the choices of UNMIX_STARTS). Options of core.solvers.unmix (the bench
#: bench/bench_smooth_variability.py measures them); not parameters of deepgu:unmix, as neither won on the suite.
UNMIX_STARTS = ("fcls", "elmm")
UNMIX_SMOOTH = _frozen(CODE_SMOOTHING=0.0, START="fcls")
