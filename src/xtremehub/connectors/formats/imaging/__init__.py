"""Imaging formats: imzML mass-spectrometry imaging (later COG)."""
