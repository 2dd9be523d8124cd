"""Linear operators (forward/adjoint), their composition and the autograd bridge."""

from petspect.operators.base import (AdjointOperator, CompositeOperator, ElementwiseMultiply, IdentityOperator,
                                     LinearOperator, OperatorLayer, ScaledOperator, SumOperator, adjointness_test,
                                     subset_view_indices)

__all__ = ["LinearOperator", "AdjointOperator", "CompositeOperator", "ScaledOperator", "SumOperator",
           "IdentityOperator", "ElementwiseMultiply", "OperatorLayer", "adjointness_test", "subset_view_indices"]
