#!/usr/bin/env bash
# The main job on embedded defaults: generate a 20 s 1080p sample once, transcode it with
# the built-in pipeline, and say where the playable output is.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=data/sample
src=$dir/source.mp4
mkdir -p "$dir"
if [ ! -s "$src" ]; then
  echo "run: generating a 20 s 1080p30 sample at $src"
  ffmpeg -y -hide_banner -loglevel error \
    -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=20" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=20" \
    -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 128k -movflags +faststart "$src.partial.mp4"
  mv "$src.partial.mp4" "$src"
fi

target/release/encoder transcode "$src" --out "$dir/output" --force
echo
echo "play it:  ffplay $dir/output/master.m3u8"
echo "or serve: (cd $dir/output && python3 -m http.server 8000) and open http://127.0.0.1:8000/master.m3u8 in an HLS player"
