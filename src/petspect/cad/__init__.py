"""Computer-aided diagnosis: simulated diagnostic cohorts, the clinic's baselines, 3D CNNs and their evaluation.

Three binary tasks (:class:`~petspect.cad.cohort.CadTask`):

* ``ad``  -- Alzheimer's disease vs normal on FDG brain PET;
* ``pd``  -- Parkinsonism (presynaptic dopaminergic loss) vs normal on DaT (I-123 ioflupane) SPECT;
* ``mpi`` -- a coronary perfusion defect (LAD, LCx or RCA territory) vs normal on Tc-99m sestamibi
  myocardial perfusion SPECT (:mod:`petspect.phantoms.myocardium`).

Modules:

* :mod:`~petspect.cad.cohort` -- subjects drawn with variety (anatomy, global uptake, mild to severe disease,
  noise, resolution) and imaged through a stated resolution + noise model;
* :mod:`~petspect.cad.regions` -- template-space regions of the brain (SUVR, SBR, z-score targets);
* :mod:`~petspect.cad.polar` -- LV polar maps and the AHA 17 segments;
* :mod:`~petspect.cad.baselines` -- SUVR, SBR, voxel z-scores against a normal database, polar-map extent and
  summed score, a linear SVM on regional values;
* :mod:`~petspect.cad.roc` -- ROC AUC with stratified bootstrap intervals, thresholds, Brier, reliability;
* :mod:`~petspect.cad.crossval` -- subject-wise stratified cross-validation with one treatment for all methods;
* :mod:`~petspect.cad.cnn` -- small MONAI 3D DenseNet classifiers and occlusion maps;
* :mod:`~petspect.cad.study` -- ``petspect study cad``.

Importing this package loads nothing heavy.
"""
