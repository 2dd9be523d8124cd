"""Internal dosimetry for radionuclide therapy.

Modules: :mod:`~petspect.dosimetry.tac` (time-activity fits, time-integrated activity),
:mod:`~petspect.dosimetry.spectra` (emission data), :mod:`~petspect.dosimetry.kernels` (voxel S-value
kernels computed from first principles), :mod:`~petspect.dosimetry.montecarlo` (voxelised Monte Carlo
reference), :mod:`~petspect.dosimetry.voxel_dose` (local deposition, kernel convolution, organ dose, DVH,
BED), :mod:`~petspect.dosimetry.dl` (deep-learning kernels and dose maps), :mod:`~petspect.dosimetry.workflow`
(DICOM in, dose out) and :mod:`~petspect.dosimetry.study` (``petspect study dose``). Import the submodules
directly; this package imports nothing heavy.
"""
