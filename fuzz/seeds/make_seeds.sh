#!/usr/bin/env bash
# Regenerates the seed inputs in fuzz/seeds/TARGET/ (committed; scripts/fuzz.sh feeds them to
# each target next to its corpus). Needs ffmpeg (libx264, libx265) and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
ffmpeg -loglevel error -y -f lavfi -i testsrc=size=64x48:rate=10 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 1 -c:v libx264 -g 5 -bf 2 -c:a aac -b:a 32k -movflags +frag_keyframe+empty_moov+default_base_moof+cmaf -f mp4 avc.mp4
ffmpeg -loglevel error -y -f lavfi -i testsrc=size=64x48:rate=10 -t 0.6 -c:v libx265 -x265-params log-level=error -g 3 -tag:v hvc1 -movflags +frag_keyframe+empty_moov+default_base_moof -f mp4 hevc.mp4
ffmpeg -loglevel error -y -f lavfi -i sine=frequency=440:sample_rate=44100 -t 0.5 -c:a aac -movflags +frag_keyframe+empty_moov+default_base_moof -frag_duration 100000 -f mp4 aac.mp4
python3 "$here/make_seeds.py" "$here"
