"""The per-material VAEs: training, the model file, and looking inside a model."""
