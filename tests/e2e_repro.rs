//! Same inputs, same frames (issue 8): the same scenes built clean several
//! times with parender's defaults give identical decoded frames. One scene
//! warps a `NumberPlane` with `apply_complex_function` (Manim 0.22's own
//! per-animation cache made it differ between renders), one places things
//! with unseeded `random`, `numpy.random` and `numpy.random.default_rng()`
//! (at import time and in `construct`). Real Manim; about 30 s.
mod common;

use common::av::rgb_frame_md5s;
use common::{TestProject, text};

const PLANE: &str = r#"from manim import *


class Warp(Scene):
    def construct(self):
        plane = NumberPlane()
        plane.prepare_for_nonlinear_transform()
        self.play(Create(plane), run_time=1)
        self.play(plane.animate.apply_complex_function(lambda z: z**2 / 4), run_time=1.5)
"#;

const DOTS: &str = r#"import random

import numpy as np
from manim import *

# Module-level randomness runs when Manim imports the file.
SHIFT = random.uniform(-1, 1)


class Scatter(Scene):
    def construct(self):
        rng = np.random.default_rng()
        dots = VGroup(
            *[
                Dot(
                    [random.uniform(-6, 6) + SHIFT, random.uniform(-3, 3), 0],
                    color=random_color(),
                    radius=0.05 + 0.1 * rng.random(),
                )
                for _ in range(40)
            ]
        )
        jitter = np.random.uniform(-0.5, 0.5, size=(40, 3))
        self.play(FadeIn(dots), run_time=0.5)
        self.play(*[d.animate.shift(j) for d, j in zip(dots, jitter)], run_time=0.5)
"#;

const BUILDS: usize = 4;

#[test]
fn same_inputs_same_frames_across_clean_builds() {
    let mut seen = Vec::new();
    for n in 0..BUILDS {
        // A separate project each time: nothing is shared between builds.
        let p = TestProject::new("name = \"repro\"\n");
        p.write("scenes/01_plane.py", PLANE);
        p.write("scenes/02_dots.py", DOTS);
        let out = p.parender(&["build", "--explain", "--message-format", "json"]);
        let lines = TestProject::successful_build(&out);
        if n == 0 {
            // `--explain` says the scene draws unseeded random numbers.
            let why: Vec<String> = lines
                .iter()
                .filter(|l| {
                    l["reason"] == "scene-finished" && l["scene"] == "scenes/02_dots.py:Scatter"
                })
                .flat_map(|l| l["why"].as_array().cloned().unwrap_or_default())
                .filter_map(|w| w.as_str().map(str::to_string))
                .collect();
            assert!(
                why.iter().any(
                    |w| w.starts_with("scenes/02_dots.py line 7: `random.uniform`")
                        && w.contains("without a seed")
                ),
                "no note about unseeded randomness in {why:?}\n{}",
                text(&out)
            );
        }
        let video = p.path().join("out/dev/repro.mp4");
        assert!(video.is_file(), "no video:\n{}", text(&out));
        let frames = rgb_frame_md5s(&video);
        assert!(!frames.is_empty(), "no frames decoded:\n{}", text(&out));
        seen.push(frames);
    }
    for (n, frames) in seen.iter().enumerate().skip(1) {
        let differ: Vec<usize> = (0..frames.len().max(seen[0].len()))
            .filter(|&i| frames.get(i) != seen[0].get(i))
            .collect();
        assert!(
            differ.is_empty(),
            "clean build {n} decoded differently from build 0: {} of {} frames differ (first: {:?})",
            differ.len(),
            seen[0].len(),
            differ.first()
        );
    }
}
