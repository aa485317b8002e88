"""Contiguous ("flat") buffers shaped like the parameters, so a whole-model update is one kernel.

MAT's θ̂, θ̄ and gradients and SMART's teacher live in such buffers (:class:`FlatParams`); an elementwise op
over ~100 parameter tensors otherwise costs ~100 kernels.
"""

from __future__ import annotations

import torch
from torch import Tensor


def flat_like(tensors: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
    """Zeroed contiguous buffers shaped like ``tensors``: one flat buffer per (device, dtype), and views.

    Returns:
        ``(buffers, views)``: ``views[i]`` has the shape, dtype and device of ``tensors[i]`` and lives in
        one of ``buffers``, so a whole-buffer op (``zero_``, ``normal_``, ``lerp_``) is one kernel.
    """
    by_key: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(tensors):
        by_key.setdefault((t.device, t.dtype), []).append(i)
    buffers: list[Tensor] = []
    views: list[Tensor | None] = [None] * len(tensors)
    for (device, dtype), idx in by_key.items():
        buf = torch.zeros(sum(tensors[i].numel() for i in idx), device=device, dtype=dtype)
        offset = 0
        for i in idx:
            n = tensors[i].numel()
            views[i] = buf[offset : offset + n].view_as(tensors[i])
            offset += n
        buffers.append(buf)
    return buffers, [v for v in views if v is not None]


class FlatParams:
    """The trainable parameters moved into contiguous buffers, so a whole-model update is one kernel.

    Each parameter's ``.data`` becomes a view of one flat buffer per (device, dtype) (the ``Parameter``
    objects, which the optimizer holds, stay the same); :meth:`like` allocates buffers of the same layout
    (θ̂, θ̄, a teacher, the gradients), so ``a.lerp_(b, w)`` over two layouts' buffers is the update of every
    parameter at once. Elementwise work over ~100 tensors otherwise costs ~100 kernels (each an OpenMP
    region on CPU, a launch on GPU). Saving and loading the model is unaffected (``load_state_dict`` copies
    in place; safetensors accepts non-overlapping views).

    Args:
        params: the parameters, in the optimizer's order (so each optimizer group is one contiguous slice).
    """

    def __init__(self, params: list[Tensor]) -> None:
        self.params = params
        self.buffers, self.views = flat_like(params)
        self.rebind()

    def rebind(self) -> None:
        """(Re)make every parameter a view of the buffers (after e.g. ``model.to()`` replaced storages)."""
        with torch.no_grad():
            for p, v in zip(self.params, self.views):
                if p.data_ptr() != v.data_ptr():
                    v.copy_(p.detach())
                    p.data = v

    def like(self) -> tuple[list[Tensor], list[Tensor]]:
        """Zeroed ``(buffers, views)`` with the parameters' layout."""
        return flat_like(self.params)

    def segments(self, views: list[Tensor], buffers: list[Tensor], index: list[int]) -> list[Tensor]:
        """The flat slices of ``buffers`` holding ``views[i]`` for i in ``index`` (contiguous runs merged)."""
        out: list[Tensor] = []
        run: tuple[int, int, int] | None = None  # (buffer, start, stop)
        for i in index:
            v = views[i]
            b = next(j for j, buf in enumerate(buffers) if buf.dtype == v.dtype and buf.device == v.device)
            start = (v.data_ptr() - buffers[b].data_ptr()) // v.element_size()
            if run is not None and run[0] == b and run[2] == start:
                run = (b, run[1], start + v.numel())
            else:
                if run is not None:
                    out.append(buffers[run[0]][run[1] : run[2]])
                run = (b, start, start + v.numel())
        if run is not None:
            out.append(buffers[run[0]][run[1] : run[2]])
        return out
