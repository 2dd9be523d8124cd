"""Image reconstruction: FBP, MLEM/OSEM and MAP (BSREM, OSL) with quadratic and relative-difference priors.

System model, statistics, prior and algorithm live apart: an algorithm takes any
:class:`~petspect.operators.LinearOperator` (attenuation, normalisation and calibration composed in),
the data and the additive term; :class:`~petspect.recon.objectives.PoissonLogLikelihood` holds the
statistics; :mod:`~petspect.recon.priors` the penalties. FBP for the PET and SPECT projector geometries
is in :mod:`~petspect.recon.fbp_systems`; reconstruction of a saved acquisition (Bq/mL) in
:func:`petspect.simulate.acquisition.reconstruct_acquisition`.
"""

from petspect.recon.em import mlem, osem
from petspect.recon.fbp import arc_correct, fbp_2d, ssrb
from petspect.recon.iterate import History
from petspect.recon.map import bsrem, osl_osem
from petspect.recon.objectives import PoissonLogLikelihood
from petspect.recon.priors import QuadraticPrior, RelativeDifferencePrior, make_prior

__all__ = ["History", "PoissonLogLikelihood", "QuadraticPrior", "RelativeDifferencePrior", "arc_correct", "bsrem",
           "fbp_2d", "make_prior", "mlem", "osem", "osl_osem", "ssrb"]
