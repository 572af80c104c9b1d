#!/usr/bin/env bash
# The main job on embedded defaults: the origin (API, SQLite, local storage, in-process queue
# and workers) and one local edge PoP in front of it, both in ./data. The PoP serves the
# pages, the video (HTTP/1.1, 2 and 3) and the uploads; it makes a development certificate on
# first start. On first start the catalogue gets a generated 20 s 1080p sample, uploaded
# through the PoP. Ctrl-C stops both; the next run finds everything again.
set -euo pipefail
cd "$(dirname "$0")/.."

origin_port=${ORIGIN_PORT:-8080}
edge_port=${EDGE_PORT:-8443}
origin="http://127.0.0.1:$origin_port"
site="https://localhost:$edge_port"
mkdir -p data

# Generated each run from the settings above (edit these lines, not the files). The origin
# keeps its signing and master keys in data/secrets.json (made on first use); the PoP gets
# only the public halves, and its own credential from the origin's PoP registry.
cat >data/origin.toml <<TOML
data_dir = "data"
listen = "127.0.0.1:$origin_port"
public_url = "$origin"
key_url = "$origin"
upload_url = "$site"
playback_url = "$site"
TOML
if [ ! -s data/pop-local.credential ]; then
  target/release/origin pops enrol pop-local --region local --config data/origin.toml \
    --out data/pop-local.credential >/dev/null
fi
cat >data/pop.toml <<TOML
[pop]
id = "pop-local"
region = "local"

[listen]
https = "127.0.0.1:$edge_port"
metrics = "127.0.0.1:9465"

[origin]
urls = ["$origin"]
credential_file = "pop-local.credential"

$(target/release/origin keys pop-toml --config data/origin.toml)

[cache]
path = "edge-cache"
memory = "256MiB"
disk = "1GiB"

[web]
dir = "../web"
TOML

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT INT TERM

# The servers' logs go to files; the terminal keeps the states and URLs a person needs.
target/release/origin serve --config data/origin.toml >data/origin.log 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "$origin/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

target/release/edge serve --config data/pop.toml >data/edge.out 2>data/edge.log &
pids+=($!)
cert=data/edge-cache/tls/cert.pem
for _ in $(seq 1 100); do
  [ -s "$cert" ] && curl -fsS --cacert "$cert" "$site/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
spki=$(sed -nE 's/.*spki=([^ ]+).*/\1/p' data/edge.out | head -n1)

if curl -fsS "$origin/v1/videos" | grep -q '"videos":\[\]'; then
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
  target/release/origin ingest "$sample" --url "$origin" --ca "$cert" --title "Sample: testsrc2 1080p"
fi

id=$(curl -fsS "$origin/v1/videos?limit=1" | sed -E 's/.*"id":"([0-9a-f]+)".*/\1/')
cat <<MSG

catalogue:  $site/
watch:      $site/watch/$id
upload:     $site/upload        (creator token: dev-creator-token)
HTTP/3:     udp 127.0.0.1:$edge_port, certificate SPKI sha256 $spki
            chromium --origin-to-force-quic-on=localhost:$edge_port --ignore-certificate-errors-spki-list=$spki $site/
            (the certificate is a development one: $cert)
origin API: $origin   (OpenAPI: $origin/openapi.json; metrics: http://127.0.0.1:9464/metrics; PoP metrics: http://127.0.0.1:9465/metrics)
key service: $origin/v1/keys   (players fetch keys and licences here, never through the PoP)
logs:       data/origin.log, data/edge.log
Ctrl-C stops the origin and the PoP.
MSG
wait -n "${pids[@]}"
