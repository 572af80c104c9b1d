#!/usr/bin/env bash
# Installs what building and testing need on Debian 12, only what is missing: the FFmpeg 5.1
# development libraries, clang (bindgen), pkg-config, the ffmpeg CLI (test fixtures are
# generated with it), Chromium with Hangul and emoji fonts (browser tests), openssl, the
# pages' npm packages and a Rust toolchain. Safe to run again and again.
set -euo pipefail

packages=(pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev
  libavfilter-dev libavdevice-dev libswscale-dev libswresample-dev ffmpeg curl ca-certificates
  python3-venv openssl chromium fonts-nanum fonts-noto-color-emoji)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from elsewhere (nodesource bundles npm and conflicts with Debian's npm):
# only the commands matter.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Test tools from their registries, into the git-ignored target/ folder: an S3-compatible
# server (moto) for the blob storage tests, and tus-js-client for the upload compatibility test.
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/target/tools/venv/bin/moto_server" ]; then
  echo "setup: installing moto (S3 test server) into target/tools/venv"
  python3 -m venv "$root/target/tools/venv"
  "$root/target/tools/venv/bin/pip" install -q 'moto[server]==5.2.5'
fi
# The pages' libraries (hls.js, tus-js-client) and the browser-test driver (playwright-core).
if [ ! -d "$root/web/node_modules/hls.js" ] || [ ! -d "$root/web/node_modules/playwright-core" ]; then
  npm ci --prefix "$root/web" --no-audit --no-fund --loglevel=error
fi
if [ ! -d "$root/origin/tests/tus-client/node_modules/tus-js-client" ]; then
  npm ci --prefix "$root/origin/tests/tus-client" --no-audit --no-fund --loglevel=error
fi

# Debian's own rustc is too old for this workspace; rustup provides a current one.
need_rust() {
  command -v cargo >/dev/null 2>&1 || return 0
  local minor
  minor=$(rustc --version | sed -E 's/rustc 1\.([0-9]+).*/\1/')
  [ "$minor" -lt 94 ]
}
if need_rust; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  if need_rust; then
    echo "setup: installing Rust with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt >/dev/null
  fi
fi
