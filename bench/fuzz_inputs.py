"""Randomised hostile inputs through the core jobs: every failure must be a clean refusal, nothing left behind.

From a valid set (a 12 x 12 DC1 scene, its endmember and bundle CSVs, FCLS
abundances and a briefly trained model) each case mutates one input file or one
parameter at random, runs the job that reads it, and classifies the outcome:

- ok: the job finished (the mutation was harmless or handled);
- refused: a one-line :class:`DeepGUError` (the expected way to fail);
- unexpected: any other exception, a multi-line message, a case slower than
  ``--case-seconds``, or a changed input file.

After each case the folders must hold only the outputs of a successful run:
any new ``.deepgu-*`` temporary file, or any new file after a refused run,
counts as a leftover. Mutations: bytes flipped, zeroed, truncated or appended in a
GeoTIFF or model file; values scaled by 10^k, set to NaN/inf/0/constant, and
nodata, scale, band metadata, a mask band or georeferencing (rotated, flipped, zero or
NaN pixel size, no or a strange CRS; moved, resized, reprojected or stripped:
a companion raster from another place) changed in a GeoTIFF; CSV cells, names
(with formula characters, duplicates, BOM, empty), values (huge, text), line ends
(CRLF), wavelength rows (reversed, one twice), material columns (none) and
shape damaged; a model file replaced by a pickle that runs a command when loaded
(it must never run); parameters set to NaN, inf, negative, zero or beyond int32.
Around the files (issue 24): inputs given sidecars of their own (a style, junk
or overriding PAM ``.aux.xml``, an ENVI header beside a GeoTIFF); an output
named after an input (any extension, in the input's folder, beside the
input's ``.qml``); an output path that is a FIFO, a device node (as root), a
folder, or a symbolic link to an input, a FIFO or nowhere. Every file in the
inputs' folder, sidecars included, must be unchanged, and a FIFO, device or
link in the output folder must be left as it was.

Usage: ``.venv/bin/python bench/fuzz_inputs.py [--seconds 300] [--seed 0]``.
The last two lines are the cases by kind of mutation, then the summary: cases,
expected refusals, unexpected errors, leftover temporary files.
"""

import argparse
import hashlib
import os
import pickle
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from osgeo import gdal  # noqa: E402

from bench.measure import machine_line  # noqa: E402
from core.errors import Canceled, DeepGUError  # noqa: E402
from core.jobs import bundles, fcls, inspect, metrics, synthetic, train, unmix, vca  # noqa: E402
from core.solvers.unmix_settings import UnmixSettings  # noqa: E402
from core.files.raster_io import read_all, write_raster  # noqa: E402

HOSTILE_NUMBERS = [float("nan"), float("inf"), -float("inf"), -1, 0, 2 ** 31, 5_000_000_000, 1e308, -1e308, 0.5]


class CaseTimeout(Exception):
    """A case ran longer than allowed."""


def _alarm(signum, frame):
    raise CaseTimeout()


def make_valid_set(folder):
    """The valid inputs every case starts from."""
    p = {name: os.path.join(folder, name) for name in ("scene.tif", "truth.tif", "em.csv", "bundles.csv",
                                                       "fcls.tif", "model.pt")}
    synthetic.run("DC1", 12, 12, p["scene.tif"], output_abundances=p["truth.tif"], seed=1)
    vca.run(p["scene.tif"], 3, p["em.csv"])
    fcls.run(p["scene.tif"], p["em.csv"], p["fcls.tif"])
    bundles.run(p["scene.tif"], p["em.csv"], p["bundles.csv"], n_pixels=15)
    train.run(p["bundles.csv"], p["em.csv"], p["model.pt"], epochs=3)
    return p


# --- mutations: each takes (rng, path) and rewrites the file at path ------------------------------------

def flip_bytes(rng, path):
    raw = bytearray(open(path, "rb").read())
    for position in rng.integers(0, len(raw), rng.integers(1, 20)):
        raw[position] = int(rng.integers(0, 256))
    open(path, "wb").write(bytes(raw))


