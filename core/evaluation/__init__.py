"""Scenes with known truth and the accuracy metrics that score against it."""
