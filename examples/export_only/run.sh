#!/usr/bin/env bash
# Only the export stage: take a checkpoint (here, from a quick distillation) to ONNX and
# TFLite at fp32 and int8, each checked against PyTorch through ONNX Runtime and LiteRT.
set -euo pipefail
out=${OUT:-runs/examples}
mkdir -p "$out"
if [ ! -f "$out/distill/checkpoint.json" ]; then
  edgecompress select --device rpi5 --input 1x16x16 --classes 10 -o "$out/spec.json"
  edgecompress distill --teacher demo --spec "$out/spec.json" --data digits --method kd \
    --epochs ${EPOCHS:-3} --out "$out/distill" --no-progress
fi
edgecompress export --checkpoint "$out/distill/checkpoint.json" --format onnx,tflite \
  --precision fp32,int8 --out "$out/export" --no-progress
