"""benchmark_model output parser, against the formats the real tool prints (RESEARCH.md and
public logs of several TFLite versions: with and without the INFO: prefix, logcat prefix,
scientific notation, with and without percentiles, the older memory line, op profiling)."""

from __future__ import annotations

import pytest

from edgecompress.bench.tflite_output import parse_benchmark_model_output

RESEARCH_FORMAT = """\
count=50 first=1234 curr=1100 min=1050 max=1400 avg=1120.5 std=40
Inference timings in us: Init: 25000, First inference: 3000, Warmup (avg): 1500, Inference (avg): 1120.5
Memory footprint delta from the start of the tool (MB): init=3.2 overall=9.8
Overall peak memory footprint (MB) via periodic monitoring: 12.1
"""

NEW_WITH_PERCENTILES = """\
INFO: STARTING!
INFO: Graph: [/data/local/tmp/edgecompress/run-1/model.tflite]
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 24.6229
INFO: Initialized session in 119.515ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=9 first=87112 curr=51629 min=51629 max=87112 avg=58147.4 std=11478 p5=51629 median=51962 p95=87112

INFO: Running benchmark for at least 1000 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=1000 first=52162 curr=49785 min=49088 max=686105 avg=63743.2 std=60716 p5=49620 median=51891 p95=68628

INFO: Inference timings in us: Init: 119515, First inference: 87112, Warmup (avg): 58147.4, Inference (avg): 63743.2
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=55.4961 overall=55.4961
INFO: Overall peak memory footprint (MB) via periodic monitoring: 61.25
"""

OLD_WITH_OP_PROFILING = """\
STARTING!
Num threads: [4]
Graph: [./mobilenet_v1_1.0_224.tflite]
Enable op profiling: [1]
Loaded model ./mobilenet_v1_1.0_224.tflite
The input model file size (MB): 16.9008
Initialized session in 17.187ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=3512391

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=2990275 curr=2913402 min=2727568 max=3189954 avg=2.95034e+06 std=109798

Inference timings in us: Init: 17187, First inference: 3512391, Warmup (avg): 3.51239e+06, Inference (avg): 2.95034e+06
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=4.21094 overall=46.0859
Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t         AllocateTensors\t            0.000\t    1.356\t    1.356\t100.000%\t100.000%\t     0.000\t        1\tAllocateTensors/0

============================== Top by Computation Time ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t         AllocateTensors\t            0.000\t    1.356\t    1.356\t100.000%\t100.000%\t     0.000\t        1\tAllocateTensors/0

Timings (microseconds): count=1 curr=1356
Memory (bytes): count=0
1 nodes observed

Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t                 CONV_2D\t            0.066\t   87.754\t   60.957\t  2.066%\t  2.066%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0
\t       DEPTHWISE_CONV_2D\t           61.033\t   53.628\t   49.870\t  1.691%\t  3.757%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_1_depthwise/Relu6]:1
\t Convolution (NHWC, F32) IGEMM\t  110.912\t  134.346\t  147.808\t  5.011%\t  8.768%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6]:2

============================== Top by Computation Time ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t Convolution (NHWC, F32) IGEMM\t  110.912\t  134.346\t  147.808\t  5.011%\t  5.011%\t     0.000\t        1\t[MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6]:2

Number of nodes executed: 3
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t                 CONV_2D\t        1\t    60.957\t    2.066%\t    2.066%\t     0.000\t        1

Timings (microseconds): count=50 first=2989660 curr=2912978 min=2727203 max=3189476 avg=2.9499e+06 std=109770
Memory (bytes): count=0
3 nodes observed
"""

LOGCAT_AND_OLD_MEMORY_LINE = """\
I tflite  : count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442 p5=247500 median=249600 p95=252000
I tflite  : Inference timings in us: Init: 16242, First inference: 360262, Warmup (avg): 304586, Inference (avg): 249684
Peak memory footprint (MB): init=4.92969 overall=138.809
"""


