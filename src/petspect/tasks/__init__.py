"""AI tasks built on :mod:`petspect.train`: one module per task, plus the demo that runs one end to end.

Denoising (low-dose and fast-scan PET/SPECT), judged against classical baselines:

* :mod:`petspect.tasks.denoise` -- :class:`~petspect.tasks.denoise.DenoiseTask` (input/reference keys),
  :func:`~petspect.tasks.denoise.denoise_config` (U-Net, ResNet, cGAN, CycleGAN, noise2noise as TrainConfigs),
  :func:`~petspect.tasks.denoise.train_denoiser`, :func:`~petspect.tasks.denoise.denoise_volume`.
* :mod:`petspect.tasks.baselines` -- Gaussian, non-local means (and BM4D when importable), tuned on validation.
* :mod:`petspect.tasks.evaluate` -- PSNR/SSIM/NRMSE (generic and challenge), SUV biases, contrast, noise.
* :mod:`petspect.tasks.compare` -- every method on the subjects of a split, with noise-bias curves.
* :mod:`petspect.tasks.apply` -- real DICOM/NIfTI in, derived DICOM/NIfTI out, units and SUV kept.
* :mod:`petspect.tasks.denoise_report` -- the HTML report and the acceptance checks.
* :mod:`petspect.tasks.demo` -- ``petspect demo`` / ``petspect bench``.

Submodules are imported on use; ``import petspect.tasks`` loads nothing heavy.
"""
