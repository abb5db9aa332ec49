"""Detectors: one module per family, each a frozen config plus ``score``."""
