"""Separators as SpeechBrain lobes: each maps a mixture ``[B, T]`` to sources ``[B, T, S]``."""
