#!/usr/bin/env python3
# Experiment (not a test): can the final video's AAC track be re-encoded
# only from a changed scene on? Encodes a 48 kHz stereo s16le PCM track
# whole, then again from input frame K-P-1 (P frames of pre-roll and the
# encoder's priming frame), splices the whole encode's ADTS packets [0, K)
# with the second encode's packets from K on, and compares both decodes with
# each other and with the source around the splice.
#   .venv/bin/python scripts/aac-splice-check.py TRACK.pcm K [P=2]
# Measured on the example's 37 s track, K=1000, P=2 (issue 9): the prefix
# decodes bit-identically, the largest difference near the splice is 7 of
# 32767, and the SNR against the source near the splice is 49.09 dB spliced
# vs 49.26 dB whole.
import subprocess
import sys

import numpy as np


def adts_frames(data):
    out, i = [], 0
    while i + 7 <= len(data):
        if data[i] != 0xFF or (data[i + 1] & 0xF0) != 0xF0:
            raise SystemExit("not an ADTS frame at byte %d" % i)
        length = ((data[i + 3] & 3) << 11) | (data[i + 4] << 3) | (data[i + 5] >> 5)
        out.append(data[i:i + length])
        i += length
    return out


def encode(pcm):
    r = subprocess.run(["ffmpeg", "-v", "error", "-f", "s16le", "-ar", "48000", "-ac", "2", "-i", "-",
                        "-c:a", "aac", "-b:a", "192k", "-f", "adts", "-"],
                       input=pcm, capture_output=True, check=True)
    return adts_frames(r.stdout)


def decode(adts):
    r = subprocess.run(["ffmpeg", "-v", "error", "-f", "aac", "-i", "-", "-f", "s16le", "-ac", "2", "-ar", "48000", "-"],
                       input=b"".join(adts), capture_output=True, check=True)
    return np.frombuffer(r.stdout, dtype=np.int16).reshape(-1, 2).astype(np.float64)


def snr(signal, error):
    return 10 * np.log10((signal ** 2).sum() / max((error ** 2).sum(), 1e-9))


def main():
    pcm = open(sys.argv[1], "rb").read()
    k, p = int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 2
    whole = encode(pcm)
    start = k - p - 1
    suffix = encode(pcm[start * 1024 * 4:])
    spliced = whole[:k] + suffix[k - start:]
    a, b = decode(whole), decode(spliced)
    n = min(len(a), len(b))
    src = np.frombuffer(pcm, dtype=np.int16).reshape(-1, 2).astype(np.float64)
    at = (k - 1) * 1024
    print("packets", len(whole), len(spliced), "samples", len(a), len(b))
    print("prefix identical:", bool((a[:at - 2048] == b[:at - 2048]).all()))
    print("largest difference near the splice:", np.abs(a[at - 2048:at + 4096] - b[at - 2048:at + 4096]).max())
    for name, x in (("whole", a), ("spliced", b)):
        # An ADTS decode keeps the encoder's 1024 priming samples in front.
        e = x[1024:1024 + len(src)] - src[:len(x) - 1024]
        print(name, "SNR vs source near the splice: %.2f dB" % snr(src[at - 4096:at + 4096], e[at - 4096:at + 4096]))
    print("samples compared:", n)


main()
