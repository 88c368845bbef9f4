#!/usr/bin/env bash
# Only the distillation stage: pick a student for a device, then distill the demo teacher
# into it with the ANC adversarial loss and no labels at all.
set -euo pipefail
out=${OUT:-runs/examples}
mkdir -p "$out"
edgecompress select --device rpi5 --input 1x16x16 --classes 10 -o "$out/spec.json"
edgecompress distill --teacher demo --spec "$out/spec.json" --data digits \
  --method anc-labelfree --epochs ${EPOCHS:-3} --out "$out/distill" --no-progress
