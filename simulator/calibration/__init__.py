"""Calibration to a user's measured runs (``trainsim calibrate``) and prediction bands.

measured.py reads the measured-runs CSV, fit.py refits the global efficiencies with the shipped
values as a prior, file.py writes and checks the calibration YAML, bands.py turns residuals into
P10-P90 bands. docs/calibration.md describes the method.
"""
