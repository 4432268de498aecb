from manim import LEFT, RIGHT, UP, FadeIn, LaggedStart, MathTex, Scene, Write

from common import ACCENT, layer_color, odd_row


class OddNumbers(Scene):
    """Introduce the odd numbers as rows of cells (about 5 seconds)."""

    def construct(self):
        heading = MathTex(r"1,\ 3,\ 5,\ 7,\ \dots", font_size=60, color=ACCENT)
        heading.to_edge(UP)
        rows = odd_row(4).move_to(0.4 * LEFT)
        labels = [
            MathTex(str(2 * k - 1), color=layer_color(k)).next_to(rows[k - 1], RIGHT, buff=0.3)
            for k in range(1, 5)
        ]
        self.play(Write(heading), run_time=1.0)
        self.play(
            LaggedStart(*[FadeIn(r, shift=0.2 * RIGHT) for r in rows], lag_ratio=0.4),
            run_time=2.0,
        )
        self.play(LaggedStart(*[FadeIn(l) for l in labels], lag_ratio=0.3), run_time=1.0)
        self.wait(1.0)
