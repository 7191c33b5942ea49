#!/usr/bin/env bash
# Installs everything the build, the tests and the tools need. Idempotent:
# a second run changes nothing and takes seconds.
#
#   1. Debian 12 packages (apt): compilers, gRPC/protobuf, abseil, yaml-cpp,
#      GoogleTest, Google Benchmark, civetweb, nlohmann-json, libcurl, PCRE2,
#      prometheus-cpp (the services' metrics), the Prometheus server and
#      promtool, Redis (benchmark peer), openssl, tcmalloc (the services'
#      allocator: NOTE [allocator] in CMakeLists.txt), chromium and libpng
#      (the headless browser the HTML report test renders in, and its
#      screenshot's decoder).
#   2. A Python virtual environment with the torch wheel (LibTorch for the
#      C++ build) and the Hugging Face reference packages, pinned in
#      scripts/requirements.txt.
#
# NOTE [shared venv]: the torch wheel and its CUDA libraries are ~5 GB. The
# environment lives once per machine under $FAPO_CACHE_DIR (default
# ~/.cache/fapo), keyed by the hash of requirements.txt's pins, and the
# repository's .venv is a symlink to it, so every clone on a machine (CI's
# included) shares one copy. Set FAPO_VENV to use a directory of your own
# instead.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[install-deps] %s\n' "$*"; }

apt_packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libcivetweb-dev nlohmann-json3-dev libcurl4-openssl-dev libpcre2-dev
  libutf8proc-dev xz-utils
  prometheus redis-server libhiredis-dev openssl curl ca-certificates
  libgoogle-perftools-dev prometheus-cpp-dev chromium libpng-dev
)

missing=()
for package in "${apt_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
      grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"
else
  log "Debian packages: all present"
fi

# The Prometheus package starts a system service on :9090; the tests run
# their own instance on a free port, so the service is not needed.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi

python="${PYTHON:-python3}"
requirements="$root/scripts/requirements.txt"
# The pins only: a comment edited in requirements.txt keeps the environment.
req_hash="$(grep -v '^[[:space:]]*#' "$requirements" | grep -v '^[[:space:]]*$' |
  sha256sum | cut -c1-16)"
cache_dir="${FAPO_CACHE_DIR:-$HOME/.cache/fapo}"
venv="${FAPO_VENV:-$cache_dir/venv-$req_hash}"

# The marker is written last, so a half-built environment never looks done.
if [[ ! -f "$venv/.fapo-complete" ]]; then
  if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    log "python venv support missing; installing python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python=python3
  fi
  log "creating Python environment at $venv (torch is a large download)"
  mkdir -p "$(dirname "$venv")"
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --default-timeout=600 \
    -r "$requirements"
  echo "$req_hash" >"$venv/.fapo-complete"
else
  log "Python environment: $venv"
fi

if [[ -z "${FAPO_VENV:-}" || "$venv" != "$root/.venv" ]]; then
  if [[ -e "$root/.venv" && ! -L "$root/.venv" ]]; then
    log "keeping the existing $root/.venv directory (not a symlink)"
  else
    ln -sfn "$venv" "$root/.venv"
  fi
fi

"$root/.venv/bin/python" - <<'PY'
import torch, transformers, tokenizers, safetensors
print(f"[install-deps] torch {torch.__version__}, transformers "
      f"{transformers.__version__}, tokenizers {tokenizers.__version__}")
PY
log "done"
