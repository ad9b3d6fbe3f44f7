#!/usr/bin/env bash
# Sets up a development or CI machine from scratch: Debian packages, a virtualenv in .venv,
# the CPU build of PyTorch, and subtitled with its test extras (which carry offline weights).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# systemd: systemd-analyze for the unit checks; debootstrap and systemd-container: the test
# that boots the unit under a real systemd in a container. espeak-ng: speech in languages
# the corpus lacks, for the language and hard-audio tests (bench/voices.py). postgresql:
# the server the shared job store's tests start on a temporary folder of their own.
# chromium, chromium-driver: the web page's tests drive a real headless browser.
packages=(ffmpeg libsystemd-dev pkg-config util-linux systemd debootstrap systemd-container
          espeak-ng postgresql chromium chromium-driver)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# The CPU build first: a bare `torch` requirement would pull several GB of CUDA wheels.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[test]'
