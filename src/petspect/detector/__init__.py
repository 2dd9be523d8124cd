"""Detector-level AI: event positioning in monolithic scintillators and time-of-flight from waveforms.

Modules (import what you need; nothing heavy is imported here):

- :mod:`~petspect.detector.crystals`: LYSO / BGO / LaBr3 presets, xraydb attenuation at 511 keV.
- :mod:`~petspect.detector.interactions`: photoelectric and Klein-Nishina Compton transport.
- :mod:`~petspect.detector.light_transport`: mirror-source light transport, Fresnel and TIR.
- :mod:`~petspect.detector.photodetector`: SiPM array (PDE, crosstalk, dark counts, saturation).
- :mod:`~petspect.detector.simulate`: pencil-beam / fan-beam / flood events with true 3D positions.
- :mod:`~petspect.detector.positioning`: Anger logic, kNN and gradient-tree-boosting baselines.
- :mod:`~petspect.detector.models`, :mod:`~petspect.detector.neural`: MLP / CNN positioners, timing CNN.
- :mod:`~petspect.detector.waveforms`, :mod:`~petspect.detector.timing`: digitised coincidence waveforms,
  leading-edge and constant-fraction pick-off, CNN time-difference estimation.
- :mod:`~petspect.detector.metrics`, :mod:`~petspect.detector.report`: figures of merit, HTML report.
- :mod:`~petspect.detector.joint`, :mod:`~petspect.detector.joint_study`: one network for position, energy and
  time on monolithic-block pairs, compared with the separate models trained on the same events.

The rest is shared with the image side of petspect: networks train through the generic in-memory loop
of :mod:`petspect.train.loop`, distribution widths (FWHM/FWTM, Gaussian fit, paired bootstrap) come from
:mod:`petspect.metrics.distribution`, and the report is written by :class:`petspect.report.HtmlReport`.
- :mod:`~petspect.detector.pipeline`: presets and the simulate -> train -> evaluate study
  (CLI: ``petspect detector simulate|train|evaluate``).

Coordinates: ``x, y`` from the centre of the crystal face, ``doi`` from the entrance face (mm).
"""
