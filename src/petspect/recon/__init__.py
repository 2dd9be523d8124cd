"""Image reconstruction: FBP, MLEM/OSEM and MAP (BSREM, OSL) with quadratic and relative-difference priors.

System model, statistics, prior and algorithm live apart: an algorithm takes any
:class:`~petspect.operators.LinearOperator` (attenuation, normalisation and calibration composed in),
the data and the additive term; :class:`~petspect.recon.objectives.PoissonLogLikelihood` holds the
statistics; :mod:`~petspect.recon.priors` the penalties. FBP for the PET and SPECT projector geometries
is in :mod:`~petspect.recon.fbp_systems`. The one entry point for an acquisition (simulated, a cohort
level or measured; image in Bq/mL) is :func:`petspect.recon.reconstruct.reconstruct` with a typed
:class:`~petspect.recon.reconstruct.ReconSpec`, whose MAP ``beta`` is relative to the data's scale.
"""

from petspect.recon.em import mlem, osem
from petspect.recon.fbp import arc_correct, fbp_2d, ssrb
from petspect.recon.iterate import History
from petspect.recon.map import bsrem, osl_osem
from petspect.recon.objectives import PoissonLogLikelihood
from petspect.recon.priors import QuadraticPrior, RelativeDifferencePrior, make_prior

__all__ = ["History", "PoissonLogLikelihood", "QuadraticPrior", "RelativeDifferencePrior", "arc_correct", "bsrem",
           "fbp_2d", "make_prior", "mlem", "osem", "osl_osem", "ssrb"]
