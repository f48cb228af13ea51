"""Default settings shared by the core and the QGIS layer (importable without torch)."""

#: VAE training: epochs and KL weight (see core/vae.py for why they differ from the paper's 50 and 1).
DEFAULT_EPOCHS = 200
DEFAULT_BETA = 0.01
