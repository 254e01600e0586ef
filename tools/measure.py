"""FLOPs, peak memory and wall time of a callable: the measurements of ``tools/benchmark.py``.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (exact on the ``meta`` device, shape-only)
with the fused MHA fast path disabled so attention is counted; :class:`PeakTensorMemory` accounts live tensors
(meta device / CPU), CUDA runs read the allocator's peak.
"""

from __future__ import annotations

import contextlib
import statistics
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["meta_safe_autocast", "count_flops", "PeakTensorMemory", "peak_memory", "time_median"]


@contextlib.contextmanager
def meta_safe_autocast():
    """``torch.autocast(device_type="meta")`` is not supported; the library code opens
    ``torch.autocast(x.device.type, enabled=False)`` around its fp32 sections. While counting on the meta
    device, map "meta" to "cpu" (a disabled / CPU autocast does not change the computed shapes or FLOPs)."""
    real = torch.autocast

    class _Autocast(real):  # type: ignore[misc, valid-type]
        def __init__(self, device_type: str, *args: Any, **kwargs: Any) -> None:
            super().__init__("cpu" if device_type == "meta" else device_type, *args, **kwargs)

    torch.autocast = _Autocast
    try:
        yield
    finally:
        torch.autocast = real


class _SectionFlops:
    """Adds the FLOPs counted while blocks of given towers run (forward hooks around each block)."""

    def __init__(self, counter: FlopCounterMode, sections: Dict[str, Sequence[nn.Module]]) -> None:
        self.counter = counter
        self.totals = {name: 0 for name in sections}
        self._handles = []
        for name, blocks in sections.items():
            for block in blocks:
                self._handles.append(block.register_forward_pre_hook(self._enter(name)))
                self._handles.append(block.register_forward_hook(self._exit(name)))
        self._start: Dict[str, int] = {}

    def _enter(self, name: str):
        def hook(module, args):
            self._start[name] = self.counter.get_total_flops()
        return hook

    def _exit(self, name: str):
        def hook(module, args, output):
            self.totals[name] += self.counter.get_total_flops() - self._start.pop(name)
        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def count_flops(fn: Callable[[], Any], sections: Optional[Dict[str, Sequence[nn.Module]]] = None) -> Dict[str, int]:
    """FLOPs of ``fn()`` (forward + backward when it runs one) with the MHA fast path disabled; plus the
    FLOPs inside the blocks of each named section. Returns {"total": ..., <section>: ...}."""
    previous = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False) as counter:
            tracker = _SectionFlops(counter, sections or {})
            try:
                fn()
            finally:
                tracker.remove()
        out = {"total": int(counter.get_total_flops())}
        out.update({k: int(v) for k, v in tracker.totals.items()})
        return out
    finally:
        torch.backends.mha.set_fastpath_enabled(previous)


class PeakTensorMemory(TorchDispatchMode):
    """Live-tensor accounting: every storage held before (``hold``) or created by an op inside the mode
    counts until it is freed (weakref finalizer); ``peak`` is the maximum of the running total. Works on
    the meta device, so the peak of a ViT-L/14 step costs no compute and no memory."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._seen = WeakIdKeyDictionary()

    def hold(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        if storage in self._seen:
            return
        nbytes = int(storage.nbytes())
        self._seen[storage] = nbytes
        self.current += nbytes
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, nbytes)

    def _free(self, nbytes: int) -> None:
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.hold(t)
        return out


def _held_tensors(held: Sequence[Any]) -> List[torch.Tensor]:
    out: List[torch.Tensor] = []
    for obj in held:
        if isinstance(obj, torch.Tensor):
            out.append(obj)
        elif isinstance(obj, nn.Module):
            out += list(obj.parameters()) + list(obj.buffers())
        elif isinstance(obj, torch.optim.Optimizer):
            for state in obj.state.values():
                out += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return out


def peak_memory(fn: Callable[[], Any], held: Sequence[Any], device: torch.device) -> int:
    """Peak bytes of ``fn()`` plus the tensors of ``held`` (modules, optimizers, tensors): on CUDA from the
    allocator's peak, otherwise :class:`PeakTensorMemory` (meta device / CPU)."""
    if device.type == "cuda":  # allocator peak above what was allocated before + the bytes the path holds
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in _held_tensors(held)}
        return int(torch.cuda.max_memory_allocated(device) - before + sum(storages.values()))
    mode = PeakTensorMemory()
    for t in _held_tensors(held):
        mode.hold(t)
    with mode:
        fn()
    return int(mode.peak)


def time_median(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int) -> Tuple[float, List[float]]:
    """Median wall time (s) of ``reps`` calls after ``warmup`` calls."""
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(max(1, reps)):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times
