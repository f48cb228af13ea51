"""Hostile cases of issue 24 (items 4, 5, 6, 8 and 9): clusters that hang or are not Dask, companion rasters from
another place, half-finished workflows, units that disagree and messages that blame the wrong parameter.

Each refusal is checked as in ``tests/test_hostile.py``: one line naming the parameter the user typed, no
traceback, no output and no temporary file left, every input byte-identical.
"""

import http.server
import os
import socket
import threading
import time

import numpy as np
import pytest

import test_hostile
from helpers import Recorder, processing_script
from test_hostile import Inputs, core_refused, refused
from core.running import cluster
from core.errors import DeepGUError
from core.jobs import fcls as fcls_job

#: the fixtures of tests/test_hostile.py: its 30 x 30 scene with endmembers, bundles and model; an empty folder
files, out = test_hostile.files, test_hostile.out


# --- item 4: CLUSTER ---------------------------------------------------------------------------

class _Server:
    """A TCP server on 127.0.0.1 in a thread: ``answer`` None accepts and stays silent, otherwise it reads a request
    and sends ``answer`` (bytes). A subclass changes ``scheme`` and the socket it talks on (:meth:`_talk`)."""

    scheme = "tcp"

    def __init__(self, answer=None):
        self.answer = answer
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.address = "%s://127.0.0.1:%d" % (self.scheme, self.socket.getsockname()[1])
        self.held = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _talk(self, connection):
        """The socket that reads the request and sends the answer."""
        connection.settimeout(30)
        return connection

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.held.append(connection)
            try:
                talk = self._talk(connection)
                if self.answer is not None:
                    talk.recv(4096)
                    talk.sendall(self.answer)
            except OSError:
                pass

    def close(self):
        self.socket.close()
        for connection in self.held:
            connection.close()


@pytest.fixture
def silent_server():
    server = _Server()
    yield server
    server.close()


@pytest.fixture
def http_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "tcp://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_default_connect_timeout_is_sane(monkeypatch):
    monkeypatch.delenv(cluster.TIMEOUT_VARIABLE, raising=False)
    assert 5 <= cluster.connect_timeout() <= 60
    for bad in ("0", "-3", "abc", "1e9"):
        monkeypatch.setenv(cluster.TIMEOUT_VARIABLE, bad)
        assert cluster.connect_timeout() == cluster.CONNECT_TIMEOUT
    monkeypatch.setenv(cluster.TIMEOUT_VARIABLE, "1.5")
    assert cluster.connect_timeout() == 1.5


def test_silent_scheduler_fails_within_the_timeout(silent_server, files, out, monkeypatch):
    monkeypatch.setenv(cluster.TIMEOUT_VARIABLE, "1")
    inputs = Inputs(files["scene.tif"], files["em.csv"])
    start = time.monotonic()
    message = core_refused(lambda: fcls_job.run(files["scene.tif"], files["em.csv"], str(out / "a.tif"),
                                                cluster=silent_server.address), "CLUSTER", out, inputs,
                           match="sent nothing within 1 s")
    assert time.monotonic() - start < 10, message
    assert silent_server.address in message


def test_http_server_is_named_as_such(http_server, files, out, monkeypatch):
    monkeypatch.setenv(cluster.TIMEOUT_VARIABLE, "1")
    inputs = Inputs(files["scene.tif"], files["em.csv"])
    message = core_refused(lambda: fcls_job.run(files["scene.tif"], files["em.csv"], str(out / "a.tif"),
                                                cluster=http_server), "CLUSTER", out, inputs,
                           match="is not a Dask scheduler (it answered like an HTTP server)")
    assert "memory" not in message


