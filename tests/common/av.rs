//! Measuring helpers for the end-to-end A/V tests: decoding a video's pixels
//! and samples, finding tone bursts and scene colours in them, making test
//! tones with sox, and reading streams and packet timestamps with ffprobe.
//!
//! Everything here measures the real files with ffmpeg / ffprobe / sox; what
//! a test expects (its scenes, tolerances and thresholds) stays in the test.

use std::path::Path;

use serde_json::Value;

use super::run_tool;

/// The sample rate [`decode_mono`] decodes at (the final track's rate).
pub const RATE: u64 = 48_000;

/// `samples` at [`RATE`], in seconds.
pub fn secs(samples: i64) -> f64 {
    samples as f64 / RATE as f64
}

/// `samples` at [`RATE`], in milliseconds.
pub fn ms(samples: i64) -> f64 {
    secs(samples) * 1000.0
}

/// What `ffmpeg -nostdin -v error -i <input> <args>` writes to stdout
/// (`args` end with `-` as the output); panics with its stderr on failure.
pub fn ffmpeg_stdout(input: &Path, args: &[&str]) -> Vec<u8> {
    let mut all = vec!["-nostdin", "-v", "error", "-i", input.to_str().unwrap()];
    all.extend_from_slice(args);
    run_tool("ffmpeg", &all)
}

// --- Audio.

/// Any audio (or a video's audio) decoded to [`RATE`] mono, as f64 in
/// [-1, 1].
pub fn decode_mono(file: &Path) -> Vec<f64> {
    let raw = ffmpeg_stdout(
        file,
        &[
            "-vn",
            "-ac",
            "1",
            "-ar",
            &RATE.to_string(),
            "-f",
            "s16le",
            "-c:a",
            "pcm_s16le",
            "-",
        ],
    );
    raw.chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]) as f64 / 32768.0)
        .collect()
}

/// A burst of tone: first and last loud sample (inclusive), its peak, and
/// its zero crossings per ms (a sine of f Hz has 2f/1000: 1 kHz gives 2,
/// 2 kHz gives 4).
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    pub onset: usize,
    pub last: usize,
    pub peak: f64,
    pub zcr: f64,
}

/// Tones in `pcm` (at [`RATE`]): a sample whose |x| is above `loud` belongs
/// to a tone, and loud samples at most `quiet` samples apart belong to the
/// same one. So a burst starts at the first loud sample, or at one more than
/// `quiet` samples after the previous loud one, and ends at the last loud
/// sample before the next such start.
pub fn bursts(pcm: &[f64], loud: f64, quiet: usize) -> Vec<Burst> {
    let mut out: Vec<Burst> = Vec::new();
    let mut last_loud: Option<usize> = None;
    for (i, x) in pcm.iter().enumerate() {
        let a = x.abs();
        if a <= loud {
            continue;
        }
        match (last_loud, out.last_mut()) {
            (Some(l), Some(b)) if i - l <= quiet => {
                b.last = i;
                b.peak = b.peak.max(a);
            }
            _ => out.push(Burst {
                onset: i,
                last: i,
                peak: a,
                zcr: 0.0,
            }),
        }
        last_loud = Some(i);
    }
    for b in &mut out {
        let w = &pcm[b.onset..=b.last];
        let crossings = w
            .windows(2)
            .filter(|p| (p[0] < 0.0) != (p[1] < 0.0))
            .count();
        b.zcr = crossings as f64 / ms(w.len() as i64).max(1e-9);
    }
    out
}

/// Panics unless the decoded track's `samples` are less than one frame
/// (`spf` samples) away from the video's `frames`.
pub fn assert_audio_length(samples: usize, frames: u64, spf: u64) {
    let expected = frames * spf;
    assert!(
        (samples as i64 - expected as i64).abs() < spf as i64,
        "decoded audio has {samples} samples, expected {expected} within one frame ({spf})"
    );
}

// --- Test tones with sox.

/// A 16-bit PCM file format for sox: sample rate and channels.
#[derive(Debug, Clone, Copy)]
pub struct Pcm {
    pub rate: u32,
    pub channels: u32,
}

/// 48 kHz mono, 16 bit.
pub const MONO_48K: Pcm = Pcm {
    rate: RATE as u32,
    channels: 1,
};

/// Writes `out` (making its folder) with sox: a sine tone of `secs` seconds
/// at `freq` Hz with peak `vol` (full scale 1.0), then `pad` seconds of
/// silence. Lengths are given to sox to 0.1 ms.
pub fn sox_tone(out: &Path, pcm: Pcm, secs: f64, freq: u32, vol: f64, pad: f64) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    run_tool(
        "sox",
        &[
            "-n",
            "-r",
            &pcm.rate.to_string(),
            "-c",
            &pcm.channels.to_string(),
            "-b",
            "16",
            out.to_str().unwrap(),
            "synth",
            &format!("{secs:.4}"),
            "sine",
            &freq.to_string(),
            "vol",
            &vol.to_string(),
            "pad",
            "0",
            &format!("{pad:.4}"),
        ],
    );
}

