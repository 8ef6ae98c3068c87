"""Tandem's own evaluations: multi-turn conversations replayed through the real dispatcher."""
