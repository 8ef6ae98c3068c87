"""Tandem: a socialbot and story co-writing assistant."""

__version__ = "0.1.0"
