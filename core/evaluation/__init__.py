"""Scenes with known truth, the accuracy metrics that score against it, and the comparison report of the methods."""
