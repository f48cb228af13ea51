"""Figure and summary of a demo run: true vs FCLS vs DeepGU abundances, learned variability.

    .venv/bin/python scripts/demo_figure.py OUT_FOLDER
reads truth.tif, library.csv, fcls.tif, deepgu.tif, model.pt, bundles.csv and metrics_*.json from
OUT_FOLDER (written by scripts/demo.sh) and writes OUT_FOLDER/figure.png. Every column is a true
material; the estimated materials (FCLS and DeepGU abundances, the model's VAEs) are put under the
true material they are matched to (least abundance RMSE, :func:`core.evaluation.metrics.match_materials`).
"""

import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from core.models.inspect_model import sample_latent_grid
from core.files.library import read_spectra
from core.evaluation.metrics import match_materials
from core.models.model_file import load_model
from core.files.raster_io import read_all


def main(folder):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    truth, _, truth_info = read_all(os.path.join(folder, "truth.tif"))
    P = truth.shape[0]
    maps, matched_names = {"True": truth}, {}
    for label, name in (("FCLS", "fcls.tif"), ("DeepGU", "deepgu.tif")):
        estimate, valid, info = read_all(os.path.join(folder, name))
        estimate[:, ~valid] = np.nan
        perm = match_materials(np.nan_to_num(estimate).reshape(P, -1), truth.reshape(P, -1))
        maps[label] = estimate[perm]
        matched_names[label] = [info.band_names[i] for i in perm]     # estimated material under each true one
    model = load_model(os.path.join(folder, "model.pt"))
    library = {name: spectrum for name, spectrum, _, _ in
               read_spectra(os.path.join(folder, "library.csv")).by_material()}
    bundles = {name: spectra for name, spectra, _, _ in read_spectra(os.path.join(folder, "bundles.csv")).by_material()}
    metrics = {label: json.load(open(os.path.join(folder, "metrics_%s.json" % label.lower())))
               for label in ("FCLS", "DeepGU")}

    figure = Figure(figsize=(2.4 * P + 3.2, 8.4), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(4, P)
    for row, (label, cube) in enumerate(maps.items()):
        for p in range(P):
            axis = figure.add_subplot(grid[row, p])
            image = axis.imshow(cube[p], vmin=0, vmax=1, cmap="viridis")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(truth_info.band_names[p])
            if p == 0:
                extra = "" if label == "True" else "\nRMSE_A %.3f" % metrics[label]["RMSE_A"]
                axis.set_ylabel(label + extra)
    figure.colorbar(image, ax=figure.axes, shrink=0.5, label="abundance")
    x = model.wavelengths if model.wavelengths is not None else np.arange(1, model.n_bands + 1)
    for p, true_name in enumerate(truth_info.band_names):
        em = model.names.index(matched_names["DeepGU"][p])                # the VAE of the matched material
        axis = figure.add_subplot(grid[3, p])
        axis.plot(x, bundles[model.names[em]][:, :60], color="0.8", linewidth=0.4)
        axis.plot(x, sample_latent_grid(model, em), color="tab:blue", linewidth=0.5)
        axis.plot(x, model.m0[:, em], color="black", linewidth=1.2)
        axis.plot(x, library[true_name][:, 0], color="tab:red", linestyle="--", linewidth=1.0)
        axis.set_title("%s (matched %s): learned variability" % (true_name, model.names[em]), fontsize=8)
        axis.set_xlabel("wavelength (nm)" if model.wavelengths is not None else "band", fontsize=8)
        if p == 0:
            axis.set_ylabel("reflectance", fontsize=8)
            axis.legend([Line2D([], [], color=c, linestyle=s) for c, s in
                         (("0.8", "-"), ("tab:blue", "-"), ("black", "-"), ("tab:red", "--"))],
                        ["bundle pixels", "decoded around z_p0", "reference m_p0", "true library spectrum"],
                        fontsize=6, loc="best")
        axis.tick_params(labelsize=7)
    path = os.path.join(folder, "figure.png")
    figure.savefig(path, dpi=90)
    print("figure: %s" % path)
    print("%-8s %8s %8s %8s" % ("method", "RMSE_A", "RMSE_M", "SAM_M"))
    for label, values in metrics.items():
        print("%-8s %8.4f %8s %8s" % (label, values["RMSE_A"],
                                       "%.4f" % values["RMSE_M"] if "RMSE_M" in values else "-",
                                       "%.4f" % values["SAM_M"] if "SAM_M" in values else "-"))


if __name__ == "__main__":
    main(sys.argv[1])
