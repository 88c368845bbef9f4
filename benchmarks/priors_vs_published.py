"""The device profiles' latency priors against published figures.

XNNPACK's README lists multi-threaded fp32 MobileNet latencies on a Raspberry Pi 4 (as quoted in issue 15)
(v1 75 ms, v2 44 ms, v3-Large 41 ms, v3-Small 14 ms, 224x224, 1000 classes). Those networks
are built here as arch-string students at 224x224 with 1000 classes (MobileNet v1: depthwise-
separable blocks; v2: inverted residuals; v3: inverted residuals with squeeze-excite and
hardswish at the published expansions), costed by the same code that costs every candidate,
and predicted with the rpi4 profile's priors (no calibration file: priors only). The error of
each prediction against the published number is what the priors are worth before `calibrate`.

Not covered: the Pixel phones' published numbers (not in this machine's reference copy).
Differences in the nets: our depthwise-separable block has no activation after its pointwise
conv, our squeeze-excite gates with a sigmoid (v3: hard-sigmoid), and v3's 1280/1024-wide
penultimate Linear is absent -- each well under 1% of the MACs.

    .venv/bin/python benchmarks/priors_vs_published.py

Writes benchmarks/results/priors_vs_published.{json,md}.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgecompress.artifacts import StudentSpec  # noqa: E402
from edgecompress.cost.calibration import LatencyPredictor  # noqa: E402
from edgecompress.cost.estimate import spec_cost  # noqa: E402
from edgecompress.cost.predictor import predict, prior_coefficients  # noqa: E402
from edgecompress.profiles import load_profile  # noqa: E402

SOURCE = "XNNPACK README (Performance section) as quoted in issue 15: Raspberry Pi 4, fp32, multi-threaded"


def _ir(spec: list[tuple[int, float, int, bool, str, int]]) -> str:
    """(kernel, expansion, out channels, se, activation, stride) rows -> ir blocks."""
    return "-".join(f"ir_r1_k{k}_s{s}_e{e:g}_c{c}" + ("_se" if se else "") + ("" if a == "relu" else f"_a{a}")
                    for k, e, c, se, a, s in spec)


MOBILENET_V1 = "-".join(
    ["cn_r1_k3_s2_c32_arelu6"]
    + [f"ds_r{r}_k3_s{s}_c{c}_arelu6" for r, s, c in
       ((1, 1, 64), (1, 2, 128), (1, 1, 128), (1, 2, 256), (1, 1, 256), (1, 2, 512), (5, 1, 512), (1, 2, 1024), (1, 1, 1024))]
)
MOBILENET_V2 = ("cn_r1_k3_s2_c32_arelu6-ir_r1_k3_s1_e1_c16_arelu6-ir_r2_k3_s2_e6_c24_arelu6-ir_r3_k3_s2_e6_c32_arelu6-"
                "ir_r4_k3_s2_e6_c64_arelu6-ir_r3_k3_s1_e6_c96_arelu6-ir_r3_k3_s2_e6_c160_arelu6-ir_r1_k3_s1_e6_c320_arelu6-"
                "cn_r1_k1_s1_c1280_arelu6")
MOBILENET_V3_LARGE = "-".join([
    "cn_r1_k3_s2_c16_ahs",
    _ir([(3, 1, 16, False, "relu", 1), (3, 4, 24, False, "relu", 2), (3, 3, 24, False, "relu", 1),
         (5, 3, 40, True, "relu", 2), (5, 3, 40, True, "relu", 1), (5, 3, 40, True, "relu", 1),
         (3, 6, 80, False, "hs", 2), (3, 2.5, 80, False, "hs", 1), (3, 2.3, 80, False, "hs", 1), (3, 2.3, 80, False, "hs", 1),
         (3, 6, 112, True, "hs", 1), (3, 6, 112, True, "hs", 1), (5, 6, 160, True, "hs", 2), (5, 6, 160, True, "hs", 1),
         (5, 6, 160, True, "hs", 1)]),
    "cn_r1_k1_s1_c960_ahs",
])
MOBILENET_V3_SMALL = "-".join([
    "cn_r1_k3_s2_c16_ahs",
    _ir([(3, 1, 16, True, "relu", 2), (3, 4.5, 24, False, "relu", 2), (3, 88 / 24, 24, False, "relu", 1),
         (5, 4, 40, True, "hs", 2), (5, 6, 40, True, "hs", 1), (5, 6, 40, True, "hs", 1), (5, 3, 48, True, "hs", 1),
         (5, 3, 48, True, "hs", 1), (5, 6, 96, True, "hs", 2), (5, 6, 96, True, "hs", 1), (5, 6, 96, True, "hs", 1)]),
    "cn_r1_k1_s1_c576_ahs",
])
PUBLISHED_MS = {"MobileNet v1": (MOBILENET_V1, 75.0), "MobileNet v2": (MOBILENET_V2, 44.0),
                "MobileNet v3-Large": (MOBILENET_V3_LARGE, 41.0), "MobileNet v3-Small": (MOBILENET_V3_SMALL, 14.0)}


def main() -> None:
    profile = load_profile("rpi4")
    coef = prior_coefficients(profile.priors, "fp32")
    rows = []
    for name, (arch, published) in PUBLISHED_MS.items():
        cost = spec_cost(StudentSpec("mobilenet", arch, (3, 224, 224), 1000, 1.0))
        predicted = predict(coef, cost.features)
        rows.append({"network": name, "macs_m": round(cost.macs / 1e6, 1), "params_m": round(cost.params / 1e6, 2),
                     "published_ms": published, "predicted_ms": round(predicted, 1),
                     "error_pct": round(100 * (predicted - published) / published, 1)})
    calibrated = LatencyPredictor.for_profile(profile).coefficients("tflite-xnnpack", "fp32")[1]
    result = {"command": "python benchmarks/priors_vs_published.py", "profile": "rpi4", "runtime": "tflite-xnnpack:fp32",
              "threads": profile.runtime.threads, "source": SOURCE, "predictor_source_in_use": calibrated,
              "priors": dataclasses.asdict(profile.priors),
              "rows": rows}
    out = ROOT / "benchmarks" / "results"
    (out / "priors_vs_published.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = ["# rpi4 priors vs published MobileNet latencies", "",
          f"`{result['command']}`: the rpi4 profile's fp32 priors ({profile.runtime.threads} threads) against {SOURCE}.", "",
          "| network (224x224, 1000 classes) | MACs (M) | params (M) | published ms | predicted ms | error |",
          "|---|---|---|---|---|---|",
          *[f"| {r['network']} | {r['macs_m']} | {r['params_m']} | {r['published_ms']:g} | {r['predicted_ms']:g} | "
            f"{r['error_pct']:+.1f}% |" for r in rows], ""]
    (out / "priors_vs_published.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
