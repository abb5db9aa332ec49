"""drift: streaming drift and data-quality detection for ML systems in production."""

__version__ = "0.1.0"
