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
runs code from it.
"""

import hashlib
import io
import os
import pickle
import warnings

import numpy as np
import torch

from .atomic import atomic_output
from .errors import DeepGUError
from .vae import EndmemberModel, MaterialVAE

MAGIC = "DeepGU endmember model"
FORMAT_VERSION = 1
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


def save_model(model, path):
    """Write ``model`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    data = _pack(model)
    with atomic_output(path, "wb", what="model file") as stream:
        torch.save(data, stream)


def _read(path, data=None):
    """``torch.load`` (of ``path``, or of the file's bytes ``data``) restricted to plain data; any failure
    becomes a 'not a DeepGU model file' error."""
    if data is None and not os.path.isfile(path):
        raise DeepGUError("model file %s does not exist" % path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path if data is None else io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        reason = "it is not a torch file of plain model data; nothing in it was run"
    except Exception as exc:  # torch raises RuntimeError, KeyError, EOFError, ... on foreign bytes
        reason = "%s: %s" % (type(exc).__name__, str(exc).split(". ")[0][:120])
    raise DeepGUError("%s is not a DeepGU model file (%s)" % (path, reason))


def _build_vae(path, p, entry, n_bands, latent_dim):
    """One :class:`MaterialVAE` from a material entry, checking its sizes and weight shapes."""
    sizes = [int(s) for s in entry["layer_sizes"]]
    if len(sizes) != 5 or sizes[0] != n_bands or sizes[-1] != latent_dim:
        raise DeepGUError("%s is damaged (material %d has layer sizes %s for %d bands and latent size %d)"
                          % (path, p + 1, sizes, n_bands, latent_dim))
    weights = entry["weights"]
    vae = MaterialVAE(sizes, float(entry["scale"]))
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
        materials = data["materials"]
        missing = [key for entry in materials for key in _MATERIAL_KEYS if key not in entry]
        if missing or not materials:
            raise DeepGUError("%s is damaged (missing %s)" % (path, missing[0] if missing else "materials"))
        vaes = [_build_vae(path, p, entry, n_bands, latent_dim) for p, entry in enumerate(materials)]
        wavelengths = data["wavelengths"]
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
