"""Other people's files (issue 24, items 1-3 and 7): sidecars, file kinds, the commit, stale temporaries.

Each refusal through ``qgis_process.bin`` is checked as in ``test_hostile.py``: a non-zero exit, a line
naming the parameter(s) and no traceback, the folder exactly as before the run (no output, no
temporary) and every input byte-identical, its sidecars included (no ``<INPUT>.aux.xml`` appears either:
``tests/test_hostile_more.py``).
"""

import logging
import os
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT
from core.files import atomic
from core import defaults
from core.errors import DeepGUError
from core.jobs import fcls as fcls_job
from core.jobs import vca as vca_job
from core.files.raster_io import RasterWriter, georeference, read_all, write_raster
import test_hostile
from test_hostile import Inputs, checksum

files, out = test_hostile.files, test_hostile.out      # the fixtures: the 30 x 30 scene with its model; a folder


def listing(folder):
    """Every name in ``folder`` with its content's checksum (None for what is not a regular file)."""
    return {name: checksum(os.path.join(folder, name)) if os.path.isfile(os.path.join(folder, name)) else None
            for name in os.listdir(folder)}


def refused_here(done, parameters, folder, before):
    """A clean refusal that left ``folder`` exactly as ``before`` (:func:`listing`); returns the error line."""
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-2000:]
    assert "Traceback" not in output and "unexpected error" not in output, output[-2000:]
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("ERROR:", "error: ")))    # after the echo
    lines = [line for line in lines[start:] if all(p in line for p in parameters)]
    assert lines, output[-2000:]
    assert listing(folder) == before
    return lines[0]


@pytest.fixture
def scene(files, tmp_path):
    """``scene.tif`` with the user's style ``scene.qml``, and ``em.csv``, in one folder."""
    folder = tmp_path / "user"
    folder.mkdir()
    p = {name: str(folder / name) for name in ("scene.tif", "em.csv", "scene.qml")}
    for name in ("scene.tif", "em.csv"):
        with open(files[name], "rb") as src, open(p[name], "wb") as dst:
            dst.write(src.read())
    with open(p["scene.qml"], "w") as f:
        f.write("<the user's style/>\n")
    return p


# --- item 1: sidecars are owned -----------------------------------------------------------------------

def test_output_sharing_the_inputs_stem_is_refused_through_qgis(qgis_process, scene):
    """INPUT=scene.tif (with scene.qml): OUTPUT_RMSE=scene.img used to delete scene.qml, OUTPUT=scene.img to
    overwrite it with the abundance style."""
    folder = os.path.dirname(scene["scene.tif"])
    before = listing(folder)
    done = qgis_process.run("deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["em.csv"],
                            OUTPUT=os.path.join(folder, "a.tif"), OUTPUT_RMSE=os.path.join(folder, "scene.img"))
    line = refused_here(done, ["OUTPUT_RMSE", "INPUT"], folder, before)
    assert "scene.qml" in line
    done = qgis_process.run("deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["em.csv"],
                            OUTPUT=os.path.join(folder, "scene.img"))
    refused_here(done, ["OUTPUT", "INPUT"], folder, before)


def test_output_sharing_a_csv_inputs_stem_and_another_outputs(scene, out):
    """Across extensions and kinds: a raster output named like the CSV input, or like another raster output."""
    folder = os.path.dirname(scene["em.csv"])
    before = listing(folder)
    with pytest.raises(DeepGUError, match="OUTPUT '.*em.tif' has the name of the input ENDMEMBERS"):
        fcls_job.run(scene["scene.tif"], scene["em.csv"], os.path.join(folder, "em.tif"))
    with pytest.raises(DeepGUError, match="OUTPUT_RMSE '.*a.img' has the name of the output OUTPUT '.*a.tif'"):
        fcls_job.run(scene["scene.tif"], scene["em.csv"], str(out / "a.tif"), output_rmse=str(out / "a.img"))
    assert listing(folder) == before and os.listdir(out) == []
    vca_job.run(scene["scene.tif"], 3, os.path.join(folder, "scene.csv"))     # a CSV has no sidecars: allowed
    assert listing(folder) == dict(before, **{"scene.csv": checksum(os.path.join(folder, "scene.csv"))})


