"""Save and load a trained :class:`~.vae.EndmemberModel` as one file.

The file is ``torch.save`` of a plain dict (strings, numbers, lists, tensors)::

    magic           MAGIC, marks a DeepGU model
    format_version  FORMAT_VERSION
    checksum        SHA-256 of every other entry (see _digest), catches damaged bytes
    n_bands, latent_dim, wavelengths (L,) float64 tensor or None
    materials       list over materials of dicts:
                    name, layer_sizes [L, h1, h2, h3, K], scale, m0 (L,) float64, z0 (K,) in the weights' dtype,
                    bundle_size, loss_curve (epochs,), weights {parameter name: tensor},
                    code_spread (K, K) (optional: files without it decode with the identity)

It is read with ``torch.load(..., weights_only=True)``, which rebuilds only
such plain data and refuses any other pickled object, so opening a file never
runs code from it. Before loading, the file and the uncompressed size its zip
directory declares must be at most :data:`MAX_MODEL_BYTES` (a zip bomb is
refused unread); before any network is built, its declared sizes must be the
ones :func:`.vae.encoder_sizes` gives for at most :data:`MAX_MODEL_BANDS`
bands, latent size at most :data:`MAX_LATENT` and at most
:data:`.validation.MAX_MATERIALS` materials; weights, scales, reference spectra
and codes must be finite.
"""

import hashlib
import io
import os
import pickle
import warnings
import zipfile

import numpy as np
import torch

from ..files.atomic import atomic_output
from ..errors import DeepGUError
from ..validation import MAX_LATENT, MAX_MATERIALS
from .vae import EndmemberModel, MaterialVAE, encoder_sizes

MAGIC = "DeepGU endmember model"
FORMAT_VERSION = 1
#: largest model file, and largest uncompressed content, read.
MAX_MODEL_BYTES = 512 * 2 ** 20
#: most bands and latent dimensions a model file may declare.
MAX_MODEL_BANDS = 1024
_MATERIAL_KEYS = ("name", "layer_sizes", "scale", "m0", "z0", "bundle_size", "loss_curve", "weights")


def _digest(value, hasher=None):
    """SHA-256 hex digest of nested dicts/lists of tensors, strings and numbers (order-independent for dicts)."""
    hasher = hasher or hashlib.sha256()
    if isinstance(value, dict):
        hasher.update(b"{%d" % len(value))
        for key in sorted(value):
            hasher.update(repr(key).encode())
            _digest(value[key], hasher)
    elif isinstance(value, (list, tuple)):
        hasher.update(b"[%d" % len(value))
        for item in value:
            _digest(item, hasher)
    elif isinstance(value, torch.Tensor):
        array = value.detach().cpu().contiguous().numpy()
        hasher.update(("%s%s" % (array.dtype.str, array.shape)).encode())
        hasher.update(array.tobytes())
    else:
        hasher.update(("%s:%r" % (type(value).__name__, value)).encode())
    return hasher.hexdigest()


def _tensor(array):
    return torch.from_numpy(np.array(array, dtype=np.float64))


def _pack(model):
    """The model as a plain dict (see the module docstring)."""
    materials = [
        {
            "name": model.names[p],
            "layer_sizes": list(vae.sizes),
            "scale": float(vae.scale),
            "m0": _tensor(model.m0[:, p]),
            "z0": model.z0[p].detach().cpu().clone(),
            "bundle_size": int(model.bundle_sizes[p]),
            "loss_curve": _tensor(model.loss_curves[p]),
            "weights": {key: value.detach().cpu().clone() for key, value in vae.state_dict().items()},
            "code_spread": model.code_spread[p].detach().cpu().clone(),
        }
        for p, vae in enumerate(model.vaes)
    ]
    data = {
        "magic": MAGIC,
        "format_version": FORMAT_VERSION,
        "n_bands": int(model.n_bands),
        "latent_dim": int(model.latent_dim),
        "wavelengths": None if model.wavelengths is None else _tensor(model.wavelengths),
        "materials": materials,
    }
    data["checksum"] = _digest(data)
    return data


