"""One thin QgsProcessingAlgorithm per step; the work happens in ``core.jobs``."""
