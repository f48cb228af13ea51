"""Time you can see: every algorithm's log ends with its wall time, the DeepGU step says its ms/pixel."""

import re
import time

from core.jobs import unmix as unmix_job
from helpers import Recorder, scene_and_model


def test_an_algorithm_logs_its_wall_time_through_qgis_process(qgis_process, tmp_path):
    start = time.perf_counter()
    done = qgis_process.run("deepgu:synthetic", KIND=0, ROWS=12, COLS=10, OUTPUT=tmp_path / "s.tif")
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = re.findall(r"^deepgu:synthetic done in (\d+\.\d) s$", done.stdout, flags=re.M)
    assert len(found) == 1, done.stdout[-2000:]
    assert 0.0 <= float(found[0]) <= elapsed            # the algorithm's own time, within the process's


def test_unmix_job_logs_pixels_seconds_and_ms_per_pixel(tmp_path, one_thread):
    scene, image, model = scene_and_model(tmp_path, 12, 0, 3)
    recorder = Recorder()
    start = time.perf_counter()
    unmix_job.run(image, model, str(tmp_path / "a.tif"), feedback=recorder)
    elapsed = time.perf_counter() - start
    lines = [m for m in recorder.messages if m.startswith("DeepGU:")]
    assert len(lines) == 1, recorder.messages
    match = re.fullmatch(r"DeepGU: (\d+) pixels unmixed in (\d+\.\d) s, (\d+\.\d{3}) ms/pixel", lines[0])
    assert match, lines[0]
    pixels, seconds, per_pixel = int(match[1]), float(match[2]), float(match[3])
    assert pixels == 144 and seconds <= elapsed + 0.05
    assert abs(per_pixel - 1e3 * seconds / pixels) <= 1e3 * 0.05 / pixels + 0.001   # the shown seconds are rounded
    assert recorder.messages[-1] == lines[0]            # the last line of the step
