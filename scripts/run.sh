#!/usr/bin/env bash
# The main job on embedded defaults: the origin (API, uploads, SQLite, local storage,
# in-process queue and workers) in ./data. On first start it ingests a generated 20 s 1080p
# sample through the API (tus upload, transcode, encryption). Ctrl-C stops it; the next run
# finds its data again.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${ORIGIN_PORT:-8080}
base="http://127.0.0.1:$port"
mkdir -p data
if [ ! -f data/origin.toml ]; then
  printf 'data_dir = "data"\nlisten = "127.0.0.1:%s"\n' "$port" > data/origin.toml
fi

target/release/origin serve --config data/origin.toml &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

if curl -fsS "$base/v1/videos" | grep -q '"videos":\[\]'; then
  sample=data/sample/source.mp4
  mkdir -p data/sample
  if [ ! -s "$sample" ]; then
    echo "run: generating a 20 s 1080p30 sample"
    ffmpeg -y -hide_banner -loglevel error \
      -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=20" \
      -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=20" \
      -c:v libx264 -preset veryfast -crf 18 -pix_fmt yuv420p -c:a aac -b:a 128k -movflags +faststart "$sample.partial.mp4"
    mv "$sample.partial.mp4" "$sample"
  fi
  target/release/origin ingest "$sample" --url "$base" --title "Sample: testsrc2 1080p"
fi

id=$(curl -fsS "$base/v1/videos?limit=1" | sed -E 's/.*"id":"([0-9a-f]+)".*/\1/')
master=$(curl -fsS -X POST "$base/v1/videos/$id/playback" | sed -E 's/.*"master_url":"([^"]+)".*/\1/')
cat <<MSG

origin:     $base   (OpenAPI: $base/openapi.json, metrics: $base/metrics)
catalogue:  $base/v1/videos
sample:     $base/v1/videos/$id
play (HLS, AES-128, token valid 6 h):
  ffplay "$master"
upload your own:  target/release/origin ingest FILE --url $base
Ctrl-C stops the origin.
MSG
wait $server
