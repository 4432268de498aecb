from manim import DOWN, LEFT, RIGHT, UP, FadeIn, MathTex, Scene, VGroup, Write

from common import ACCENT, TEXT_COLOR


class PartialSums(Scene):
    """Add up the first few odd numbers and spot the squares (about 6 seconds)."""

    def construct(self):
        sums = VGroup(
            MathTex(r"1", r"=", r"1"),
            MathTex(r"1+3", r"=", r"4"),
            MathTex(r"1+3+5", r"=", r"9"),
            MathTex(r"1+3+5+7", r"=", r"16"),
        )
        for line in sums:
            line.set_color(TEXT_COLOR)
        sums.arrange(DOWN, buff=0.4, aligned_edge=LEFT).move_to(0.3 * UP)

        squares = VGroup(
            *[
                MathTex(rf"= {k}^2", color=ACCENT).next_to(sums[k - 1], RIGHT, buff=0.4)
                for k in range(1, 5)
            ]
        )
        for line in sums:
            self.play(Write(line), run_time=0.8)
        self.wait(0.3)
        self.play(*[FadeIn(s, shift=0.2 * LEFT) for s in squares], run_time=1.5)
        self.wait(1.0)
