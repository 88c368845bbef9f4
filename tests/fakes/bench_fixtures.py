"""Session fixtures for the bench tests (loaded with ``pytest_plugins``): tiny real models."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.bench_models import cached, has_tflite_stack, make_onnx, make_tflite


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached(tmp_path_factory, "tiny_fp32.onnx", make_onnx)


@pytest.fixture(scope="session")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not has_tflite_stack():
        pytest.skip("needs the tflite extra (tensorflow, ai-edge-litert)")
    return cached(tmp_path_factory, "tiny_float32.tflite", make_tflite)
