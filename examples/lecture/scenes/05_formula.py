from manim import DOWN, Circumscribe, FadeIn, MathTex, Scene, Write

from common import ACCENT, MUTED


class Formula(Scene):
    """State the general result (about 5 seconds)."""

    def construct(self):
        formula = MathTex(r"\sum_{k=1}^{n} (2k-1)", r"=", r"n^2", font_size=72)
        formula[2].set_color(ACCENT)
        note = MathTex(
            r"\text{each new L-shape adds } 2n-1 \text{ cells}", font_size=36, color=MUTED
        ).next_to(formula, DOWN, buff=0.6)
        self.play(Write(formula), run_time=2.0)
        self.play(FadeIn(note, shift=0.2 * DOWN), run_time=1.0)
        self.play(Circumscribe(formula[2], color=ACCENT), run_time=1.0)
        self.wait(1.0)
