#!/usr/bin/env bash
#   Install every Debian 12 package needed to build, test and run Trove.
#   Does nothing (and needs no network or root) when all are installed already;
#   otherwise runs apt-get update + install, through sudo when not root.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libzmq3-dev libczmq-dev
    libprotobuf-c-dev protobuf-c-compiler
    liblmdb-dev lmdb-utils
    libcmocka-dev libsodium-dev libjansson-dev libyaml-dev libmicrohttpd-dev libgnutls28-dev
    openssl                         # tests: certificates for the HTTPS listener
    libcurl4-gnutls-dev             # trove-webhooks: its HTTP client
    libhiredis-dev redis-server     # bench/peers: the Redis peer of bench/run.sh (e)
    jq procps psmisc tzdata iproute2 python3 python3-yaml
    python3-jsonschema              # tests/openapi: docs/openapi.json checked (test_openapi)
    curl clang libclang-rt-14-dev
    ansible-core ansible-lint openssh-server openssh-client runit supervisor systemd util-linux python3-apt
    chromium chromium-driver python3-selenium   # tests/integration/test_console.sh (headless browser)
    nodejs                                      # tests/js: the console's JS client and metrics module
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PACKAGES[@]} packages already installed"
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: not root and sudo is not available; install: ${missing[*]}" >&2
        exit 1
    fi
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
