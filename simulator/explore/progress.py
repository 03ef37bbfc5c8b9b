"""The progress bar of studies (simulator/progress.py, shared with validate)."""
from simulator.progress import progress_bar

__all__ = ["progress_bar"]