def save_model(model, path, what="OUTPUT"):
    """Write ``model`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    data = _pack(model)
    with atomic_output(path, "wb", what=what) as stream:
        try:
            torch.save(data, stream)
        except RuntimeError as exc:     # torch's zip writer reports a failed write (a full disk) as RuntimeError
            raise OSError(str(exc).split("\n")[0]) from None


def _read(path, data=None):
    """``torch.load`` (of ``path``, or of the file's bytes ``data``) restricted to plain data; any failure
    becomes a 'not a DeepGU model file' error."""
    if data is None and not os.path.isfile(path):
        raise DeepGUError("model file %s does not exist" % path)
    _check_size(path if data is None else io.BytesIO(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = "it is not a torch file of plain model data; nothing in it was run"
    except Exception as exc:  # torch raises RuntimeError, KeyError, EOFError, ... on foreign bytes
        reason = "%s: %s" % (type(exc).__name__, str(exc).split(". ")[0][:120])
    raise DeepGUError("%s is not a DeepGU model file (%s)" % (path, reason))


def _check_size(source):
    """Refuse a file (a path or a bytes stream), or a zip whose entries declare an uncompressed size, beyond
    :data:`MAX_MODEL_BYTES`."""
    path = source if isinstance(source, str) else "model file"
    size = os.path.getsize(source) if isinstance(source, str) else source.getbuffer().nbytes
    if zipfile.is_zipfile(source):
        try:
            with zipfile.ZipFile(source) as archive:
                size = max(size, sum(entry.file_size for entry in archive.infolist()))
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise DeepGUError("%s is not a DeepGU model file (%s)" % (path, exc)) from None
    if size > MAX_MODEL_BYTES:
        raise DeepGUError("%s is not a DeepGU model file: it holds %d MiB, more than the %d MiB a model can need"
                          % (path, size // 2 ** 20, MAX_MODEL_BYTES // 2 ** 20))


def _check_finite(path, p, what, value):
    if not bool(torch.all(torch.isfinite(torch.as_tensor(value)))):
        raise DeepGUError("%s is damaged (material %d has non-finite %s)" % (path, p + 1, what))


def _build_vae(path, p, entry, n_bands, latent_dim):
    """One :class:`MaterialVAE` from a material entry, checking its sizes before building and its weights after."""
    sizes = [int(s) for s in entry["layer_sizes"]]
    if sizes != list(encoder_sizes(n_bands, latent_dim)):
        raise DeepGUError("%s is damaged (material %d has layer sizes %s for %d bands and latent size %d)"
                          % (path, p + 1, sizes, n_bands, latent_dim))
    weights = entry["weights"]
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise DeepGUError("%s is damaged (weights of material %d are not tensors)" % (path, p + 1))
    scale = float(entry["scale"])
    if not (np.isfinite(scale) and scale > 0):
        raise DeepGUError("%s is damaged (material %d has scale %r)" % (path, p + 1, scale))
    for key, value in weights.items():
        _check_finite(path, p, "weights (%s)" % key, value)
    for key in ("m0", "z0"):
        _check_finite(path, p, key, entry[key])
    vae = MaterialVAE(sizes, scale)
    expected = {key: tuple(value.shape) for key, value in vae.state_dict().items()}
    found = {key: tuple(value.shape) for key, value in weights.items()}
    if found != expected:
        wrong = sorted(set(expected.items()) ^ set(found.items()))[0][0]
        raise DeepGUError("%s is damaged (weights of material %d do not match layer sizes %s: %s)"
                          % (path, p + 1, sizes, wrong))
    vae.to(dtype=next(iter(weights.values())).dtype)
    vae.load_state_dict(weights)
    return vae.eval().requires_grad_(False)


def _code_spread(path, materials, latent_dim):
    """(P, K, K) code spread of the material entries, None when the file has none; checked finite and regular."""
    if not all("code_spread" in entry for entry in materials):
        return None
    spread = torch.stack([torch.as_tensor(entry["code_spread"], dtype=torch.float64) for entry in materials])
    if spread.shape[1:] != (latent_dim, latent_dim):
        raise DeepGUError("%s is damaged (code spread of shape %s for latent size %d)"
                          % (path, tuple(spread.shape[1:]), latent_dim))
    diagonal = torch.diagonal(spread, dim1=1, dim2=2)
    if not bool(torch.isfinite(spread).all()) or not bool((diagonal > 0).all()):
        raise DeepGUError("%s is damaged (code spread not finite or not positive)" % path)
    return spread


def load_model(path, data=None):
    """Read a model written by :func:`save_model`; raises :class:`DeepGUError` on any foreign or damaged file.

    ``data``: the file's bytes, already read (a cluster worker gets them from the driver); ``path``
    then only names the file in messages.
    """
    data = _read(path, data)
    if not isinstance(data, dict) or data.get("magic") != MAGIC:
        raise DeepGUError("%s is not a DeepGU model file (no DeepGU model marker)" % path)
    if data.get("format_version") != FORMAT_VERSION:
        raise DeepGUError("%s has model format version %s, but this version of DeepGU reads version %d"
                          % (path, data.get("format_version"), FORMAT_VERSION))
    stored = data.pop("checksum", None)
    if stored != _digest(data):
        raise DeepGUError("%s is damaged (checksum mismatch)" % path)
    try:
        n_bands, latent_dim = int(data["n_bands"]), int(data["latent_dim"])
        if not (1 <= n_bands <= MAX_MODEL_BANDS and 1 <= latent_dim <= MAX_LATENT):
            raise DeepGUError("%s is damaged (it declares %d bands and latent size %d; at most %d and %d)"
                              % (path, n_bands, latent_dim, MAX_MODEL_BANDS, MAX_LATENT))
        materials = data["materials"]
        if not isinstance(materials, list) or len(materials) > MAX_MATERIALS:
            raise DeepGUError("%s is damaged (materials: a list of at most %d expected)" % (path, MAX_MATERIALS))
        missing = [key for entry in materials for key in _MATERIAL_KEYS if key not in entry]
        if missing or not materials:
            raise DeepGUError("%s is damaged (missing %s)" % (path, missing[0] if missing else "materials"))
        wavelengths = data["wavelengths"]
        if wavelengths is not None and (tuple(wavelengths.shape) != (n_bands,)
                                        or not bool(torch.all(torch.isfinite(wavelengths)))):
            raise DeepGUError("%s is damaged (%d wavelengths for %d bands, or non-finite ones)"
                              % (path, wavelengths.numel(), n_bands))
        vaes = [_build_vae(path, p, entry, n_bands, latent_dim) for p, entry in enumerate(materials)]
        return EndmemberModel(
            vaes,
            m0=np.stack([entry["m0"].numpy() for entry in materials], axis=1),
            z0=torch.stack([entry["z0"] for entry in materials]),
            names=[entry["name"] for entry in materials],
            wavelengths=None if wavelengths is None else wavelengths.numpy(),
            loss_curves=[entry["loss_curve"].numpy() for entry in materials],
            bundle_sizes=[int(entry["bundle_size"]) for entry in materials],
            code_spread=_code_spread(path, materials, latent_dim),
        )
    except DeepGUError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise DeepGUError("%s is damaged (%s: %s)" % (path, type(exc).__name__, exc)) from None


def check_compatible(model, n_bands, wavelengths=None, tolerance_nm=1.0):
    """Raise :class:`DeepGUError` unless ``model`` fits an image of ``n_bands`` bands (and ``wavelengths``, nm).

    Wavelengths are compared only when both the model and the caller have
    them, in the units given, allowing ``tolerance_nm`` of difference.
    """
    if model.n_bands != n_bands:
        raise DeepGUError("model has %d bands but the image has %d" % (model.n_bands, n_bands))
    if model.wavelengths is not None and wavelengths is not None:
        if np.shape(wavelengths) != (n_bands,):
            raise DeepGUError("got %d wavelengths for %d bands" % (np.size(wavelengths), n_bands))
        gap = float(np.max(np.abs(model.wavelengths - np.asarray(wavelengths, dtype=np.float64))))
        if gap > tolerance_nm:
            raise DeepGUError("wavelengths differ (max difference %.3g nm) between the model and the image" % gap)
