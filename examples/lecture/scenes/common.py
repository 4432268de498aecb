"""Shared palette and mobject helpers for the lecture scenes.

This module deliberately contains no Scene subclasses: it only provides
constants and functions that return mobjects, so it can be imported by
every scene file with ``from common import ...``.
"""

from manim import (
    DOWN,
    LEFT,
    BLUE_C,
    GOLD_C,
    GREEN_C,
    GREY_B,
    MAROON_C,
    TEAL_C,
    WHITE,
    Square,
    Text,
    Underline,
    VGroup,
)

# Palette: one colour per "layer" of the growing square.
LAYER_COLORS = [BLUE_C, GREEN_C, GOLD_C, MAROON_C, TEAL_C]
ACCENT = GOLD_C
TEXT_COLOR = WHITE
MUTED = GREY_B

CELL = 0.5  # side length of one unit square


def layer_color(k):
    """Colour for the k-th odd number (k = 1, 2, 3, ...)."""
    return LAYER_COLORS[(k - 1) % len(LAYER_COLORS)]


def title_card(text, subtitle=None):
    """A title with an underline and an optional smaller subtitle below."""
    title = Text(text, font_size=44, color=TEXT_COLOR)
    line = Underline(title, color=ACCENT, buff=0.15)
    group = VGroup(title, line)
    if subtitle is not None:
        sub = Text(subtitle, font_size=26, color=MUTED)
        sub.next_to(line, DOWN, buff=0.35)
        group.add(sub)
    return group


def unit_square(color, cell=CELL):
    """One filled unit cell."""
    return Square(side_length=cell, stroke_width=2, stroke_color=WHITE).set_fill(
        color, opacity=0.75
    )


def l_shape(k, cell=CELL):
    """The k-th gnomon: the 2k-1 cells that turn a (k-1)x(k-1) square into a kxk one.

    Cells are positioned in grid coordinates with the square's bottom-left
    corner at the origin; the caller moves the result as a whole.
    """
    color = layer_color(k)
    cells = VGroup()
    # top row of the new layer (row k-1, columns 0..k-1)
    for col in range(k):
        cells.add(unit_square(color, cell).move_to([(col + 0.5) * cell, (k - 0.5) * cell, 0]))
    # right column of the new layer (column k-1, rows 0..k-2)
    for row in range(k - 1):
        cells.add(unit_square(color, cell).move_to([(k - 0.5) * cell, (row + 0.5) * cell, 0]))
    return cells


def gnomon_square(n, cell=CELL):
    """A VGroup of the first n gnomons, which together tile an n x n square."""
    return VGroup(*[l_shape(k, cell) for k in range(1, n + 1)])


def odd_row(n, cell=CELL, buff=0.25):
    """The first n odd numbers drawn as horizontal rows of coloured cells."""
    rows = VGroup()
    for k in range(1, n + 1):
        row = VGroup(*[unit_square(layer_color(k), cell) for _ in range(2 * k - 1)])
        row.arrange(buff=0)
        rows.add(row)
    rows.arrange(DOWN, buff=buff, aligned_edge=LEFT)
    return rows