/// Writes a narration stand-in `out` (making its folder): a 1 kHz beep of
/// `beep` seconds from sample 0, `pad` seconds of silence, then a 2 kHz end
/// marker of `mark` seconds that ends the file, both at peak `vol`. The two
/// parts are made in `tmp` (named after `out`'s file name) and joined by sox.
pub fn sox_beep_and_marker(
    out: &Path,
    tmp: &Path,
    pcm: Pcm,
    beep: f64,
    pad: f64,
    mark: f64,
    vol: f64,
) {
    let name = out.file_name().unwrap().to_str().unwrap();
    let head = tmp.join(format!("{name}.head.wav"));
    let tail = tmp.join(format!("{name}.tail.wav"));
    sox_tone(&head, pcm, beep, 1000, vol, pad);
    sox_tone(&tail, pcm, mark, 2000, vol, 0.0);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    run_tool(
        "sox",
        &[
            head.to_str().unwrap(),
            tail.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
}

/// `soxi <flag> file` as a number (`-s`: samples, `-r`: sample rate).
pub fn soxi(flag: &str, file: &Path) -> u64 {
    let out = run_tool("soxi", &[flag, file.to_str().unwrap()]);
    String::from_utf8_lossy(&out)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("soxi {flag} {}: {e}", file.display()))
}

// --- Video frames by colour.

/// The colour of the top-left 2x2 pixels of every frame ffmpeg outputs for
/// `video` by default: at the stream's constant frame rate, as a player
/// shows it.
pub fn corner_colours(video: &Path) -> Vec<[u8; 3]> {
    corner_colours_with(video, &[])
}

/// The colour of the top-left 2x2 pixels of every decoded frame, each once:
/// no frames duplicated or dropped to fill timestamp gaps (so check the
/// timestamps separately, e.g. with [`video_packets`]).
pub fn corner_colours_passthrough(video: &Path) -> Vec<[u8; 3]> {
    corner_colours_with(video, &["-fps_mode", "passthrough"])
}

fn corner_colours_with(video: &Path, frame_options: &[&str]) -> Vec<[u8; 3]> {
    let mut args = vec!["-an"];
    args.extend_from_slice(frame_options);
    args.extend_from_slice(&[
        // 2x2 because yuv420p's chroma cannot be cropped to 1x1.
        "-vf",
        "crop=2:2:0:0",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]);
    let raw = ffmpeg_stdout(video, &args);
    assert_eq!(raw.len() % 12, 0, "rawvideo output is not whole 2x2 frames");
    raw.chunks_exact(12)
        .map(|f| {
            let mut c = [0u8; 3];
            for (ch, v) in c.iter_mut().enumerate() {
                let sum: u32 = (0..4).map(|p| f[p * 3 + ch] as u32).sum();
                *v = ((sum + 2) / 4) as u8;
            }
            c
        })
        .collect()
}

/// Index of the first `palette` colour that `c` matches within `tol` on
/// every channel (a solid background after compression), if any.
pub fn classify(c: [u8; 3], palette: &[[u8; 3]], tol: i32) -> Option<usize> {
    palette.iter().position(|p| {
        p.iter()
            .zip(c.iter())
            .all(|(a, b)| (*a as i32 - *b as i32).abs() <= tol)
    })
}

/// The scene each frame shows: its colour [`classify`]d against `palette`.
pub fn classify_frames(colours: &[[u8; 3]], palette: &[[u8; 3]], tol: i32) -> Vec<Option<usize>> {
    colours.iter().map(|c| classify(*c, palette, tol)).collect()
}

/// Runs of equal values in `seq`: (value, first index, length).
pub fn run_lengths<T: PartialEq + Copy>(seq: &[T]) -> Vec<(T, usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < seq.len() {
        let j = (i..seq.len())
            .find(|&j| seq[j] != seq[i])
            .unwrap_or(seq.len());
        out.push((seq[i], i, j - i));
        i = j;
    }
    out
}

/// Run-length summary of a per-frame scene sequence, for messages:
/// `Name xN (frames a..b), ...`, scenes named by `name`, `?` for a frame
/// that is no scene's.
pub fn runs(seq: &[Option<usize>], name: impl Fn(usize) -> String) -> String {
    run_lengths(seq)
        .iter()
        .map(|(k, i, n)| {
            let name = k.map(&name).unwrap_or_else(|| "?".into());
            format!("{name} x{n} (frames {i}..{})", i + n)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The per-frame scene sequence of segments of `seg_frames[k]` frames of
/// scene `k`, one after another.
pub fn segments_seq(seg_frames: &[u64]) -> Vec<Option<usize>> {
    (0..seg_frames.len())
        .flat_map(|k| std::iter::repeat_n(Some(k), seg_frames[k] as usize))
        .collect()
}

/// The first frame of each of scenes `0..scenes` in `seq`, if it shows.
pub fn first_frames(seq: &[Option<usize>], scenes: usize) -> Vec<Option<usize>> {
    (0..scenes)
        .map(|k| seq.iter().position(|s| *s == Some(k)))
        .collect()
}

/// Panics at the first frame where the measured scene sequence `seq`
/// (classified from `colours`) differs from `expected` (at least as long),
/// with both sequences' run-length summaries.
pub fn assert_frames_match(
    seq: &[Option<usize>],
    expected: &[Option<usize>],
    colours: &[[u8; 3]],
    name: impl Fn(usize) -> String,
) {
    if let Some(i) = (0..seq.len()).find(|&i| seq[i] != expected[i]) {
        panic!(
            "frame {i} shows {:?} ({:?}), expected {:?}\nmeasured: {}\nexpected: {}",
            seq[i].map(&name),
            colours[i],
            expected[i].map(&name),
            runs(seq, &name),
            runs(expected, &name)
        );
    }
}

// --- ffprobe.

/// `ffprobe -v error <args> -of json <file>`, parsed.
pub fn ffprobe_json(file: &Path, args: &[&str]) -> Value {
    let mut all = vec!["-v", "error"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-of", "json", file.to_str().unwrap()]);
    serde_json::from_slice(&run_tool("ffprobe", &all)).expect("ffprobe JSON")
}

/// Frames of `video`'s first video stream, counted by decoding
/// (`ffprobe -count_frames`).
pub fn count_frames(video: &Path) -> u64 {
    let v = ffprobe_json(
        video,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
        ],
    );
    v["streams"][0]["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("frame count of {}: {v}", video.display()))
}

/// The streams (of `-show_entries stream=...`) whose `codec_type` is `ty`.
pub fn streams_of<'a>(streams: &'a [Value], ty: &str) -> Vec<&'a Value> {
    streams.iter().filter(|s| s["codec_type"] == ty).collect()
}

/// The first video stream's packet timestamps.
#[derive(Debug)]
pub struct VideoPackets {
    /// The stream's time base, `(num, den)`: a tick is num/den seconds.
    pub time_base: (i64, i64),
    /// The stream's `start_pts` (0 when ffprobe gives none).
    pub start_pts: i64,
    /// Every packet's pts, in file (decoding) order.
    pub pts: Vec<i64>,
}

/// The time base, start pts and packet pts of `file`'s first video stream.
pub fn video_packets(file: &Path) -> VideoPackets {
    let probe = ffprobe_json(
        file,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=time_base,start_pts:packet=pts",
        ],
    );
    let stream = &probe["streams"][0];
    let time_base = stream["time_base"]
        .as_str()
        .and_then(|tb| tb.split_once('/'))
        .and_then(|(n, d)| Some((n.parse::<i64>().ok()?, d.parse::<i64>().ok()?)))
        .filter(|(n, d)| *n > 0 && *d > 0)
        .unwrap_or_else(|| panic!("no video time base in {}: {probe}", file.display()));
    let pts = probe["packets"]
        .as_array()
        .unwrap_or_else(|| panic!("no packets from ffprobe for {}: {probe}", file.display()))
        .iter()
        .map(|p| p["pts"].as_i64().expect("packet pts"))
        .collect();
    VideoPackets {
        time_base,
        start_pts: stream["start_pts"].as_i64().unwrap_or(0),
        pts,
    }
}

/// Where timestamp `pts` (in ticks of `time_base`) lies on the grid of `fps`
/// frames a second that starts at `origin`: the frame it falls in and how
/// far past that frame's start, in units of 1/(num * fps) ticks, that is
/// 1/den of a frame (0: exactly on the grid).
pub fn frame_grid(pts: i64, origin: i64, time_base: (i64, i64), fps: u64) -> (i128, i128) {
    let (num, den) = (time_base.0 as i128, time_base.1 as i128);
    let n = (pts as i128 - origin as i128) * num * fps as i128;
    (n.div_euclid(den), n.rem_euclid(den))
}

/// The md5 of each decoded frame of `video` as rgb24, in order, without
/// timestamps: equal lists mean the same pixels frame for frame.
pub fn rgb_frame_md5s(video: &Path) -> Vec<String> {
    let out = ffmpeg_stdout(
        video,
        &["-map", "0:v", "-pix_fmt", "rgb24", "-f", "framemd5", "-"],
    );
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|m| m.trim().to_string()))
        .collect()
}

/// ffmpeg's framemd5 lines of the first video stream (no comments): equal
/// lists mean the same decoded pixels at the same times.
pub fn frame_md5s(video: &Path) -> Vec<String> {
    let out = run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            &video.to_string_lossy(),
            "-map",
            "0:v:0",
            "-f",
            "framemd5",
            "-",
        ],
    );
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// ffprobe's values of `entries` (e.g. `stream=nb_read_packets,duration`)
/// for `stream` (`v:0`, `a`), one per line; packets are counted.
pub fn probe(video: &Path, stream: &str, entries: &str) -> Vec<String> {
    let out = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            stream,
            "-count_packets",
            "-show_entries",
            entries,
            "-of",
            "default=nw=1:nk=1",
            &video.to_string_lossy(),
        ],
    );
    String::from_utf8_lossy(&out)
        .lines()
        .map(str::to_string)
        .collect()
}
