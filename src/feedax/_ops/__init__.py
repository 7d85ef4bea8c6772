"""Operators implemented in feedax; the public names live in ``feedax``."""
