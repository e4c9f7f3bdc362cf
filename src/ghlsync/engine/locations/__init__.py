"""Locations: the directory of served GHL locations, their tokens, installs and overrides."""
