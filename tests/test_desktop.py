"""The QGIS desktop under Xvfb: the toolbox shows DeepGU with every algorithm and the workflow
model, and the deepgu:unmix dialog opens. Screenshots are kept in tests/artifacts/."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, qgis_env, require_qgis

ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


def test_toolbox_and_unmix_dialog(tmp_path):
    require_qgis()
    if shutil.which("xvfb-run") is None or shutil.which("qgis") is None:
        if os.environ.get("DEEPGU_REQUIRE_QGIS"):
            pytest.fail("xvfb-run or the qgis desktop is missing")
        pytest.skip("no xvfb-run or qgis desktop")
    os.makedirs(ARTIFACTS, exist_ok=True)
    env = qgis_env(tmp_path / "cfg")
    env.pop("QT_QPA_PLATFORM")
    env["DEEPGU_DESKTOP_OUT"] = ARTIFACTS
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "install_plugin.sh")],
                   env=dict(env, QT_QPA_PLATFORM="offscreen"), check=True, capture_output=True)
    report_path = os.path.join(ARTIFACTS, "report.json")
    if os.path.exists(report_path):
        os.unlink(report_path)
    subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x900x24", "qgis", "--nologo", "--noversioncheck",
                    "--code", os.path.join(ROOT, "tests", "desktop_startup.py")],
                   env=env, capture_output=True, timeout=300)
    with open(report_path) as f:
        report = json.load(f)
    assert "error" not in report, report.get("error")
    expected = ["deepgu:%s" % n for n in ("bundles", "compare", "elmm", "endmembers", "fcls", "glmm",
                                          "install_dependencies", "metrics", "plmm", "regions", "samplevae",
                                          "synthetic", "trainvae", "unmix", "vca", "workflow")]
    assert report["algorithms"] == expected
    assert len(report["toolbox"]) == len(expected) and "DeepGU unmixing" in report["toolbox"]
    assert "DeepGU workflow (endmembers, FCLS, bundles, VAEs, unmixing)" in report["toolbox"]
    # QGIS 3.22 titles the dialog with the algorithm's name, later versions put the provider's name before it
    assert report["dialog_title"] in ("DeepGU unmixing", "DeepGU - DeepGU unmixing")
    for png in ("desktop.png", "unmix_dialog.png"):
        assert os.path.getsize(os.path.join(ARTIFACTS, png)) > 10000
