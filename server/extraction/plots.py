"""PNG figures for `deskpilot eval`: a reliability diagram and learning curves (matplotlib, Agg: no display).

matplotlib is imported inside each function: it takes a moment to import, and only these commands draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from deskpilot.inference.extraction.calibration import expected_calibration_error, reliability_bins

__all__ = ["learning_curves", "reliability_diagram"]


def reliability_diagram(
    path: Path, probabilities: Sequence[float], outcomes: Sequence[bool], *, title: str, bins: int = 10
) -> Path:
    """Predicted probability against the share right per bin (a calibrated model lies on the diagonal),
    with the points per bin under it and the ECE in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = reliability_bins(probabilities, outcomes, bins)
    ece = expected_calibration_error(probabilities, outcomes, bins)
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    top.plot([m for m, _, _ in found], [r for _, r, _ in found], marker="o", label="calibrated confidence")
    top.set_ylabel("share right")
    top.set_title(f"{title}\nECE {ece:.3f} over {len(probabilities)} values")
    top.legend(loc="upper left")
    width = 1 / bins
    bottom.bar(
        [min(int(m * bins), bins - 1) * width for m, _, _ in found],
        [n for _, _, n in found],
        width=width,
        align="edge",
        color="tab:blue",
        alpha=0.6,
    )
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("values")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def learning_curves(path: Path, curves: Mapping[str, Sequence[float | None]], *, title: str) -> Path:
    """Each named curve (a rate in [0, 1] after each item; None where undefined) against items seen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for name, values in curves.items():
        points = [(i, v) for i, v in enumerate(values, start=1) if v is not None]
        axes.plot([i for i, _ in points], [v for _, v in points], label=name)
    axes.set_xlabel("items seen")
    axes.set_ylim(0, 1.02)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