def zero_range(rng, path):
    raw = bytearray(open(path, "rb").read())
    start = int(rng.integers(0, len(raw)))
    stop = min(len(raw), start + int(rng.integers(1, 4096)))
    raw[start:stop] = bytes(stop - start)
    open(path, "wb").write(bytes(raw))


def truncate(rng, path):
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:int(rng.integers(0, len(raw)))])


def append_junk(rng, path):
    with open(path, "ab") as f:
        f.write(rng.bytes(int(rng.integers(1, 5000))))


def raster_values(rng, path):
    """Rewrite the raster with its pixels scaled, poisoned, flattened or emptied."""
    data, _, info = read_all(path)
    kind = rng.choice(["scale", "nan", "inf", "zero", "constant", "negative", "float64-huge", "one-pixel"])
    if kind == "scale":
        data = data * np.float32(10.0 ** int(rng.integers(-40, 39)))
    elif kind in ("nan", "inf"):
        mask = rng.random(data.shape) < rng.random()
        data[mask] = np.nan if kind == "nan" else np.inf
    elif kind == "zero":
        data[:] = 0
    elif kind == "constant":
        data[:] = data[:, :1, :1]
    elif kind == "negative":
        data = -data
    elif kind == "one-pixel":
        data[:, 1:, :] = np.nan
    if kind == "float64-huge":
        driver = gdal.GetDriverByName("GTiff")
        ds = driver.Create(path, info.cols, info.rows, info.n_bands, gdal.GDT_Float64)
        for i in range(info.n_bands):
            ds.GetRasterBand(i + 1).WriteArray(data[i].astype(np.float64) * 1e300)
        ds = None
        return
    write_raster(path, data, info, wavelengths=info.wavelengths)


def raster_metadata(rng, path):
    """Change nodata, scale/offset or wavelength metadata of some bands in place, or add a mask band."""
    ds = gdal.Open(path, gdal.GA_Update)
    kind = rng.choice(["nodata", "scale", "wavelength", "mask"])
    if kind == "mask":      # a mask band (internal, or a .msk beside it) excluding random pixels, or all of them
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        mask = (rng.random((ds.RasterYSize, ds.RasterXSize)) < rng.random()).astype(np.uint8) * 255
        ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
        ds = None
        return
    for i in rng.choice(ds.RasterCount, size=int(rng.integers(1, ds.RasterCount + 1)), replace=False):
        band = ds.GetRasterBand(int(i) + 1)
        if kind == "nodata":
            band.SetNoDataValue(float(rng.choice([0.0, np.nan, 1e38, -1e38, 0.5])))
        elif kind == "scale":
            band.SetScale(float(rng.choice([0.0, 1e30, -1.0, np.nan, 1e-30])))
        else:
            band.SetMetadataItem("wavelength", str(rng.choice(["n/a", "", "1e400", "-5", "nan", "12,13"])))
    ds = None


