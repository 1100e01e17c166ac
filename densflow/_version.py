"""The package version (one place, read by setup.cfg and the run files)."""

__version__ = "0.1.0"
