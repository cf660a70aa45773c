"""Backbones and methods.  Create them by name with ``dfnb.create_model``."""
