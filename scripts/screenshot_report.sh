#!/usr/bin/env bash
# Render a build report in real headless Chromium and save a full-page PNG beside it.
#   bash scripts/screenshot_report.sh runs/pixel7-shapes/report.html [out.png]
# Needs Debian's chromium (apt-get install chromium). Flags: no network, no GPU, fresh profile.
set -euo pipefail
html=$(realpath "$1")
png=${2:-"${html%.html}.png"}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --hide-scrollbars --window-size=1200,${HEIGHT:-5200} \
  --screenshot="$png" "file://$html" 2>/dev/null
echo "$png"