def csv_damage(rng, path):
    """Damage a CSV's text: names, values, shape or encoding."""
    lines = open(path, encoding="utf-8").read().splitlines()
    header = lines[0].split(",")
    kind = rng.choice(["formula-name", "duplicate-name", "empty-name", "bom", "huge-value", "text-value",
                       "drop-cell", "drop-lines", "many-columns", "latin1", "header-key", "row-col",
                       "reversed-rows", "wavelength-twice", "no-materials", "crlf"])
    first = next((i for i, line in enumerate(lines) if i and line.split(",")[0] not in ("row", "col")), len(lines))
    if kind in ("reversed-rows", "wavelength-twice", "no-materials") and first + 1 < len(lines):
        if kind == "reversed-rows":
            lines[first:] = lines[first:][::-1]
        elif kind == "wavelength-twice":
            lines[first + 1] = lines[first].split(",")[0] + "," + lines[first + 1].split(",", 1)[1]
        else:
            lines = [line.split(",")[0] for line in lines]
        open(path, "w", encoding="utf-8").write("\n".join(lines) + "\n")
        return
    if kind == "formula-name":
        header[int(rng.integers(1, len(header)))] = str(rng.choice(["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx"]))
    elif kind == "duplicate-name":
        header[1:] = [header[1]] * (len(header) - 1)
    elif kind == "empty-name":
        header[int(rng.integers(1, len(header)))] = ""
    elif kind == "many-columns":
        n = int(rng.integers(13, 5000))
        header = header[:1] + ["m%d" % i for i in range(n)]
        lines = [",".join(header)] + [line.split(",")[0] + ",0.1" * n for line in lines[1:]]
        open(path, "w").write("\n".join(lines) + "\n")
        return
    lines[0] = ",".join(header)
    if kind == "header-key":
        lines[0] = "wave length" + lines[0][lines[0].index(","):]
    body = int(rng.integers(1, len(lines)))
    cells = lines[body].split(",")
    if kind == "huge-value":
        cells[int(rng.integers(0, len(cells)))] = str(rng.choice(["1e200", "-1e300", "1e999", "nan", "inf"]))
    elif kind == "text-value":
        cells[int(rng.integers(0, len(cells)))] = "oops"
    elif kind == "drop-cell":
        cells = cells[:-1]
    lines[body] = ",".join(cells)
    if kind == "row-col":
        lines[1:1] = ["row," + ",".join(["1e300"] * (len(header) - 1)), "col," + ",".join(["-1"] * (len(header) - 1))]
    if kind == "drop-lines":
        lines = lines[:int(rng.integers(0, len(lines)))]
    text = "\n".join(lines) + "\n"
    if kind == "bom":
        open(path, "wb").write(b"\xef\xbb\xbf" + text.encode())
    elif kind == "crlf":
        open(path, "wb").write(text.replace("\n", "\r\n").encode())
    elif kind == "latin1":
        open(path, "wb").write(text.replace("EM1", "EM\xe9").encode("latin-1"))
    else:
        open(path, "w", encoding="utf-8").write(text)


