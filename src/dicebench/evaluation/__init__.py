"""Evaluation stage of dicebench: DSC and HD95 (mm) per case and class, and the cell summary.

`metrics` holds the pure metric functions and their conventions; `evaluate` the
`dicebench evaluate` command and the reusable `evaluate_case` / `summarise`.
"""

from dicebench.evaluation.metrics import (
    dice,
    hausdorff_labels,
    hd95,
    hd95_labels,
    hd95_pooled,
    scan_diagonal,
    surface_distances,
)

__all__ = ["dice", "hausdorff_labels", "hd95", "hd95_labels", "hd95_pooled", "scan_diagonal", "surface_distances"]
