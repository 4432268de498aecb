from manim import FadeIn, FadeOut, Scene

from common import title_card


class Outro(Scene):
    """Silent closing card (about 3 seconds); intentionally has no narration."""

    def construct(self):
        card = title_card("Thanks for watching", "made with Manim + parender")
        self.play(FadeIn(card), run_time=1.0)
        self.wait(1.5)
        self.play(FadeOut(card), run_time=0.5)
