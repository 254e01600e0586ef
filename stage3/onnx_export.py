"""ONNX export of the exported student (:class:`stage3.model.StudentClassifier`): images [B, 3, H, W] ->
logits [B, C], batch dimension dynamic. Needs the optional packages ``onnx`` (export) and
``onnxruntime`` (running it): ``pip install -e .[onnx]``.
It uses torch's TorchScript-based exporter (``dynamo=False``), which needs no further package (the
torch.export-based one needs ``onnxscript``); torch marks it deprecated, so a future torch may need the other."""
from __future__ import annotations

import logging
import warnings
from typing import Any, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["export_onnx", "onnx_session"]


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the ONNX export needs the package {module!r}: pip install -e .[onnx] "
                          f"(or pip install onnx onnxruntime)") from exc


def export_onnx(model: nn.Module, path: str, image_size: Sequence[int], opset: int = 17) -> str:
    """Write ``model`` (fp32, eval) as ONNX to ``path``; input ``images`` [B, 3, H, W], output ``logits`` [B, C]."""
    _require("onnx")
    params = [p for p in list(model.parameters()) + list(model.buffers()) if p.is_floating_point()]
    if any(p.dtype != torch.float32 for p in params):
        raise ValueError("ONNX export writes the fp32 student; build it with precision fp32")
    model = model.eval()
    height, width = int(image_size[0]), int(image_size[1])
    example = torch.zeros(2, 3, height, width)
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused inference kernel has no ONNX form
    try:
        # shape checks of the Python code run once while tracing (the batch axis is declared dynamic)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # the exporter notice (module docstring)
            torch.onnx.export(model, (example,), path, input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                              dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)
    logger.info("Wrote ONNX model %s (opset %d, input [B, 3, %d, %d])", path, opset, height, width)
    return path


def onnx_session(path: str) -> Any:
    """An onnxruntime CPU session of an exported model: ``session.run(None, {"images": array})[0]`` -> logits."""
    ort = _require("onnxruntime")
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])
