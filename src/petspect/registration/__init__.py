"""Registration of PET and SPECT to CT or MR: classical intensity-based and learned deformable.

* :mod:`~petspect.registration.rigid` -- rigid/affine registration with SimpleITK (Mattes mutual
  information), transforms as 4x4 LPS matrices and ITK ``.tfm`` files;
* :mod:`~petspect.registration.simulate` -- known misalignments (rigid, respiratory-like deformation
  fields), target registration error and organ Dice;
* :mod:`~petspect.registration.learned` -- a small learned deformable registration network trained on
  simulated deformations.

Importing this package is cheap: SimpleITK and torch load inside the functions.
"""

__all__ = ["rigid", "simulate"]
