from manim import FadeIn, FadeOut, Scene

from common import title_card


class Outro(Scene):
    """Silent closing card (about 3 seconds); intentionally has no narration."""

    def construct(self):
        card = title_card("Thanks for watching", "made with Manim + parender")
        # A caption: it lands in out/dev/lecture.srt and .vtt, at this
        # scene's place in the final video.
        self.add_subcaption("Thanks for watching!", duration=2.5)
        self.play(FadeIn(card), run_time=1.0)
        self.wait(1.5)
        self.play(FadeOut(card), run_time=0.5)
