#!/usr/bin/env bash
# Builds the fuzz targets and runs each for a bounded time (FUZZ_SECONDS, default 600), four
# at a time. Seeds: the text in seeds/ plus what is generated here (the shipped pipeline and
# pop.toml, a fragmented MP4 made by FFmpeg). Crashes land in artifacts/<target>/ and make
# the script fail; the growing corpus stays in corpus/ (not committed).
#
#   fuzz/run.sh                 # every target, 10 minutes each
#   FUZZ_SECONDS=60 fuzz/run.sh range token
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(range token tus_headers pipeline pop_toml hls mp4)

# cargo-fuzz needs compiler flags that only nightly accepts; the machine has one stable
# toolchain, which accepts them when told it is bootstrapping.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none --debug-assertions

seed() {
  local target=$1 dir=corpus/$1
  mkdir -p "$dir"
  [ -d "seeds/$target" ] && cp -n seeds/"$target"/* "$dir"/ 2>/dev/null || true
  case $target in
    pipeline) cp -n ../encoder/src/pipeline/default.toml "$dir/default.toml" ;;
    pop_toml) cp -n ../pop-config/pop.example.toml "$dir/example.toml" ;;
    mp4)
      [ -s "$dir/fragmented.mp4" ] || ffmpeg -v error -y -f lavfi -i testsrc2=size=64x36:rate=10:duration=0.5 \
        -c:v libx264 -preset ultrafast -movflags frag_keyframe+empty_moov+default_base_moof "$dir/fragmented.mp4"
      ;;
  esac
}

run() {
  local target=$1
  seed "$target"
  mkdir -p "artifacts/$target"
  cargo fuzz run --sanitizer none --debug-assertions "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="artifacts/$target/" \
    >"artifacts/$target.log" 2>&1
}

failed=()
pending=("${targets[@]}")
while [ ${#pending[@]} -gt 0 ]; do
  batch=("${pending[@]:0:4}")
  pending=("${pending[@]:4}")
  pids=()
  for t in "${batch[@]}"; do run "$t" & pids+=($!); done
  for i in "${!batch[@]}"; do
    if wait "${pids[$i]}"; then
      echo "fuzz ${batch[$i]}: clean for ${seconds} s ($(grep -o 'Done [0-9]* runs' "artifacts/${batch[$i]}.log" | tail -n1))"
    else
      echo "fuzz ${batch[$i]}: FAILED, see fuzz/artifacts/${batch[$i]}.log and fuzz/artifacts/${batch[$i]}/"
      failed+=("${batch[$i]}")
    fi
  done
done
[ ${#failed[@]} -eq 0 ]
