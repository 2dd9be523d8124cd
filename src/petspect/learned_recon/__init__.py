"""Deep learning inside reconstruction (issue 17), above recon/simulate/nn/train; nothing below imports it.

* :mod:`~petspect.learned_recon.consistency` -- Poisson deviance of ``A x + b`` against the measured data, total
  and per plane/view, with the acquisition's own corrections;
* :mod:`~petspect.learned_recon.nets` -- the small networks the methods share;
* :mod:`~petspect.learned_recon.cases` -- one subject as the tensors the methods use;
* :mod:`~petspect.learned_recon.projection_denoise` -- low-dose -> full-dose sinogram / projection denoising
  (Anscombe transform), then the usual OSEM;
* :mod:`~petspect.learned_recon.direct` -- DeepPET-style encoder-decoder, sinogram -> image;
* :mod:`~petspect.learned_recon.unrolled` -- EM-unrolled network with CNN updates, trained end to end through
  the system model's autograd bridge;
* :mod:`~petspect.learned_recon.dip` -- deep image prior fitted to the data through the system model;
* :mod:`~petspect.learned_recon.sparse_view` -- SPECT: synthesise the 3 missing views of every 4;
* :mod:`~petspect.learned_recon.study` -- ``petspect study recon``.

Importing this package is cheap: the modules load torch when used.
"""
