#!/usr/bin/env bash
# One-time, idempotent set-up from a clean clone: system packages, .venv, pinned pip packages.
#   bash scripts/setup.sh            everything the tests need (tflite + dev extras, sshd, adb)
#   EDGECOMPRESS_MINIMAL=1 ...       skip the apt packages (for running the pipeline only)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

# System packages for the harness tests: a real OpenSSH server on loopback and the adb client.
if [ "${EDGECOMPRESS_MINIMAL:-0}" != "1" ]; then
  need=()
  command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
  command -v adb >/dev/null 2>&1 || need+=(adb)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup: apt-get install ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and pinned: an unpinned torch would resolve to a multi-GB CUDA build.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[tflite,dev]"
echo "setup: ok ($(.venv/bin/edgecompress --version))"