def test_output_named_like_an_existing_file_keeps_that_files_style(scene, out):
    """a.img with its style a.qml is not this run's: OUTPUT=a.tif would replace a.qml. The run's own old
    output and its style are replaced as before."""
    A, _, info = read_all(scene["scene.tif"])
    write_raster(str(out / "a.img"), A[:1], info)
    (out / "a.qml").write_text("<a.img's style/>")
    before = listing(str(out))
    with pytest.raises(DeepGUError, match="OUTPUT '.*a.tif' has the name of the existing file '.*a.img'"):
        fcls_job.run(scene["scene.tif"], scene["em.csv"], str(out / "a.tif"))
    assert listing(str(out)) == before
    target = str(out / "b.tif")
    fcls_job.run(scene["scene.tif"], scene["em.csv"], target)
    (out / "b.qml").write_text("<a style of the old b.tif/>")
    fcls_job.run(scene["scene.tif"], scene["em.csv"], target)
    assert not (out / "b.qml").exists()


def test_envi_library_output_does_not_overwrite_the_envi_inputs_header(files, tmp_path):
    """Found while testing: OUTPUT=scene.sli writes scene.hdr, the header of INPUT=scene.dat."""
    A, _, info = read_all(files["scene.tif"])
    scene = str(tmp_path / "scene.dat")
    write_raster(scene, A, info, wavelengths=info.wavelengths)
    before = listing(str(tmp_path))
    with pytest.raises(DeepGUError, match="OUTPUT .*scene.sli.* is the same file as the input INPUT"):
        vca_job.run(scene, 3, str(tmp_path / "scene.sli"))
    assert listing(str(tmp_path)) == before


def test_envi_header_of_another_file_is_not_replaced(scene, out):
    """An ENVI output writes <stem>.hdr: refused when that header exists without the output's data file (it is
    another file's, here a raw lib.bil's); an ENVI library rewritten beside a CSV of its stem is fine."""
    (out / "lib.bil").write_bytes(b"raw data")
    (out / "lib.hdr").write_text("ENVI\nsamples = 2\n")
    before = listing(str(out))
    with pytest.raises(DeepGUError, match="OUTPUT '.*lib.sli' would replace the ENVI header '.*lib.hdr'"):
        vca_job.run(scene["scene.tif"], 3, str(out / "lib.sli"))
    assert listing(str(out)) == before
    for _ in range(2):
        vca_job.run(scene["scene.tif"], 3, str(out / "gen.csv"))
        vca_job.run(scene["scene.tif"], 3, str(out / "gen.sli"))
    assert sorted(os.listdir(out)) == ["gen.csv", "gen.hdr", "gen.sli", "lib.bil", "lib.hdr"]


