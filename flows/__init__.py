"""Bytewax dataflows: wiring only; statistics live in drift/ and detectors/."""
