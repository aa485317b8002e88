"""The memory each method holds between steps, in copies of its trainable parameters, counted on CPU.

Every live CPU tensor is found through the garbage collector (storages counted once: views and the flat
buffers MAT moves θ into are not counted twice) after two steps, against the same count before the method was
built. Between steps a method holds θ and AdamW's two moments (gradients are freed by ``zero_grad``); SMART adds
its Bregman teacher θ̃; MAT adds the flat gradient buffer it keeps and the two copies of the algorithm, θ̂ and θ̄.
The update-norm telemetry's θ snapshot lives only across one measured update (``mat.methods.stats.StepStats``).
``tests/test_gpu.py`` checks vanilla and MAT the same way in CUDA memory.
"""

from __future__ import annotations

import gc
import warnings

import pytest
import torch

from mat.methods import METHODS
from tests.test_methods import FAST_ARGS, build, make_batch, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COPIES = {"vanilla": 3, "freelb": 3, "r3f": 3, "salt": 3, "smart": 4, "mat": 6}


def live_cpu_bytes() -> int:
    """Bytes of the distinct storages behind every live CPU tensor the garbage collector can see."""
    gc.collect()
    storages: dict[int, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance() touches deprecated torch attributes of some objects
        for obj in gc.get_objects():
            if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
                storage = obj.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def test_every_method_is_in_the_table() -> None:
    assert set(COPIES) == set(METHODS)


@pytest.mark.parametrize("method", sorted(COPIES))
def test_parameter_copies_held_between_steps(method: str) -> None:
    model = tiny_model()
    before = live_cpu_bytes()  # θ (and the model's buffers) already live
    m = build(method, FAST_ARGS[method], model=model)
    one_copy = sum(p.numel() * p.element_size() for p in m.params)
    for seed in range(2):  # the first step's update is measured by the telemetry (its snapshot then freed)
        m.step(make_batch(seed=seed))
    copies = (live_cpu_bytes() - before + one_copy) / one_copy
    # the remainder over a whole number is the per-step scalars and MAT's δ buffers (a batch of embeddings)
    assert COPIES[method] <= copies < COPIES[method] + 0.01, f"{method} holds {copies:.4f} parameter copies"