def test_text_protocol_and_closed_port_are_refused(files, out, monkeypatch):
    monkeypatch.setenv(cluster.TIMEOUT_VARIABLE, "1")
    server = _Server(answer=b"SSH-2.0-OpenSSH_9.2\r\n")
    try:
        with pytest.raises(DeepGUError, match="CLUSTER: .* is not a Dask scheduler"):
            cluster.probe_scheduler(server.address, 1)
    finally:
        server.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()        # nothing listens there now
    with pytest.raises(DeepGUError, match="CLUSTER: cannot reach the Dask scheduler at tcp://127.0.0.1:%d" % port):
        cluster.probe_scheduler("tcp://127.0.0.1:%d" % port, 1)


def test_http_scheduler_through_qgis(qgis_process, http_server, files, out):
    inputs = Inputs(files["scene.tif"], files["em.csv"])
    previous = qgis_process.env.get(cluster.TIMEOUT_VARIABLE)
    qgis_process.env[cluster.TIMEOUT_VARIABLE] = "1"
    try:
        done = qgis_process.run("deepgu:fcls", INPUT=files["scene.tif"], ENDMEMBERS=files["em.csv"],
                                OUTPUT=str(out / "a.tif"), CLUSTER=http_server, timeout=120)
    finally:
        if previous is None:
            del qgis_process.env[cluster.TIMEOUT_VARIABLE]
        else:
            qgis_process.env[cluster.TIMEOUT_VARIABLE] = previous
    line = refused(done, "CLUSTER", out, inputs)
    assert "answered like an HTTP server" in line, line


