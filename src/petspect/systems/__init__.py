"""System models assembled from geometry, physics effects and projectors.

This layer sits above :mod:`petspect.projectors` (geometric projectors) and :mod:`petspect.physics`
(one module per effect: attenuation, resolution, normalisation, scatter, randoms, counts), which do
not import each other, and below :mod:`petspect.recon` and :mod:`petspect.simulate`:

* :mod:`petspect.systems.pet` -- the PET model ``diag(n a) P [G]`` and its NEMA sensitivity calibration;
* :mod:`petspect.systems.spect` -- the SPECT model (rotate-and-sum projector with collimator response
  and attenuation) from measured or planned projections; :mod:`~petspect.systems.spect_simulate`
  (every energy window with object scatter) and :mod:`~petspect.systems.spect_chang` (Chang's
  first-order attenuation correction) complete it;
* :mod:`petspect.systems.acquisition` -- the typed acquisition record (PET or SPECT, simulated,
  cohort or measured) and the calibrated system model rebuilt from it.

Importing this package loads nothing; import the modules.
"""
