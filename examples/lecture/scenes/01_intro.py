from manim import DOWN, FadeIn, FadeOut, Scene, Write

from common import MUTED, title_card


class Intro(Scene):
    """Title card for the lecture (about 4 seconds)."""

    def construct(self):
        card = title_card("Odd numbers make squares", "a picture proof")
        self.play(Write(card[0]), run_time=1.6)
        self.play(FadeIn(card[1]), FadeIn(card[2], shift=0.3 * DOWN), run_time=1.0)
        self.wait(0.9)
        self.play(FadeOut(card), run_time=0.5)
