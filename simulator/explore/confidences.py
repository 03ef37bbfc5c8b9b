"""The confidence levels a study ranks and sizes at, and the result key of each (no heavy imports:
`--help` reads them)."""
from __future__ import annotations

# p10 / p50 / p90 / mean: the campaign Monte Carlo's spread (failures, restarts) around the model's
# central step time; band-p10 / band-p90: the prediction band, the model's own out-of-sample error
# combined with that spread (calibration/bands.py)
CONFIDENCES = ("p10", "p50", "p90", "mean", "band-p10", "band-p90")


def days_key(confidence: str) -> str:
    """The row key of the time to train at ``confidence`` (CONFIDENCES)."""
    if confidence.startswith("band-"):
        return f"time_to_train_days_band_{confidence[5:]}"
    return "time_to_train_days" if confidence == "mean" else f"time_to_train_days_{confidence}"
