"""gass: General Audio Source Separation (Pons et al., ICASSP 2024) as a SpeechBrain plugin.

One model family that separates speech, music and sound events (1-4 sources in an unknown mix):
separators as SpeechBrain lobes (``gass_modules.lobes``), the GASS mixer as a data-io pipeline
(``gass_modules.dataio``), the PIT thresholded log-MSE loss (``gass_modules.losses``), metrics
(``gass_modules.metrics``) and one training loop (``gass_modules.training.brain``).
The contracts between the parts and the module map are in docs/architecture.md.

Example
-------
>>> import gass_modules
>>> gass_modules.__version__
'2.0.0'
"""

__version__ = "2.0.0"