def test_style_is_not_written_through_a_symbolic_link_through_qgis(qgis_process, scene, out):
    """out/a.qml is a link to the user's scene.qml: the run replaces the link, never writes into the user's file."""
    os.symlink(scene["scene.qml"], str(out / "a.qml"))
    inputs = Inputs(*scene.values())
    done = qgis_process.run("deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["em.csv"],
                            OUTPUT=str(out / "a.tif"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert inputs.unchanged() and sorted(os.listdir(out)) == ["a.qml", "a.tif"]
    assert not os.path.islink(str(out / "a.qml")) and "<qgis" in (out / "a.qml").read_text()


# --- item 2: outputs are regular files or new paths ----------------------------------------------------

def test_fifo_device_and_dev_null_as_outputs_through_qgis(qgis_process, scene, out):
    """mkfifo / mknod c 1 3 as OUTPUT: refused before any work and the node is left; OUTPUT=/dev/null too."""
    os.mkfifo(str(out / "fifo.csv"))
    nodes = {"fifo.csv": "a FIFO"}
    if os.geteuid() == 0:
        os.mknod(str(out / "dev.csv"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        nodes["dev.csv"] = "a device"
    inputs = Inputs(*scene.values())
    before = listing(str(out))
    for name, kind in nodes.items():
        done = qgis_process.run("deepgu:vca", INPUT=scene["scene.tif"], OUTPUT=str(out / name))
        assert kind in refused_here(done, ["OUTPUT"], str(out), before)
    done = qgis_process.run("deepgu:vca", INPUT=scene["scene.tif"], OUTPUT="/dev/null")
    assert "a device" in refused_here(done, ["OUTPUT"], str(out), before)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(str(out / "fifo.csv")).st_mode)
    assert inputs.unchanged()


def test_fifo_as_a_raster_output_or_sidecar_and_a_socket(scene, out):
    """Every algorithm goes through core.checks.paths: a raster output, an ENVI header and a style sidecar that are
    FIFOs, and a socket, are refused naming the parameter."""
    os.mkfifo(str(out / "r.tif"))
    os.mkfifo(str(out / "e.hdr"))
    os.mkfifo(str(out / "s.qml"))
    import socket
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(out / "k.tif"))
    before = listing(str(out))
    try:
        for output, match in [("e.img", "OUTPUT_RMSE '.*e.hdr': it is a FIFO"),
                              ("s.tif", "OUTPUT_RMSE '.*s.tif': its sidecar '.*s.qml' is a FIFO"),
                              ("r.tif", "OUTPUT_RMSE '.*r.tif': it is a FIFO"),
                              ("k.tif", "OUTPUT_RMSE '.*k.tif': it is a socket")]:
            with pytest.raises(DeepGUError, match=match):
                fcls_job.run(scene["scene.tif"], scene["em.csv"], str(out / "x.tif"), output_rmse=str(out / output))
        assert listing(str(out)) == before
    finally:
        sock.close()


def test_feature_sink_on_an_input_or_a_fifo_through_qgis(qgis_process, scene, out):
    """Found while testing: QGIS writes a feature sink in place, so OUTPUT_POINTS=em.csv overwrote the
    ENDMEMBERS library (exit 0). Sinks now go through core.checks.paths before any work."""
    folder = os.path.dirname(scene["em.csv"])
    before = listing(folder)
    done = qgis_process.run("deepgu:bundles", INPUT=scene["scene.tif"], ENDMEMBERS=scene["em.csv"],
                            OUTPUT=str(out / "b.csv"), OUTPUT_POINTS=scene["em.csv"])
    refused_here(done, ["OUTPUT_POINTS", "ENDMEMBERS"], folder, before)
    os.mkfifo(str(out / "points.gpkg"))
    done = qgis_process.run("deepgu:bundles", INPUT=scene["scene.tif"], ENDMEMBERS=scene["em.csv"],
                            OUTPUT=str(out / "b.csv"), OUTPUT_POINTS=str(out / "points.gpkg"), timeout=120)
    assert "FIFO" in refused_here(done, ["OUTPUT_POINTS"], str(out), {"points.gpkg": None})
    assert listing(folder) == before


# --- item 3: the commit is all or nothing --------------------------------------------------------------

def test_names_beyond_name_max_are_refused_up_front_through_qgis(qgis_process, scene, out):
    """A 255-byte raster name: its sidecar name (+ .aux.xml) is too long, refused before any work (it used to
    be renamed into place and then fail with 'unexpected error', leaving a backup). A 255-byte CSV is fine."""
    name_max = os.pathconf(str(out), "PC_NAME_MAX")
    (out / "neighbour.tif").write_text("kept")
    before = listing(str(out))
    long_raster = str(out / ("x" * (name_max - 4) + ".tif"))
    done = qgis_process.run("deepgu:fcls", INPUT=scene["scene.tif"], ENDMEMBERS=scene["em.csv"], OUTPUT=long_raster,
                            OUTPUT_RMSE=str(out / "neighbour.tif"))
    line = refused_here(done, ["OUTPUT"], str(out), before)
    assert "more than the %d this file system allows" % name_max in line
    long_csv = str(out / ("y" * (name_max - 4) + ".csv"))
    done = qgis_process.run("deepgu:vca", INPUT=scene["scene.tif"], OUTPUT=long_csv)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(os.listdir(out)) == sorted(["neighbour.tif", os.path.basename(long_csv)])


def test_path_beyond_path_max_is_refused(scene, tmp_path):
    """PATH_MAX: a folder chain whose output path would be longer than the file system allows."""
    path_max = os.pathconf(str(tmp_path), "PC_PATH_MAX")
    folder = str(tmp_path)
    while len(folder) < path_max - 210:
        folder = os.path.join(folder, "d" * 200)
    os.makedirs(folder)                                  # shorter than PATH_MAX; the output 250 bytes more is not
    with pytest.raises(DeepGUError, match="OUTPUT '.*': the path of '.*' is longer than the %d bytes" % path_max):
        vca_job.run(scene["scene.tif"], 3, os.path.join(folder, "e" * 246 + ".csv"))
    assert os.listdir(folder) == []


def test_a_target_turned_fifo_before_the_commit_renames_nothing(tmp_path):
    """Everything is checked before the first rename: the second target became a FIFO during the run."""
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.csv")
    write_raster(a, np.zeros((1, 4, 4), np.float32), georeference(4, 4))
    before = checksum(a)
    with pytest.raises(DeepGUError, match=r"cannot write OUTPUT_RMSE '.*b\.csv': it is a FIFO"):
        with atomic.together():
            write_raster(a, np.ones((1, 4, 4), np.float32), georeference(4, 4))
            with atomic.atomic_output(b, what="OUTPUT_RMSE") as f:
                f.write("x")
                os.mkfifo(b)
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "b.csv"] and checksum(a) == before


def test_clean_up_after_the_commit_cannot_raise(tmp_path, monkeypatch, caplog):
    """A backup or stale sidecar that cannot be removed is logged; the run succeeds and the rest are removed."""
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    for path in (a, b):
        write_raster(path, np.zeros((1, 4, 4), np.float32), georeference(4, 4))
        with open(path + ".aux.xml", "w") as f:
            f.write("<stale/>")
    real_unlink = os.unlink
    refused = []        # the first backup and a's stale .aux.xml cannot be removed

    def failing_unlink(path, *args, **kwargs):
        path = str(path)
        if path == a + ".aux.xml" or path.endswith(".old") and not any(p.endswith(".old") for p in refused):
            refused.append(path)
            raise PermissionError(13, "Permission denied")
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", failing_unlink)
    with caplog.at_level(logging.WARNING, logger="core.files.atomic"):
        with atomic.together():
            write_raster(a, np.ones((1, 4, 4), np.float32), georeference(4, 4))
            write_raster(b, np.ones((1, 4, 4), np.float32), georeference(4, 4))
    monkeypatch.undo()
    assert read_all(a)[0].min() == 1 and read_all(b)[0].min() == 1
    left = sorted(os.listdir(tmp_path))
    assert [name for name in left if name.endswith(".old")] and "a.tif.aux.xml" in left
    assert "b.tif.aux.xml" not in left and len(left) == 4          # a, b, one backup and a's .aux.xml
    assert sum("could not remove" in record.getMessage() for record in caplog.records) == 2


# --- item 7: stale temporaries of dead processes --------------------------------------------------------

HOLD = """
import os, sys, time
sys.path.insert(0, {root!r})
from core.files import atomic
target = atomic.TempTarget(os.path.join({folder!r}, {name!r}))
print(os.path.basename(target.tmp), flush=True)
if {die}:
    os._exit(0)                  # no atexit: the temporary stays, as after a SIGKILL
time.sleep(600)
"""


def hold_temporary(folder, name, die):
    """A child process that creates a temporary for ``folder/name``; it dies at once (``die``) or lives on."""
    process = subprocess.Popen([sys.executable, "-c", HOLD.format(root=ROOT, folder=str(folder), name=name, die=die)],
                               stdout=subprocess.PIPE, text=True)
    tmp = process.stdout.readline().strip()
    assert tmp.startswith(".deepgu-"), tmp
    if die:
        process.wait(timeout=60)
    return process, tmp


def test_dead_processes_temporaries_are_swept_live_ones_kept(scene, out):
    live, live_tmp = hold_temporary(out, "live.tif", die=False)
    try:
        _, dead_tmp = hold_temporary(out, "dead.tif", die=True)
        reused = ".deepgu-%s-%d-1-abcdefgh.tif" % (atomic._HOST, os.getpid())      # our PID, another start time
        foreign = ".deepgu-0123abcd-1-1-abcdefgh.tif"                               # another machine's, recent
        old_foreign = ".deepgu-0123abcd-2-1-abcdefgh.tif"                           # ... unchanged for too long
        unnamed = ".deepgu-k3j4h5g6.csv"                                             # an older version's, old
        absurd = ".deepgu-%s-%d-1-abcdefgh.tif" % (atomic._HOST, 10 ** 30)            # no such PID can exist
        for name in (reused, foreign, old_foreign, unnamed, absurd, dead_tmp + ".old"):
            (out / name).write_text("debris")
        old = time.time() - defaults.STALE_TEMPORARY_HOURS * 3600 - 60
        for name in (old_foreign, unnamed):
            os.utime(str(out / name), (old, old))
        assert dead_tmp in os.listdir(out)
        atomic._SWEPT.discard(str(out))
        fcls_job.run(scene["scene.tif"], scene["em.csv"], str(out / "a.tif"))
        assert sorted(os.listdir(out)) == sorted(["a.tif", live_tmp, foreign])
    finally:
        live.kill()
        live.wait()


def test_sigkill_then_rerun_leaves_no_temporary(files, tmp_path, out):
    """kill -9 a command-line job while its temporaries exist; the next run into the folder removes them."""
    data, _, info = read_all(files["scene.tif"])
    big = str(tmp_path / "big.tif")
    write_raster(big, np.tile(data, (1, 3, 3)), georeference(90, 90), wavelengths=info.wavelengths)
    command = [sys.executable, "-m", "core.jobs.unmix", big, files["model.pt"], str(out / "a.tif"),
               "--max-iter", "1000", "--tolerance", "1e-12", "--memory-mb", "16", "--output-rmse", str(out / "r.tif")]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(os.listdir(out)) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    left = os.listdir(out)
    assert len(left) >= 2 and all(name.startswith(".deepgu-") for name in left), left
    done = subprocess.run(command[:3] + [files["scene.tif"]] + command[4:6] + ["--max-iter", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["a.tif"]


def test_raster_writer_temporaries_carry_their_owner(tmp_path):
    """The temporary names: .deepgu-<host>-<pid>-<start>-..., the data file's and GDAL's ENVI header alike."""
    with RasterWriter(str(tmp_path / "e.img"), georeference(4, 4), 1) as writer:
        names = sorted(os.listdir(tmp_path))
        writer.write(np.ones((1, 4, 4), np.float32), 0)
    owner = ".deepgu-%s-%d-%d-" % (atomic._HOST, os.getpid(), atomic._process_start(os.getpid()))
    assert names and all(name.startswith(owner) for name in names), names
    assert sorted(os.listdir(tmp_path)) == ["e.hdr", "e.img", "e.img.aux.xml"]      # GDAL's statistics too


def test_a_workflow_backup_of_an_old_file_survives_a_later_steps_sweep(tmp_path):
    """The workflow's hard-link backups share the old file's mtime: named without an owner, a later step's sweep
    of stale temporaries (files unchanged for a day) took them, and a failure then could not restore the file."""
    from core.files.atomic import sweep_stale
    from core.files.rollback import OutputRollback

    path = tmp_path / "fcls.tif"
    path.write_bytes(b"the user's old file")
    old = time.time() - 3 * 24 * 3600
    os.utime(path, (old, old))
    rollback = OutputRollback([str(path)])
    sweep_stale(str(tmp_path))                     # the next step's first write into the folder
    path.unlink()
    path.write_bytes(b"a step's new file")
    assert rollback.rollback() == []
    assert path.read_bytes() == b"the user's old file"
    assert [p.name for p in tmp_path.iterdir()] == ["fcls.tif"]


@pytest.mark.parametrize("link_error", [OSError(1, "Operation not permitted"), NotImplementedError()])
def test_commit_without_hard_links_backs_up_by_renaming(tmp_path, monkeypatch, link_error):
    """A file system without hard links (FAT, some network shares) or Windows' os.link: backups are renamed, a
    failed rename still puts every target back, and a good commit leaves no backup."""
    a, b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    for path in (a, b):
        with open(path, "w") as f:
            f.write("old")

    def no_link(*args, **kwargs):
        raise link_error

    monkeypatch.setattr(os, "link", no_link)
    real_replace = os.replace

    def failing_replace(src, dst):
        if dst == b and not src.endswith(".old"):
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(DeepGUError, match=r"cannot write OUTPUT_RMSE '.*b\.csv': Input/output error"):
        with atomic.together():
            for path, name in ((a, "OUTPUT"), (b, "OUTPUT_RMSE")):
                with atomic.atomic_output(path, what=name) as f:
                    f.write("new")
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv"] and open(a).read() == open(b).read() == "old"
    monkeypatch.setattr(os, "replace", real_replace)
    with atomic.together():
        for path in (a, b):
            with atomic.atomic_output(path) as f:
                f.write("new")
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.csv"] and open(a).read() == open(b).read() == "new"


def test_commit_never_moves_an_existing_target_away(tmp_path, monkeypatch):
    """With hard links the old file stays at its path until the new one replaces it in one rename: a SIGKILL
    at any moment of the commit leaves every target whole."""
    target = str(tmp_path / "a.tif")
    write_raster(target, np.zeros((1, 4, 4), np.float32), georeference(4, 4))
    moves = []
    real_replace = os.replace

    def recording_replace(src, dst):
        moves.append((os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    write_raster(target, np.ones((1, 4, 4), np.float32), georeference(4, 4))
    assert moves and all(dst == "a.tif" and src.startswith(".deepgu-") for src, dst in moves), moves
    assert sorted(os.listdir(tmp_path)) == ["a.tif"] and read_all(target)[0].min() == 1
