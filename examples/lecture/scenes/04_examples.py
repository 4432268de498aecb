"""Two scenes in one file: the picture proof for a small and a larger case."""

from manim import DOWN, UP, Create, FadeIn, MathTex, Scene

from common import ACCENT, CELL, gnomon_square


class SmallCase(Scene):
    """Build a 3x3 square from the L-shapes 1, 3 and 5 (about 4 seconds)."""

    def construct(self):
        square = gnomon_square(3, cell=2 * CELL).move_to(0.3 * DOWN)
        caption = MathTex(r"1 + 3 + 5 = 3^2", color=ACCENT).to_edge(UP)
        for layer in square:
            self.play(FadeIn(layer, shift=0.3 * DOWN), run_time=0.8)
        self.play(Create(caption), run_time=1.0)
        self.wait(0.6)


class LargeCase(Scene):
    """Build a 5x5 square from five L-shapes (about 6 seconds)."""

    def construct(self):
        square = gnomon_square(5, cell=1.2 * CELL).move_to(0.3 * DOWN)
        caption = MathTex(r"1 + 3 + 5 + 7 + 9 = 5^2", color=ACCENT).to_edge(UP)
        for layer in square:
            self.play(FadeIn(layer, shift=0.3 * DOWN), run_time=0.8)
        self.play(Create(caption), run_time=1.0)
        self.wait(1.0)
