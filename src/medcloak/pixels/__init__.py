"""Pixel-level de-identification, format-agnostic."""
