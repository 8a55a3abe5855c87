"""One look for every figure: a fixed colour per loss variant (the same loss has the same colour
in every figure of the report and the paper), the panel sizes, the font sizes.

Loss variants are named as `results.loss_variant` names them: a loss, a Shen weighting after a
dash ("weighted_dice-square"), GDL with its empty-class policy ("gdl (zero)").
"""

from __future__ import annotations

import math
import textwrap

# Related variants share a hue: GDL's policies greens, Shen's weightings purples, the Dice blues.
LOSS_COLOURS: dict[str, str] = {
    "dice": "#1f77b4",
    "vnet": "#17becf",
    "gdl (max)": "#2ca02c",
    "gdl (epsilon)": "#74c476",
    "gdl (zero)": "#00441b",
    "mime": "#d62728",
    "weighted_dice-uniform": "#3f007d",
    "weighted_dice-simple": "#8c6bb1",
    "weighted_dice-square": "#e377c2",
    "ce": "#ff7f0e",
    "wce": "#8c564b",
    "sensitivity_specificity": "#bcbd22",
    "dice_ce": "#008080",
}
# A loss named without its policy or weighting takes its default's colour.
LOSS_ALIASES = {"gdl": "gdl (max)", "weighted_dice": "weighted_dice-uniform"}
UNKNOWN_COLOUR = "#7f7f7f"

# Sizes in inches. Plot panels (curves, lines) and image panels (slices, maps) each have one size;
# a figure is a grid of them (at least MIN_WIDTH wide, so that its title and key fit), so every
# figure's text is at the same scale. A figure-level key sits above the panels, KEY_ENTRY_WIDTH
# per entry, as many rows as it needs.
PANEL = (3.4, 2.6)
IMAGE_PANEL = (2.4, 2.6)
MIN_WIDTH = 6.8
KEY_ENTRY_WIDTH = 2.0
KEY_ROW = 0.22
TITLE_LINE = 0.22
DPI = 120

# Learning curves: one marker per seed, line style by convergence.
SEED_MARKERS = "osD^v<>ph"
CONVERGED_LINE = "-"
NOT_CONVERGED_LINE = "--"
BEST_MARKER = "*"
TRAIN_LOSS_ALPHA = 0.45

RC = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "savefig.dpi": DPI,
}


def loss_colour(variant: str) -> str:
    """The colour of a loss variant; a variant outside the table falls back to its loss's colour
    ("wce-x" to wce), else grey."""
    variant = LOSS_ALIASES.get(variant, variant)
    if variant in LOSS_COLOURS:
        return LOSS_COLOURS[variant]
    base = variant.split(" (")[0].split("-")[0]
    return LOSS_COLOURS.get(LOSS_ALIASES.get(base, base), UNKNOWN_COLOUR)


def figure_width(cols: int, panel: tuple[float, float] = PANEL) -> float:
    return max(panel[0] * cols, MIN_WIDTH)


def key_columns(entries: int, width: float) -> int:
    """Columns of a figure-level key of `entries` entries across a figure `width` inches wide."""
    return max(1, min(entries, int(width // KEY_ENTRY_WIDTH)))


def key_height(entries: int, width: float) -> float:
    return 0.0 if entries == 0 else KEY_ROW * math.ceil(entries / key_columns(entries, width)) + 0.15


def grid_size(rows: int, cols: int, panel: tuple[float, float] = PANEL, key_entries: int = 0,
              title_lines: int = 1) -> tuple[float, float]:
    """Figure size of a rows x cols grid of panels, with room above for the title and a key."""
    width = figure_width(cols, panel)
    return (width, panel[1] * rows + TITLE_LINE * title_lines + key_height(key_entries, width) + 0.15)


NOTE_CHAR_WIDTH = 0.055  # inches per character of a 7 pt note


def wrap_note(text: str, width: float) -> tuple[str, float]:
    """A note under the panels wrapped to the figure's `width`, and the height it needs."""
    if not text:
        return "", 0.0
    lines = textwrap.wrap(text, max(20, int((width - 0.2) / NOTE_CHAR_WIDTH)))
    return "\n".join(lines), 0.1 + KEY_ROW * len(lines)


def seed_marker(index: int) -> str:
    return SEED_MARKERS[index % len(SEED_MARKERS)]


# Object classes (label k >= 1) keep one colour in every figure: overlays, per-class lines.
CLASS_COLOURS = ["#e7298a", "#1b9e77", "#d95f02", "#7570b3", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


def class_colour(index: int) -> str:
    """The colour of object class `index` (1 = the first object class)."""
    return CLASS_COLOURS[(index - 1) % len(CLASS_COLOURS)]


# The verdicts of the claims table (dicebench.reporting.claims), one colour each.
VERDICT_COLOURS = {"reproduced": "#1b9e77", "not reproduced": "#d95f02", "inconclusive": "#7570b3",
                   "insufficient evidence": "#999999", "not testable": "#cccccc", "not run": "#eeeeee"}
