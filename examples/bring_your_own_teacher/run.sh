#!/usr/bin/env bash
# Bring your own teacher: export it with torch.export, then one build command.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-runs/examples}
mkdir -p "$out"
python "$here/make_teacher.py" "$out/teacher.pt2"
edgecompress build --device host --teacher "$out/teacher.pt2" --data digits \
  --labeled-fraction 0.5 --method kd --epochs ${EPOCHS:-3} --out "$out/byot"
