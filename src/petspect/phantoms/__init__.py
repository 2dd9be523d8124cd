"""Digital phantoms with known truth: NEMA IEC, SPECT/resolution phantoms, torso and brain anatomy.

Generators are registered by name in :data:`petspect.phantoms.base.REGISTRY` and loaded lazily.
"""

from petspect.phantoms.base import REGISTRY, Phantom, get_generator, make_phantom, rebuild

__all__ = ["Phantom", "REGISTRY", "get_generator", "make_phantom", "rebuild"]
