"""Sources of the demo corpus (``tools/build_demo_corpus.py``): one module per kind of source.

``common`` holds the clip record, decoding and writing; ``speech``, ``music`` and ``sfx`` each
expose ``REQUIREMENTS`` (Debian package, probe), ``TIERS`` (what each tier takes) and
``jobs(tier, out, sample_rate, seed)``, the independent jobs of a tier, each returning the clips
it wrote.
"""
