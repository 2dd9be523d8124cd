"""Tracer kinetics: input functions, framing, compartment models, graphical analysis, image-derived and
learned input functions. Everything is decay corrected to injection; times in s, rates in 1/min."""
