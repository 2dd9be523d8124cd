"""Multiplicative projection-space factors (moved to :mod:`petspect.operators.factors`; names kept here)."""

from petspect.operators.factors import ProjectionFactors, safe_reciprocal

__all__ = ["ProjectionFactors", "safe_reciprocal"]
