"""A training step replayed from a CUDA graph: one launch a step instead of dozens.

A small autoencoder's step is dozens of tiny kernels, and the host cannot launch them
as fast as a GPU runs them, so on CUDA the step is captured once and replayed. The
captured step reads its batch through a fixed index buffer: a replay is one copy of the
step's indices plus one graph launch, with no host sync.

The graph changes nothing but speed. The first `warmup` full batches run eagerly (so the
optimizer state and the cuBLAS workspaces exist before capture), so does any batch of
another shape (the partial last batch), and the replays run the same kernels on the same
data in the same order as eager steps would. A step that cannot be captured falls back to
eager steps, with a warning, instead of failing the run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from aebench.errors import failure_reason

WARMUP_STEPS = 3


class StepRunner:
    """Run `step(indices)` for each batch: eagerly, or on CUDA from a captured graph.

    `step` must keep everything it writes (the loss accumulator included) in tensors that
    live as long as the runner, because a replay writes to the addresses captured.
    """

    def __init__(
        self,
        step: Callable[[torch.Tensor], None],
        full_shape: tuple[int, ...],
        device: torch.device,
        graph: bool = True,
        warmup: int = WARMUP_STEPS,
    ) -> None:
        self.step = step
        self.full_shape = torch.Size(full_shape)
        self.device = device
        self.use_graph = graph and device.type == "cuda"
        self.warmup = warmup
        self._warmed = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_idx: torch.Tensor | None = None
        self._side: torch.cuda.Stream | None = None
        self.fallback_reason: str | None = None

    @property
    def captured(self) -> bool:
        """Whether steps are being replayed from a graph (False before capture and after a fallback)."""
        return self._graph is not None

    def __call__(self, idx: torch.Tensor) -> None:
        if not self.use_graph or idx.shape != self.full_shape:
            self.step(idx)
        elif self._graph is not None:
            assert self._static_idx is not None
            self._static_idx.copy_(idx)
            self._graph.replay()
        elif self._warmed < self.warmup:
            self._warmed += 1
            side = self._side = self._side or torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self.step(idx)
            torch.cuda.current_stream(self.device).wait_stream(side)
        else:
            self._capture(idx)
            self(idx)

    def _capture(self, idx: torch.Tensor) -> None:
        static_idx = idx.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.step(static_idx)
        except RuntimeError as exc:  # an op that cannot be captured: stay eager, same results
            self.use_graph = False
            self.fallback_reason = failure_reason(exc)
            warnings.warn(f"CUDA graph capture failed, training eagerly: {self.fallback_reason}", stacklevel=2)
            return
        self._graph, self._static_idx = graph, static_idx
