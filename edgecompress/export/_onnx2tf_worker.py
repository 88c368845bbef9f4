"""Subprocess entry: run onnx2tf on one ONNX file with the network switched off.

    python -m edgecompress.export._onnx2tf_worker request.json

Runs in a child process so TensorFlow's memory, threads and log spam stay out of the caller
and a hung conversion can be killed by timeout. Every socket connect is refused *before*
onnx2tf is imported; an attempt is printed as ``edgecompress-offline: blocked ...`` so the log
(and the tests) show whether the converter ever tried to reach the network.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, NoReturn

BLOCKED_MARK = "edgecompress-offline: blocked network access"


def block_network() -> None:
    """Make every outgoing connection (and DNS lookup) fail loudly in this process."""

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        target = args[1] if len(args) > 1 else args[0] if args else kwargs
        print(f"{BLOCKED_MARK} to {target!r}", file=sys.stderr, flush=True)
        raise OSError(f"{BLOCKED_MARK} (edgecompress converts offline)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.getaddrinfo = refuse  # type: ignore[assignment]


def disable_add_layout_rescue() -> None:
    """Switch off onnx2tf 1.29's "rescue guard for unexpected broadcasted shapes" in Add.

    It compares the NHWC TensorFlow output shape with the NCHW ONNX shape, so every Add whose
    channel count differs from its height looks "broadcast wrongly" and gets both inputs
    transposed to NCHW. Later ops do not always undo that: on our ResNet students the next
    strided Conv then read an NCHW tensor as NHWC (fp32 max |diff| 0.05, agreement 55%). The
    guard's only transposes go through this module-level helper, so making it the identity
    leaves the rest of Add untouched; the parity gate checks every result anyway.
    """
    import onnx2tf.ops.Add as add_op

    if hasattr(add_op, "transpose_with_flexing_deterrence"):
        add_op.transpose_with_flexing_deterrence = lambda *, input_tensor, perm, **kwargs: input_tensor
        print("edgecompress: onnx2tf Add layout rescue guard disabled", flush=True)
    else:  # another onnx2tf version: say so in the log; the parity gate still checks the result
        print("edgecompress: onnx2tf Add layout rescue guard not found; left as is", flush=True)


def exit_with_parent(poll_s: float = 0.5) -> None:
    """End this worker (and its process group) as soon as the process that started it is gone.

    A SIGKILLed caller cannot kill the converter's group; without this the conversion ran on
    as an orphan for about a minute. Polling the parent pid is portable and needs no prctl.
    """
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                if os.getpgrp() == os.getpid():  # our own group (export/worker.py): take it all down
                    os.killpg(0, signal.SIGKILL)
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def main(argv: list[str]) -> int:
    exit_with_parent()
    block_network()
    with open(argv[0], encoding="utf-8") as fh:
        req = json.load(fh)
    import onnx2tf  # after block_network(): nothing it imports may phone home either

    disable_add_layout_rescue()

    onnx2tf.convert(
        input_onnx_file_path=req["onnx"],
        output_folder_path=req["out"],
        output_integer_quantized_tflite=req["integer"],
        output_dynamic_range_quantized_tflite=req["dynamic"],
        # Always given, not only for int8: onnx2tf also feeds its first sample through ONNX
        # Runtime to check its layout choices op by op; without it that check sees the
        # downloaded sample image (3 channels) or an all-ones tensor (1 channel), not our data.
        custom_input_op_name_np_data_path=[[req["input_name"], req["calib"], req["mean"], req["std"]]],
        quant_type="per-channel",
        input_quant_dtype=req["io_dtype"],
        output_quant_dtype=req["io_dtype"],
        keep_ncw_or_nchw_or_ncdhw_input_names=[req["input_name"]] if req["keep_nchw"] else None,
        batch_size=1,
        copy_onnx_input_output_names_to_tflite=True,
        non_verbose=False,
        verbosity="info",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