def georeferencing(rng, path):
    """Change the raster's georeferencing in place: poisoned (rotated, flipped, zero or NaN pixel size, huge, no or
    a strange CRS) or plausible but elsewhere (moved by pixels or a fraction of one, resized, reprojected, stripped:
    a companion raster from another place)."""
    ds = gdal.Open(path, gdal.GA_Update)
    x, size, b, y, d, e = ds.GetGeoTransform()
    kind = rng.choice(["rotated", "flipped", "zero-size", "nan", "huge", "no-crs", "bad-crs",
                       "shift", "subpixel", "pixel-size", "crs", "strip"])
    transforms = {"rotated": (x, size, 0.5 * size, y, 0.25 * size, -size), "flipped": (x, -size, 0, y, 0, size),
                  "zero-size": (x, 0.0, 0.0, y, 0.0, 0.0), "nan": (np.nan, size, 0, y, 0, -size),
                  "huge": (1e308, 1e300, 0, -1e308, 0, -1e300),
                  "shift": (x + size * int(rng.integers(1, 20)), size, b, y, d, e),
                  "subpixel": (x, size, b, y + e * float(rng.choice([1e-9, 1e-4, 0.01, 0.5])), d, e),
                  "pixel-size": (x, size * float(rng.choice([1 + 1e-9, 1.001, 2.0])), b, y, d, e),
                  "strip": (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}
    if kind in transforms:
        ds.SetGeoTransform(transforms[kind])
    if kind in ("no-crs", "strip"):
        ds.SetProjection("")
    elif kind == "bad-crs":
        ds.SetProjection('LOCAL_CS["nowhere",UNIT["furlong",201.168]]')
    elif kind == "crs":
        ds.SetProjection(str(rng.choice(["EPSG:4326", "EPSG:32634", "EPSG:3857"])))
    ds = None


class _RunsCode:
    """Unpickled, it would run a shell command: a model file must never be unpickled with code."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


#: the file a model with pickled code would create beside itself, were it run.
EXECUTED = "EXECUTED"


def pickled_code(rng, path):
    """Replace a model file with a torch file (or a bare zip) whose pickle runs a command when loaded."""
    payload = {"state": _RunsCode("touch '%s'" % os.path.join(os.path.dirname(path), EXECUTED))}
    if rng.random() < 0.5:
        torch.save(payload, path)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps(payload))


MUTATIONS = {
    "tif": [flip_bytes, zero_range, truncate, append_junk, raster_values, raster_values, raster_metadata,
            georeferencing],
    "csv": [flip_bytes, truncate, append_junk, csv_damage, csv_damage, csv_damage],
    "pt": [flip_bytes, zero_range, truncate, append_junk, pickled_code],
}


# --- the folders around the files: each takes (rng, p, case_in, out, job) and returns (description, output
# paths by their usual name) --------------------------------------------------------------------------------

PAM = """<PAMDataset>
  <PAMRasterBand band="1">
    <NoDataValue>%s</NoDataValue>
    <Scale>%s</Scale>
  </PAMRasterBand>
</PAMDataset>
"""


def input_sidecars(rng, p, case_in, out, job):
    """Give an input sidecars of its own: a style, GDAL statistics (junk, or PAM overriding band 1's nodata and
    scale), an ENVI header beside a GeoTIFF; outputs stay in ``out``."""
    name = str(rng.choice(READS[job]))
    stem = os.path.splitext(p[name])[0]
    kind = rng.choice(["qml", "aux-junk", "aux-pam", "hdr-junk"])
    if kind == "qml":
        sidecar, text = stem + ".qml", "<qgis><the user's style/></qgis>"
    elif kind == "aux-junk":
        sidecar, text = p[name] + ".aux.xml", rng.bytes(int(rng.integers(1, 2000))).decode("latin-1")
    elif kind == "aux-pam":
        sidecar, text = p[name] + ".aux.xml", PAM % (rng.choice(["nan", "0", "1e38", "x"]),
                                                     rng.choice(["1", "0", "1e30", "-1", "nan"]))
    else:
        sidecar, text = stem + ".hdr", "ENVI\nsamples = 3\nlines = nonsense\n"
    with open(sidecar, "w", encoding="latin-1") as f:
        f.write(text)
    return "%s sidecar of %s" % (kind, name), {}


def shared_stem(rng, p, case_in, out, job):
    """Name an output after an input (its stem, any extension), in the input's folder: the inputs' sidecars
    (a style ``<stem>.qml`` is always there) must stay theirs."""
    name = str(rng.choice(READS[job]))
    stem = os.path.splitext(p[name])[0]
    with open(stem + ".qml", "w") as f:
        f.write("<qgis><the user's style/></qgis>")
    output = str(rng.choice(WRITES[job]))
    extension = str(rng.choice([".tif", ".img", ".hdr", ".dat", ".csv", ".sli", ".pt", ".json", ".png"]))
    return "%s named %s%s" % (output, os.path.basename(stem), extension), {output: stem + extension}


def output_kind(rng, p, case_in, out, job):
    """Make an output path something other than a regular file or a new path: a FIFO, a device (as root), a
    folder, a symbolic link to an input, to a FIFO or to nowhere (the last is a new path, to be replaced)."""
    output = str(rng.choice(WRITES[job]))
    path = os.path.join(out, output)
    kinds = ["fifo", "folder", "link-to-input", "link-to-fifo", "dangling-link"] + (["device"] if os.geteuid() == 0
                                                                                     else [])
    kind = str(rng.choice(kinds))
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))          # a private /dev/null
    elif kind == "folder":
        os.makedirs(path)
    elif kind == "link-to-input":
        os.symlink(p[str(rng.choice(sorted(p)))], path)
    elif kind == "link-to-fifo":
        os.mkfifo(os.path.join(out, "fifo"))
        os.symlink(os.path.join(out, "fifo"), path)
    else:
        os.symlink(os.path.join(out, "nowhere"), path)
    return "%s is a %s" % (output, kind), {}


SETUPS = [input_sidecars, shared_stem, output_kind]


# --- jobs: each takes (inputs dict, output folder, params dict) -----------------------------------------

def job_calls(p, out, params, paths=None):
    """Every job with its inputs from ``p`` and outputs in ``out``; ``params`` overrides keyword arguments,
    ``paths`` output paths (by their usual name, e.g. ``"a.tif"``)."""
    paths = paths or {}
    o = lambda name: paths.get(name, os.path.join(out, name))  # noqa: E731
    return {
        "vca": lambda: vca.run(p["scene.tif"], params.get("n_endmembers", 3), o("em.csv"),
                               seed=params.get("seed", 0), sample_size=params.get("sample_size", 1_000_000)),
        "fcls": lambda: fcls.run(p["scene.tif"], p["em.csv"], o("a.tif"), output_rmse=o("r.tif"),
                                 memory_mb=params.get("memory_mb", 256)),
        "bundles": lambda: bundles.run(p["scene.tif"], p["em.csv"], o("b.csv"), method=params.get("method", "spatial"),
                                       n_pixels=params.get("n_pixels", 10), abundances_path=p["fcls.tif"],
                                       max_angle_deg=params.get("max_angle_deg", 5.0)),
        "train": lambda: train.run(p["bundles.csv"], p["em.csv"], o("m.pt"), epochs=params.get("epochs", 2),
                                   beta=params.get("beta", 0.01), seed=params.get("seed", 0),
                                   latent_dim=params.get("latent_dim", 2)),
        "unmix": lambda: unmix.run(p["scene.tif"], p["model.pt"], o("a.tif"), UnmixSettings(
            max_iter=params.get("max_iter", 1), lambda_a=params.get("lambda_a", 0.01),
            lambda_z=params.get("lambda_z", 0.1), tol=params.get("tol", 1e-3), memory_mb=params.get("memory_mb", 1024)),
            init_abundances=p["fcls.tif"], output_rmse=o("r.tif")),
        "inspect": lambda: inspect.run(p["model.pt"], output_csv=o("g.csv"), output_png=o("g.png"),
                                       bundles_csv=p["bundles.csv"], span=params.get("span", 2.0),
                                       steps=params.get("steps", 3)),
        "metrics": lambda: metrics.run(p["fcls.tif"], p["truth.tif"], report=o("m.json"),
                                       memory_mb=params.get("memory_mb", 256)),
    }


#: which input files each job reads, and which of its keyword arguments may be made hostile.
READS = {"vca": ["scene.tif"], "fcls": ["scene.tif", "em.csv"], "bundles": ["scene.tif", "em.csv", "fcls.tif"],
         "train": ["bundles.csv", "em.csv"], "unmix": ["scene.tif", "model.pt", "fcls.tif"],
         "inspect": ["model.pt", "bundles.csv"], "metrics": ["fcls.tif", "truth.tif"]}
#: the outputs each job writes, by their usual names in ``out``.
WRITES = {"vca": ["em.csv"], "fcls": ["a.tif", "r.tif"], "bundles": ["b.csv"], "train": ["m.pt"],
          "unmix": ["a.tif", "r.tif"], "inspect": ["g.csv", "g.png"], "metrics": ["m.json"]}
PARAMS = {"vca": ["n_endmembers", "seed", "sample_size"], "fcls": ["memory_mb"],
          "bundles": ["n_pixels", "max_angle_deg"], "train": ["epochs", "beta", "seed", "latent_dim"],
          "unmix": ["lambda_a", "lambda_z", "tol", "max_iter", "memory_mb"], "inspect": ["span", "steps"],
          "metrics": ["memory_mb"]}


def snapshot(folder):
    """``{name: (kind, sha256 or link target)}`` of every entry in ``folder``, links not followed (a FIFO is not
    opened)."""
    entries = {}
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        mode = os.lstat(path).st_mode
        if stat.S_ISREG(mode):
            with open(path, "rb") as f:
                entries[name] = ("file", hashlib.sha256(f.read()).hexdigest())
        elif stat.S_ISLNK(mode):
            kind = "link to a file" if os.path.isfile(path) else "link" if os.path.exists(path) else "dangling"
            entries[name] = (kind, os.readlink(path))
        else:
            entries[name] = (stat.S_IFMT(mode), None)
    return entries


def run_case(rng, valid, work, case_seconds):
    """One mutated case; returns (job, description, outcome, leftovers, detail)."""
    case_in = os.path.join(work, "in")
    out = os.path.join(work, "out")
    for folder in (case_in, out):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    p = {name: shutil.copy(path, os.path.join(case_in, name)) for name, path in valid.items()}
    job = str(rng.choice(sorted(READS)))
    params, paths = {}, {}
    draw = rng.random()
    if draw < 0.25:
        key = str(rng.choice(PARAMS[job]))
        params[key] = HOSTILE_NUMBERS[int(rng.integers(len(HOSTILE_NUMBERS)))]
        description = "%s=%r" % (key, params[key])
    elif draw < 0.5:
        setup = SETUPS[int(rng.integers(len(SETUPS)))]
        description, paths = setup(rng, p, case_in, out, job)
        description = "%s: %s" % (setup.__name__, description)
    else:
        name = str(rng.choice(READS[job]))
        mutation = MUTATIONS[name.rsplit(".", 1)[1]][int(rng.integers(len(MUTATIONS[name.rsplit(".", 1)[1]])))]
        try:
            mutation(rng, p[name])
        except Exception as exc:        # a mutation that cannot apply (e.g. GDAL cannot reopen): a skipped case
            return job, "%s(%s) not applicable" % (mutation.__name__, name), "skipped", 0, str(exc)
        description = "%s(%s)" % (mutation.__name__, name)
    before = {folder: snapshot(folder) for folder in (case_in, out)}
    outcome, detail = "ok", ""
    signal.setitimer(signal.ITIMER_REAL, case_seconds)
    try:
        job_calls(p, out, params, paths)[job]()
    except (DeepGUError, Canceled) as error:
        outcome, detail = ("refused", str(error)) if "\n" not in str(error) else ("unexpected", repr(str(error)))
    except CaseTimeout:
        outcome, detail = "unexpected", "slower than %g s" % case_seconds
    except Exception as exc:
        outcome, detail = "unexpected", "%s: %s\n%s" % (type(exc).__name__, exc, traceback.format_exc(limit=-3))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    after = {folder: snapshot(folder) for folder in (case_in, out)}
    changed = [name for name, entry in before[case_in].items() if after[case_in].get(name) != entry]
    replaced = [name for name, entry in before[out].items()         # a link to a file or nowhere: replaced, fine
                if entry[0] not in ("dangling", "link to a file") and after[out].get(name) != entry]
    if changed:
        outcome, detail = "unexpected", "input files changed: %s" % ", ".join(changed)
    elif replaced:
        outcome, detail = "unexpected", "a file that was not a regular file changed: %s" % ", ".join(replaced)
    new = [name for folder in (case_in, out) for name in after[folder] if name not in before[folder]]
    if EXECUTED in new:
        outcome, detail = "unexpected", "code pickled in a model file was run"
    leftovers = len([name for name in new if name.startswith(".deepgu-")]) + (len(new) if outcome != "ok" else 0)
    return job, description, outcome, leftovers, detail


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long to run (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case-seconds", type=float, default=60.0, help="a slower case is an unexpected error")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    torch.set_num_threads(1)
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    signal.signal(signal.SIGALRM, _alarm)
    rng = np.random.default_rng(args.seed)
    counts = {"ok": 0, "refused": 0, "unexpected": 0, "skipped": 0}
    families = {}       # cases by mutation, setup or "parameter"
    leftovers = 0
    with tempfile.TemporaryDirectory(prefix="deepgu-fuzz-") as work:
        valid_dir = os.path.join(work, "valid")
        os.makedirs(valid_dir)
        valid = make_valid_set(valid_dir)
        start = time.time()
        while time.time() - start < args.seconds:
            job, description, outcome, left, detail = run_case(rng, valid, work, args.case_seconds)
            counts[outcome] += 1
            family = description.split(":")[0].split("(")[0] if "=" not in description else "parameter"
            families[family] = families.get(family, 0) + 1
            leftovers += left
            if outcome == "unexpected" or left:
                print("UNEXPECTED %s %s: %s (leftover files: %d)" % (job, description, detail, left), flush=True)
    cases = counts["ok"] + counts["refused"] + counts["unexpected"]
    print("cases by kind: " + ", ".join("%s %d" % item for item in sorted(families.items())))
    print("fuzz_inputs seed %d, %.0f s: %d cases (%d handled, %d expected refusals), %d unexpected errors, "
          "%d leftover temporary files (%d mutations not applicable)"
          % (args.seed, args.seconds, cases, counts["ok"], counts["refused"], counts["unexpected"], leftovers,
             counts["skipped"]))


if __name__ == "__main__":
    main()
