"""Attenuation and scatter correction without a CT: segmentation-based maps, synthetic CT (from NAC PET or
MR), direct NAC -> AC PET, DL scatter, and the study that compares them with CT-based AC, MLAA and SSS.

Submodules are imported on demand (networks and scipy are heavy)."""
