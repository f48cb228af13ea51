"""The options of a DeepGU unmixing run, checked once (importable without torch)."""

from dataclasses import dataclass

from ..defaults import BRIGHTNESS_KINDS, TV_KINDS, UNMIX, UNMIX_SMOOTH, UNMIX_STARTS
from ..errors import DeepGUError
from .regularisation import is_auto
from ..validation import MAX_ITERATIONS, MAX_LAMBDA, MAX_MEMORY_MB, finite, integer


def _weight(name, value):
    """A regularisation weight: None for 'auto' (None or ``"auto"``), otherwise a finite number in
    ``[0, MAX_LAMBDA]``."""
    return None if is_auto(value) else finite(name, value, 0, MAX_LAMBDA)


@dataclass(frozen=True)
class UnmixSettings:
    """What ``deepgu:unmix`` lets a user choose (defaults: :data:`core.defaults.UNMIX`), validated on creation
    with messages naming the Processing parameter.

    - ``lambda_z``, ``lambda_a``: regularisation weights in ``[0, MAX_LAMBDA]``, or None (``"auto"`` is
      taken as None): set from the data (:mod:`core.solvers.regularisation`);
    - ``max_iter``: outer iterations at most, ``tol``: relative change of A and Z that stops them (in ``(0, 1]``);
    - ``tv``: one of :data:`core.defaults.TV_KINDS`; ``brightness``: one of :data:`core.defaults.BRIGHTNESS_KINDS`
      (``abundances``: the codes change each spectrum's shape only, :class:`.latent.WhitenedModel`);
      ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
      (checked against the machine by :func:`core.solvers.unmix.resolve_device`);
    - ``memory_mb``: working memory per tile and ``cluster``: where the tiles are solved
      (:func:`core.running.cluster.parse_cluster`); only the file job (:mod:`core.jobs.unmix`) uses these two;
    - ``code_smoothing``: weight lambda_S of the spatial prior on the latent codes (:mod:`.smooth_zstep`), a
      number in ``[0, MAX_LAMBDA]`` (0: off) or None (``"auto"``); ``start``: one of
      :data:`core.defaults.UNMIX_STARTS` (``elmm``: abundances and codes start from ELMM's solution).
    """

    lambda_z: object = UNMIX["LAMBDA_Z"]
    lambda_a: object = UNMIX["LAMBDA_A"]
    max_iter: int = UNMIX["MAX_ITER"]
    tol: float = UNMIX["TOLERANCE"]
    tv: str = UNMIX["TV"]
    brightness: str = UNMIX["BRIGHTNESS"]
    device: str = UNMIX["DEVICE"]
    memory_mb: float = UNMIX["MEMORY_MB"]
    cluster: str = UNMIX["CLUSTER"]
    code_smoothing: object = UNMIX_SMOOTH["CODE_SMOOTHING"]
    start: str = UNMIX_SMOOTH["START"]

    def __post_init__(self):
        if self.tv not in TV_KINDS:
            raise DeepGUError("TV must be one of %s (got %r)" % (", ".join(TV_KINDS), self.tv))
        if self.brightness not in BRIGHTNESS_KINDS:
            raise DeepGUError("BRIGHTNESS must be one of %s (got %r)" % (", ".join(BRIGHTNESS_KINDS), self.brightness))
        if self.start not in UNMIX_STARTS:
            raise DeepGUError("START must be one of %s (got %r)" % (", ".join(UNMIX_STARTS), self.start))
        checked = dict(lambda_z=_weight("LAMBDA_Z", self.lambda_z), lambda_a=_weight("LAMBDA_A", self.lambda_a),
                       code_smoothing=_weight("CODE_SMOOTHING", self.code_smoothing),
                       max_iter=integer("MAX_ITER", self.max_iter, 1, MAX_ITERATIONS),
                       tol=finite("TOLERANCE", self.tol, 0, 1, low_open=True),
                       device=str(self.device).strip().lower(),
                       memory_mb=finite("MEMORY_MB", self.memory_mb, 0, MAX_MEMORY_MB, low_open=True),
                       cluster=(self.cluster or "").strip())
        for name, value in checked.items():
            object.__setattr__(self, name, value)      # frozen: the checked values replace the given ones