def test_research_format_every_field() -> None:
    out = parse_benchmark_model_output(RESEARCH_FORMAT)
    assert out.runs is not None and out.runs.count == 50 and out.warmup is None
    assert out.runs.values_us == {"first": 1234, "curr": 1100, "min": 1050, "max": 1400, "avg": 1120.5, "std": 40}
    assert (out.init_ms, out.first_inference_ms, out.warmup_avg_ms, out.inference_avg_ms) == (25.0, 3.0, 1.5, 1.1205)
    assert (out.mem_init_mb, out.mem_overall_mb, out.mem_peak_mb) == (3.2, 9.8, 12.1)
    stats, note = out.latency()
    assert stats.mean_ms == pytest.approx(1.1205) and stats.std_ms == pytest.approx(0.04)
    assert (stats.min_ms, stats.max_ms) == (1.05, 1.4)
    # No percentiles printed: p50 is the average and p90 / p99 the max, and the note says so.
    assert stats.p50_ms == pytest.approx(1.1205) and stats.p90_ms == 1.4 and stats.p99_ms == 1.4
    assert "p50 = avg" in note and "upper bound" in note


def test_new_format_with_percentiles_and_warmup_block() -> None:
    out = parse_benchmark_model_output(NEW_WITH_PERCENTILES)
    assert out.warmup is not None and out.warmup.count == 9
    assert out.runs is not None and out.runs.count == 1000
    stats, note = out.latency()
    assert stats.p50_ms == pytest.approx(51.891) and stats.p90_ms == pytest.approx(68.628)
    assert stats.max_ms == pytest.approx(686.105) and stats.min_ms == pytest.approx(49.088)
    assert stats.mean_ms == pytest.approx(63.7432)
    assert "p50 = median" in note and "p90 = p95" in note
    assert out.init_ms == pytest.approx(119.515) and out.first_inference_ms == pytest.approx(87.112)
    assert out.mem_overall_mb == pytest.approx(55.4961) and out.mem_peak_mb == pytest.approx(61.25)
    assert out.session_ms == pytest.approx(119.515) and out.model_size_mb == pytest.approx(24.6229)
    assert out.op_profile == ()


def test_old_format_scientific_notation_and_op_table() -> None:
    out = parse_benchmark_model_output(OLD_WITH_OP_PROFILING)
    # The lone "count=1 curr=..." is the warmup; "Timings (microseconds): count=" lines belong
    # to the profiler and must not be taken for the counted runs.
    assert out.warmup is not None and out.warmup.count == 1 and out.warmup.values_us == {"curr": 3512391}
    assert out.runs is not None and out.runs.count == 50
    assert out.runs.get_ms("avg") == pytest.approx(2950.34)
    assert out.inference_avg_ms == pytest.approx(2950.34)
    assert out.mem_overall_mb == pytest.approx(46.0859) and out.mem_peak_mb is None
    # Only the regular-run table: not the initialization table, not "Top by computation time".
    assert [r["node_type"] for r in out.op_profile] == ["CONV_2D", "DEPTHWISE_CONV_2D", "Convolution (NHWC, F32) IGEMM"]
    first = out.op_profile[0]
    assert first == {
        "node_type": "CONV_2D",
        "start_ms": 0.066,
        "first_ms": 87.754,
        "avg_ms": 60.957,
        "percent": 2.066,
        "cdf_percent": 2.066,
        "mem_kb": 0.0,
        "times_called": 1,
        "name": "[MobilenetV1/MobilenetV1/Conv2d_0/Relu6]:0",
    }
    assert out.op_profile[2]["avg_ms"] == 147.808


def test_logcat_prefix_and_older_memory_line() -> None:
    out = parse_benchmark_model_output(LOGCAT_AND_OLD_MEMORY_LINE)
    assert out.runs is not None and out.runs.get_ms("median") == pytest.approx(249.6)
    assert out.init_ms == pytest.approx(16.242)
    assert (out.mem_init_mb, out.mem_overall_mb) == (pytest.approx(4.92969), pytest.approx(138.809))


def test_warmup_only_output_has_no_runs() -> None:
    text = NEW_WITH_PERCENTILES.split("INFO: Running benchmark for at least 1000")[0]
    out = parse_benchmark_model_output(text)
    assert out.warmup is not None and out.runs is None
    with pytest.raises(ValueError):
        out.latency()


def test_garbage_is_ignored() -> None:
    out = parse_benchmark_model_output("ERROR: Could not open 'x.tflite'.\nBenchmarking failed.\n")
    assert out.runs is None and out.init_ms is None and out.op_profile == ()
