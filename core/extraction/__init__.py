"""Reference endmembers and bundles from a scene: VCA, the refinement, analyst regions."""