def test_local_cluster_is_capped_at_the_cpus(files, out, monkeypatch):
    """local:999 starts one worker per usable core (one here, by a patched count, to keep the test short), says so,
    gives the in-process result and leaves no child process behind (multiprocessing's resource tracker, one per
    process for its whole life, aside) and no POSIX semaphore: every one this process registers with that tracker
    (the names of /dev/shm/sem.*; local:999 once leaked 1,548) is unregistered and gone afterwards."""
    from multiprocessing import resource_tracker
    psutil = pytest.importorskip("psutil")
    semaphores, live = [], set()

    def register(name, kind, register=resource_tracker.register):
        if kind == "semaphore":
            semaphores.append(name)
            live.add(name)
        return register(name, kind)

    def unregister(name, kind, unregister=resource_tracker.unregister):
        live.discard(name)
        return unregister(name, kind)

    monkeypatch.setattr(resource_tracker, "register", register)
    monkeypatch.setattr(resource_tracker, "unregister", unregister)
    assert cluster.usable_cpus() == len(os.sched_getaffinity(0))
    assert cluster.capped_workers(999) == cluster.usable_cpus()
    assert cluster.capped_workers(1) == 1
    monkeypatch.setattr(cluster, "usable_cpus", lambda: 1)
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    feedback = Recorder()
    here, there = str(out / "here.tif"), str(out / "there.tif")
    fcls_job.run(files["scene.tif"], files["em.csv"], here)
    fcls_job.run(files["scene.tif"], files["em.csv"], there, cluster="local:999", feedback=feedback)
    assert any("local:999" in m and "starting 1" in m for m in feedback.messages), feedback.messages
    assert any("local Dask cluster of 1 worker" in m for m in feedback.messages), feedback.messages
    from core.files.raster_io import read_all
    assert np.array_equal(read_all(here)[0], read_all(there)[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:     # multiprocessing's one resource tracker lives as long as this process
        left = [p.cmdline() for p in psutil.Process().children(recursive=True) if p.pid not in children
                and "resource_tracker" not in " ".join(p.cmdline())]
        if not left:
            break
        time.sleep(0.2)
    assert not left, left
    assert semaphores, "no semaphore seen: the count watches the wrong thing"
    assert not live and not [name for name in semaphores if os.path.exists("/dev/shm/sem." + name.lstrip("/"))]


# --- item 5: companion rasters on INPUT's grid -------------------------------------------------------

def _halves(tmp_path, crs_epsg=32633):
    """A 20 x 40 abundance map cut into its left and right 20 x 20 halves, each georeferenced where it lies."""
    from core.files.raster_io import georeference, write_raster
    rng = np.random.default_rng(0)
    A = rng.dirichlet(np.ones(3), size=(20, 40)).transpose(2, 0, 1).astype(np.float32)
    left, right = str(tmp_path / "left.tif"), str(tmp_path / "right.tif")
    write_raster(left, A[:, :, :20], georeference(20, 20, crs_epsg=crs_epsg))
    write_raster(right, A[:, :, 20:], georeference(20, 20, crs_epsg=crs_epsg, origin=(500000.0 + 600, 4500000.0)))
    return left, right


def test_metrics_refuses_a_reference_from_another_place_through_qgis(qgis_process, tmp_path, out):
    left, right = _halves(tmp_path)
    inputs = Inputs(left, right)
    done = qgis_process.run("deepgu:metrics", ESTIMATE=left, REFERENCE=right, OUTPUT_REPORT=str(out / "r.json"))
    line = refused(done, "REFERENCE", out, inputs)
    assert "ESTIMATE" in line and "20 columns and 0 rows" in line, line


def test_grid_rules(tmp_path):
    """Size, pixel size, origin (to a thousandth of a pixel) and CRS; a raster without georeferencing matches by
    size; a window is on its own grid."""
    from core.checks.grid import check_same_grid
    from core.files.raster_io import georeference, open_raster, write_raster
    from core.files.window import PixelWindow
    data = np.ones((2, 10, 10), np.float32)
    paths = {}
    for name, like in (("ref", georeference(10, 10)),
                       ("tiny_shift", georeference(10, 10, origin=(500000.0 + 30 * 1e-4, 4500000.0))),
                       ("shift", georeference(10, 10, origin=(500000.0 + 30 * 0.5, 4500000.0))),
                       ("pixel", georeference(10, 10, pixel_size=30.001)),
                       ("crs", georeference(10, 10, crs_epsg=32634)),
                       ("small", georeference(10, 9))):
        paths[name] = str(tmp_path / (name + ".tif"))
        write_raster(paths[name], data[:, :, :like.cols], like)
    bare = str(tmp_path / "bare.tif")
    from osgeo import gdal
    gdal.GetDriverByName("GTiff").Create(bare, 10, 10, 2, gdal.GDT_Float32).FlushCache()    # closed at once
    info = {name: open_raster(path, name.upper()) for name, path in dict(paths, bare=bare).items()}
    ref = info["ref"]
    check_same_grid(info["tiny_shift"], ref)
    check_same_grid(info["bare"], ref)       # no georeferencing: compared by size only
    check_same_grid(ref, info["bare"])
    for name, match in (("shift", "SHIFT starts 0.5 columns and 0 rows away from REF"),
                        ("pixel", "SHIFT|PIXEL has pixels of 30.001 x 30.001 map units but REF has 30 x 30"),
                        ("crs", "CRS and REF have different coordinate reference systems \\(EPSG:32634 and "
                                "EPSG:32633\\)"),
                        ("small", "SMALL is 10 x 9 pixels but REF is 10 x 10")):
        with pytest.raises(DeepGUError, match=match):
            check_same_grid(info[name], ref)
    window = PixelWindow(2, 3, 5, 4)
    cut = str(tmp_path / "cut.tif")
    write_raster(cut, data[:, :5, :4], ref.window(window))
    check_same_grid(open_raster(cut, "CUT"), ref.window(window))
    with pytest.raises(DeepGUError, match="CUT starts 3 columns and 2 rows away"):
        check_same_grid(open_raster(cut, "CUT"), ref.window(PixelWindow(0, 0, 5, 4)))


def test_init_abundances_and_bundle_abundances_from_another_place(files, tmp_path, out):
    from core.files.raster_io import open_raster, read_all, write_raster
    from core.files.window import PixelWindow
    data, _, info = read_all(files["scene.tif"])
    fcls = str(tmp_path / "fcls.tif")
    fcls_job.run(files["scene.tif"], files["em.csv"], fcls)
    A = read_all(fcls)[0]
    moved = str(tmp_path / "moved.tif")
    x0, a, b, y0, d, e = info.transform
    write_raster(moved, A, open_raster(fcls).__class__(**dict(vars(info), transform=(x0 + 5 * a, a, b, y0, d, e),
                                                               _dataset=None)))
    inputs = Inputs(files["scene.tif"], files["em.csv"], files["model.pt"], fcls, moved)
    from core.jobs import bundles as bundles_job
    from core.jobs import unmix as unmix_job
    message = core_refused(lambda: unmix_job.run(files["scene.tif"], files["model.pt"], str(out / "a.tif"),
                                                 init_abundances=moved), "INIT_ABUNDANCES", out, inputs)
    assert "INPUT" in message and "5 columns" in message, message
    message = core_refused(lambda: bundles_job.run(files["scene.tif"], files["em.csv"], str(out / "b.csv"),
                                                   method="spatial", abundances_path=moved), "ABUNDANCES", out,
                           inputs)
    assert "INPUT" in message and "5 columns" in message, message
    # the EXTENT window's own size: on the window's grid, not at INPUT's corner
    window = PixelWindow(10, 10, 12, 12)
    corner = str(tmp_path / "corner.tif")
    write_raster(corner, A[:, :12, :12], info)
    message = core_refused(lambda: unmix_job.run(files["scene.tif"], files["model.pt"], str(out / "a.tif"),
                                                 init_abundances=corner, window=window), "INIT_ABUNDANCES", out,
                           inputs)
    assert "EXTENT window" in message and "-10 columns and -10 rows" in message, message


def test_trainvae_compares_bundle_and_endmember_wavelengths(files, tmp_path, out):
    from core.jobs import train as train_job
    from core.files.library import read_spectra, write_spectra
    bundles = read_spectra(files["bundles.csv"])
    shifted = str(tmp_path / "shifted.csv")
    write_spectra(shifted, bundles.spectra, bundles.materials, bundles.wavelengths + 25.0, bundles.rows, bundles.cols)
    inputs = Inputs(files["em.csv"], shifted)
    message = core_refused(lambda: train_job.run(shifted, files["em.csv"], str(out / "m.pt"), epochs=1), "BUNDLES",
                           out, inputs, "wavelengths differ from those of ENDMEMBERS (by up to 25 nm)")
    assert "ENDMEMBERS" in message


# --- item 6: the workflow checks first and leaves nothing when a step fails ------------------------------------

def _workflow_outputs(folder, **changes):
    """The workflow's output parameters, every one a file in ``folder`` (or as ``changes`` say)."""
    outputs = {"endmembers:ENDMEMBERS_CSV": "em.csv", "fcls:FCLS_ABUNDANCES": "fcls.tif",
               "bundles:BUNDLES_CSV": "b.csv", "trainvae:MODEL_FILE": "model.pt",
               "unmix:DEEPGU_ABUNDANCES": "deepgu.tif"}
    outputs = {name: str(folder / file) for name, file in outputs.items()}
    outputs.update(changes)
    return outputs


@pytest.mark.parametrize("case, parameter, match", [
    ("materials", "MATERIALS", "MATERIALS must be between 2 and 12 (got 13)"),
    ("outside", "EXTENT", "does not intersect"),
    ("one pixel", "EXTENT", "covers 1 x 1 pixels of INPUT, fewer than the 3 materials (MATERIALS)"),
    ("missing folder", "unmix:DEEPGU_ABUNDANCES", "the output folder does not exist"),
    ("input", "unmix:DEEPGU_ABUNDANCES", "is the same file as the input INPUT"),
    ("extension", "fcls:FCLS_ABUNDANCES", "cannot write '.png' files"),
    ("library extension", "bundles:BUNDLES_CSV", "cannot write spectral library"),
])
def test_workflow_checks_everything_before_its_first_step(qgis_process, files, out, tmp_path, case, parameter,
                                                          match):
    scene = files["scene.tif"]
    inputs = Inputs(scene)
    parameters = dict(INPUT=scene, MATERIALS=3)
    x0, y0 = 500000.0, 4500000.0
    if case == "materials":
        parameters["MATERIALS"] = 13
    elif case == "outside":
        parameters["EXTENT"] = "0,1,0,1"
    elif case == "one pixel":
        parameters["EXTENT"] = "%r,%r,%r,%r" % (x0 + 100, x0 + 110, y0 - 110, y0 - 100)
    outputs = _workflow_outputs(out, **{
        "missing folder": {"unmix:DEEPGU_ABUNDANCES": str(tmp_path / "missing" / "d.tif")},
        "input": {"unmix:DEEPGU_ABUNDANCES": scene},
        "extension": {"fcls:FCLS_ABUNDANCES": str(out / "fcls.png")},
        "library extension": {"bundles:BUNDLES_CSV": str(out / "b.txt")},
    }.get(case, {}))
    done = qgis_process.run("deepgu:workflow", timeout=120, **parameters, **outputs)
    line = refused(done, parameter, out, inputs)
    assert match in line, line
    assert "Prepare algorithm" not in done.stdout and "refined on" not in done.stdout     # no step ran


def _watch(process, path, timeout=120):
    """Wait until ``path`` exists (or the process ended)."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert os.path.exists(path), "%s never appeared" % path


def test_workflow_step_failure_leaves_no_output_and_restores_replaced_files(qgis_process, files, out, tmp_path):
    """The bundles step fails (its output folder vanished after the check): the endmember and FCLS outputs of the
    steps before it are removed, an FCLS output that existed before gets its old content and style back, and the
    step's error names the workflow's output parameter."""
    import subprocess
    from test_hostile import checksum
    late = tmp_path / "late"
    late.mkdir()
    old = out / "fcls.tif"
    old.write_bytes(b"the user's old file")
    (out / "fcls.qml").write_text("the user's style")
    before = {name: checksum(str(out / name)) for name in ("fcls.tif", "fcls.qml")}
    inputs = Inputs(files["scene.tif"])
    outputs = _workflow_outputs(out, **{"bundles:BUNDLES_CSV": str(late / "b.csv")})
    args = ["run", "deepgu:workflow", "--", "INPUT=" + files["scene.tif"], "MATERIALS=3"] + [
        "%s=%s" % item for item in outputs.items()]
    process = subprocess.Popen(["qgis_process.bin"] + args, env=qgis_process.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    _watch(process, str(out / "em.csv"))
    late.rmdir()
    output = process.communicate(timeout=300)[0]
    assert process.returncode != 0, output[-2000:]
    assert "cannot write bundles:BUNDLES_CSV '%s'" % (late / "b.csv") in output, output[-2000:]
    assert "cannot write OUTPUT" not in output.split("ERROR:", 1)[-1], output[-2000:]
    last = [line for line in output.splitlines() if line.startswith("ERROR:")][-1]
    assert "stopped in its step bundles" in last and "none of the workflow's outputs is left" in last, last
    assert sorted(os.listdir(out)) == ["fcls.qml", "fcls.tif"], os.listdir(out)
    assert {name: checksum(str(out / name)) for name in before} == before
    assert inputs.unchanged()


def test_sigterm_between_workflow_steps_leaves_nothing(qgis_process, files, out):
    import signal
    import subprocess
    inputs = Inputs(files["scene.tif"])
    args = ["run", "deepgu:workflow", "--", "INPUT=" + files["scene.tif"], "MATERIALS=3"] + [
        "%s=%s" % item for item in _workflow_outputs(out).items()]
    process = subprocess.Popen(["qgis_process.bin"] + args, env=qgis_process.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    _watch(process, str(out / "fcls.tif"))
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode != 0, output[-2000:]
    assert os.listdir(out) == [], os.listdir(out)
    assert inputs.unchanged()


# --- item 9: messages that name what the user typed ---------------------------------------------------------

@pytest.mark.parametrize("delimiter, decimal", [(";", ","), (";", "."), ("\t", "."), ("\t", ",")])
def test_csv_with_semicolons_or_tabs_reads_as_with_commas(files, tmp_path, delimiter, decimal):
    """A spreadsheet of a decimal-comma locale writes 'wavelength;soil' and '0,123': the same library."""
    from core.files.library import read_spectra
    library = read_spectra(files["em.csv"])
    lines = [delimiter.join(["wavelength"] + library.materials)]
    for wavelength, row in zip(library.wavelengths, library.spectra):
        lines.append(delimiter.join(("%.9g" % v).replace(".", decimal) for v in [wavelength, *row]))
    path = str(tmp_path / "european.csv")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    again = read_spectra(path)
    assert again.materials == library.materials
    np.testing.assert_allclose(again.wavelengths, library.wavelengths, rtol=1e-7)
    np.testing.assert_allclose(again.spectra, library.spectra, rtol=1e-7)


def test_csv_with_another_separator_says_so(tmp_path):
    from core.files.library import read_spectra
    path = str(tmp_path / "pipes.csv")
    with open(path, "w") as f:
        f.write("wavelength|soil|tree\n450|0.1|0.2\n")
    with pytest.raises(DeepGUError, match="separated by commas \\(or semicolons or tabs\\)"):
        read_spectra(path)


def test_upper_case_csv_library_through_qgis(qgis_process, files, tmp_path, out):
    import shutil
    upper = str(tmp_path / "EM.CSV")
    shutil.copy(files["em.csv"], upper)
    done = qgis_process.run("deepgu:fcls", INPUT=files["scene.tif"], ENDMEMBERS=upper, OUTPUT=str(out / "a.tif"))
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert os.path.exists(str(out / "a.tif"))


def test_memory_mb_below_its_minimum_says_the_minimum_through_qgis(qgis_process, files, out):
    inputs = Inputs(files["scene.tif"], files["em.csv"])
    done = qgis_process.run("deepgu:fcls", INPUT=files["scene.tif"], ENDMEMBERS=files["em.csv"], MEMORY_MB=15,
                            OUTPUT=str(out / "a.tif"))
    line = refused(done, "MEMORY_MB", out, inputs)
    assert "MEMORY_MB must be at least 16 (got 15)" in done.stdout + done.stderr, line


@pytest.mark.parametrize("algorithm", ["deepgu:fcls", "deepgu:unmix"])
def test_one_pixel_extent_blames_extent_through_qgis(qgis_process, files, out, algorithm):
    inputs = Inputs(files["scene.tif"], files["em.csv"], files["model.pt"])
    companion = {"deepgu:fcls": {"ENDMEMBERS": files["em.csv"]}, "deepgu:unmix": {"MODEL": files["model.pt"]}}
    x0, y0 = 500000.0, 4500000.0
    done = qgis_process.run(algorithm, INPUT=files["scene.tif"], OUTPUT=str(out / "a.tif"),
                            EXTENT="%r,%r,%r,%r" % (x0 + 100, x0 + 110, y0 - 110, y0 - 100), **companion[algorithm])
    line = refused(done, "EXTENT", out, inputs)
    assert line.split("\t")[-1].startswith("EXTENT (its window of 1 x 1 pixels of INPUT"), line
    assert "only 1 distinct valid pixel" in line, line


# --- item 8: scene and library in different units -----------------------------------------------------------

def test_scene_in_raw_numbers_with_a_reflectance_library_through_qgis(qgis_process, files, tmp_path, out):
    """The scene x 10,000 (raw DN, no scale factor) with its 0-1 endmembers: refused naming ENDMEMBERS, both
    magnitudes and the missing scale factor; with the scale factor set on the file, it unmixes as the original."""
    from osgeo import gdal
    from core.files.raster_io import read_all, write_raster
    data, _, info = read_all(files["scene.tif"])
    raw = str(tmp_path / "raw.tif")
    write_raster(raw, data * 10000.0, info, wavelengths=info.wavelengths)
    inputs = Inputs(raw, files["em.csv"])
    done = qgis_process.run("deepgu:fcls", INPUT=raw, ENDMEMBERS=files["em.csv"], OUTPUT=str(out / "a.tif"))
    line = refused(done, "ENDMEMBERS", out, inputs)
    assert "INPUT's values look about 10000x larger than ENDMEMBERS'" in line, line
    assert "set a scale factor of 0.0001 on INPUT" in line and "median pixel norm" in line, line
    ds = gdal.Open(raw, gdal.GA_Update)          # the suggested fix
    for band in range(ds.RasterCount):
        ds.GetRasterBand(band + 1).SetScale(0.0001)
    ds = None
    here, fixed = str(out / "here.tif"), str(out / "fixed.tif")
    fcls_job.run(files["scene.tif"], files["em.csv"], here)
    fcls_job.run(raw, files["em.csv"], fixed)
    np.testing.assert_allclose(read_all(fixed)[0], read_all(here)[0], atol=1e-4)


def test_library_in_other_units_or_negative(files, tmp_path, out):
    from core.jobs import bundles as bundles_job
    from core.jobs import unmix as unmix_job
    from core.files.library import read_spectra, write_spectra
    library = read_spectra(files["em.csv"])
    percent, negative = str(tmp_path / "percent.csv"), str(tmp_path / "negative.csv")
    write_spectra(negative, -library.spectra, library.materials, library.wavelengths)
    inputs = Inputs(files["scene.tif"], files["em.csv"], negative)
    core_refused(lambda: fcls_job.run(files["scene.tif"], negative, str(out / "a.tif")), "ENDMEMBERS", out, inputs,
                 "material '%s' is negative in %d of its %d bands" % (
                     library.materials[0], int(np.sum(library.spectra[:, 0] > 0)), library.n_bands))
    write_spectra(percent, library.spectra * 100, library.materials, library.wavelengths)
    inputs = Inputs(files["scene.tif"], percent)
    core_refused(lambda: bundles_job.run(files["scene.tif"], percent, str(out / "b.csv")), "ENDMEMBERS", out, inputs,
                 "INPUT's values look about 100x smaller than ENDMEMBERS' ")
    # the model's references: a scene in DN against a model trained on reflectance
    from core.files.raster_io import read_all, write_raster
    data, _, info = read_all(files["scene.tif"])
    raw = str(tmp_path / "raw.tif")
    write_raster(raw, data * 10000.0, info, wavelengths=info.wavelengths)
    inputs = Inputs(raw, files["model.pt"])
    core_refused(lambda: unmix_job.run(raw, files["model.pt"], str(out / "a.tif")), "MODEL", out, inputs,
                 "look about 10000x larger than MODEL's reference endmembers'")


def test_magnitude_rule_leaves_realistic_brightness_alone():
    """Pixels mixed from the library and scaled by illumination from 0.2 to 3 (shade to glare) all pass; x100 and
    x0.001 are refused. Against the bound of the module docstring: a mixture's norm is at least min ||m_p|| /
    sqrt(P)."""
    from osgeo import gdal
    from core.checks.magnitude import check_magnitudes
    from core.files.raster_io import georeference
    from core.evaluation.synthetic import load_library

    _, spectra, _ = load_library()
    M = spectra[:, :4].astype(np.float64)
    rng = np.random.default_rng(1)
    A = rng.dirichlet(np.ones(4), size=64 * 64).T
    for scale, ok in ((0.2, True), (1.0, True), (3.0, True), (100.0, False), (0.001, False)):
        image = (M @ A * scale).reshape(M.shape[0], 64, 64).astype(np.float32)
        info = georeference(64, 64)     # an in-memory raster for read_block
        info.n_bands, info.nodata = M.shape[0], [None] * M.shape[0]
        info.scales, info.offsets = [1.0] * M.shape[0], [0.0] * M.shape[0]
        ds = gdal.GetDriverByName("MEM").Create("", 64, 64, M.shape[0], gdal.GDT_Float32)
        for band in range(M.shape[0]):
            ds.GetRasterBand(band + 1).WriteArray(image[band])
        info._dataset = ds
        if ok:
            check_magnitudes(info, M, "ENDMEMBERS")
        else:
            with pytest.raises(DeepGUError, match="ENDMEMBERS"):
                check_magnitudes(info, M, "ENDMEMBERS")


def test_cancel_between_workflow_steps_leaves_nothing(files, out, tmp_path):
    """The QGIS dialog's cancel (processing.run with a feedback canceled once the FCLS step is done): the outputs of
    the completed steps are removed, both a file the user named (ENDMEMBERS_CSV) and those left as TEMPORARY_OUTPUT,
    which go to QGIS's Processing folder; that folder lives as long as QGIS (qgis_process removes it when it exits,
    so only a run inside QGIS can show what is left in it). The DeepGU output the user named is not written."""
    import subprocess
    import sys
    from conftest import qgis_env, require_qgis
    require_qgis()
    outputs = _workflow_outputs(out, **{name: "TEMPORARY_OUTPUT" for name in (
        "fcls:FCLS_ABUNDANCES", "bundles:BUNDLES_CSV", "trainvae:MODEL_FILE")})
    script = processing_script("""
import os
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsProcessingUtils

class CancelAfterFcls(QgsProcessingFeedback):
    def pushInfo(self, info):
        print('INFO', info, flush=True)
        if info.strip().startswith('deepgu:fcls done'):
            self.cancel()

folder = QgsProcessingUtils.tempFolder()
try:
    processing.run('deepgu:workflow', dict(INPUT=%r, MATERIALS=3, **%r), feedback=CancelAfterFcls())
    print('FINISHED')
except QgsProcessingException as error:
    print('REFUSED', error)
print('LEFT', sorted(os.path.relpath(os.path.join(top, name), folder) for top, _, names in os.walk(folder)
                     for name in names))
""" % (files["scene.tif"], outputs))
    done = subprocess.run([sys.executable, "-c", script], env=qgis_env(tmp_path / "cfg"), capture_output=True,
                          text=True, timeout=600)
    assert "INFO deepgu:fcls done" in done.stdout, done.stdout[-3000:] + done.stderr[-3000:]
    assert "REFUSED" in done.stdout and "none of the workflow's outputs is left" in done.stdout, \
        done.stdout[-3000:] + done.stderr[-3000:]
    assert "LEFT []" in done.stdout, done.stdout[-3000:]
    assert os.listdir(out) == [], os.listdir(out)


def test_scheduler_port_out_of_range_and_unknown_host(files, out, monkeypatch):
    monkeypatch.setenv(cluster.TIMEOUT_VARIABLE, "1")
    inputs = Inputs(files["scene.tif"], files["em.csv"])
    core_refused(lambda: fcls_job.run(files["scene.tif"], files["em.csv"], str(out / "a.tif"),
                                      cluster="tcp://127.0.0.1:99999"), "CLUSTER", out, inputs,
                 "must be between 1 and 65535")
    core_refused(lambda: fcls_job.run(files["scene.tif"], files["em.csv"], str(out / "a.tif"),
                                      cluster="tcp://no-such-host.invalid:8786"), "CLUSTER", out, inputs,
                 "cannot reach the Dask scheduler at tcp://no-such-host.invalid:8786")
