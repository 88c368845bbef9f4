#!/usr/bin/env bash
# Add a device without touching the package: a folder of profiles and --profiles-dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
edgecompress profiles list --profiles-dir "$here"
edgecompress profiles show myboard --profiles-dir "$here"
# The same folder works through the environment, for every command:
EDGECOMPRESS_PROFILES="$here" edgecompress select --device myboard --input 3x32x32 --classes 10 -o "${OUT:-/tmp}/myboard_spec.json"
