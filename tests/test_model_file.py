"""Model file: bit-exact round trip, damaged/foreign/malicious files rejected, compatibility checks."""

import os
import pickle

import numpy as np
import pytest
import torch

from core.errors import DeepGUError
from core.models.model_file import FORMAT_VERSION, MAGIC, _digest, check_compatible, load_model, save_model
from core.models.vae import train_endmember_model

L = 30


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    m0 = rng.uniform(0.2, 0.8, (L, 2))
    bundles = [m0[:, [p]] * rng.uniform(0.8, 1.2, (1, 15)) for p in range(2)]
    return train_endmember_model(bundles, m0, ["soil", "tree"], wavelengths=np.linspace(400.0, 1000.0, L), epochs=3)


@pytest.fixture
def saved(model, tmp_path):
    path = str(tmp_path / "model.pt")
    save_model(model, path)
    return path


def assert_same(a, b):
    assert a.names == b.names
    np.testing.assert_array_equal(a.m0, b.m0)
    np.testing.assert_array_equal(a.wavelengths, b.wavelengths)
    np.testing.assert_array_equal(a.scales, b.scales)
    np.testing.assert_array_equal(a.bundle_sizes, b.bundle_sizes)
    assert torch.equal(a.z0, b.z0)
    for ca, cb in zip(a.loss_curves, b.loss_curves):
        np.testing.assert_array_equal(ca, cb)
    for va, vb in zip(a.vaes, b.vaes):
        assert va.sizes == vb.sizes
        for (name, wa), wb in zip(va.state_dict().items(), vb.state_dict().values()):
            assert torch.equal(wa, wb), name
    z = torch.randn(9, 2, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.decode(z), b.decode(z))


def rewrite(path, edit):
    """Load the raw dict, apply ``edit``, save it again (checksum recomputed)."""
    data = torch.load(path, weights_only=True)
    edit(data)
    data.pop("checksum")
    data["checksum"] = _digest(data)
    torch.save(data, path)


def test_round_trip_is_bit_exact(model, saved, tmp_path):
    loaded = load_model(saved)
    assert_same(model, loaded)
    assert [f for f in os.listdir(tmp_path) if f != "model.pt"] == []  # no temporary file left
    save_model(loaded, saved)  # overwrite in place
    assert_same(model, load_model(saved))


def test_float64_model_round_trips(model, tmp_path):
    path = str(tmp_path / "m64.pt")
    save_model(model, path)
    copy = load_model(path).to(dtype=torch.float64)
    save_model(copy, path)
    loaded = load_model(path)
    assert loaded.z0.dtype == torch.float64
    assert_same(copy, loaded)


def test_flipped_bytes_never_load_silently(model, saved):
    original = open(saved, "rb").read()
    weight = model.vaes[1].output.weight.detach().numpy().tobytes()
    in_weights = original.find(weight[:64])
    assert in_weights > 0
    with open(saved, "r+b") as stream:
        stream.seek(in_weights + 10)
        stream.write(bytes([original[in_weights + 10] ^ 0xFF]))
    with pytest.raises(DeepGUError, match="damaged"):
        load_model(saved)
    for position in range(0, len(original), len(original) // 23):
        damaged = bytearray(original)
        damaged[position] ^= 0xFF
        with open(saved, "wb") as stream:
            stream.write(damaged)
        try:
            loaded = load_model(saved)
        except DeepGUError:
            continue
        assert_same(model, loaded)  # only bytes outside the content (e.g. zip padding) may change


def test_truncated_and_foreign_files(saved, tmp_path):
    data = open(saved, "rb").read()
    open(saved, "wb").write(data[: len(data) // 2])
    with pytest.raises(DeepGUError, match="is not a DeepGU model file"):
        load_model(saved)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(DeepGUError, match="is not a DeepGU model file"):
        load_model(str(text))
    other = str(tmp_path / "other.pt")
    torch.save({"weights": torch.ones(3)}, other)
    with pytest.raises(DeepGUError, match="no DeepGU model marker"):
        load_model(other)
    with pytest.raises(DeepGUError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt"))


class Payload:
    """Unpickling this object would create the file ``target``."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("writer", ["pickle", "torch"])
def test_malicious_pickle_is_not_executed(tmp_path, writer):
    target = str(tmp_path / "created_by_payload")
    path = str(tmp_path / "evil.pt")
    if writer == "pickle":
        with open(path, "wb") as stream:
            pickle.dump(Payload(target), stream)
    else:
        torch.save({"magic": MAGIC, "format_version": FORMAT_VERSION, "materials": [Payload(target)]}, path)
    with pytest.raises(DeepGUError, match="is not a DeepGU model file"):
        load_model(path)
    assert not os.path.exists(target)


def test_other_format_version(saved):
    rewrite(saved, lambda data: data.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(DeepGUError, match="version %d, but .* reads version %d" % (FORMAT_VERSION + 1, FORMAT_VERSION)):
        load_model(saved)


def test_inconsistent_content(saved):
    rewrite(saved, lambda data: data["materials"][1]["weights"].pop("output.bias"))
    with pytest.raises(DeepGUError, match="weights of material 2 do not match layer sizes"):
        load_model(saved)


def test_missing_entry(saved):
    rewrite(saved, lambda data: data["materials"][0].pop("scale"))
    with pytest.raises(DeepGUError, match="missing scale"):
        load_model(saved)


def test_edit_without_checksum_is_detected(saved):
    data = torch.load(saved, weights_only=True)
    data["materials"][0]["scale"] *= 2
    torch.save(data, saved)
    with pytest.raises(DeepGUError, match="checksum"):
        load_model(saved)


def test_save_to_missing_folder(model, tmp_path):
    with pytest.raises(DeepGUError, match="cannot write OUTPUT .*the output folder does not exist"):
        save_model(model, str(tmp_path / "no" / "such" / "model.pt"))


def test_check_compatible(model):
    wavelengths = np.linspace(400.0, 1000.0, L)
    check_compatible(model, L)
    check_compatible(model, L, wavelengths + 0.01)
    with pytest.raises(DeepGUError, match="model has 30 bands but the image has 29"):
        check_compatible(model, 29)
    shifted = wavelengths.copy()
    shifted[4] += 12.5
    with pytest.raises(DeepGUError, match=r"wavelengths differ \(max difference 12.5 nm\)"):
        check_compatible(model, L, shifted)
