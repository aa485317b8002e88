"""Adding a method is its spec entry plus its ``Method`` subclass (docs/design.md, "Adding a method").

A toy method is registered inside the test, and everything that lists, configures or trains methods finds
it: ``--method`` and its own flags, the NNI keys, its training defaults, its optimizer, the precision guard,
and ``fit``, which trains it one step on a tiny BERT.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest
from torch import Tensor

from mat.cli import build_parser, parse_cli
from mat.methods import METHODS, get_method
from mat.methods.base import Method, register_method
from mat.provenance import resolve
from mat.spec.config import apply_overrides, searchable_keys
from mat.spec.fields import Checked, arg
from mat.spec.methods import (
    METHOD_ARGS,
    METHOD_SPECS,
    MethodSpec,
    TrainDefaults,
    register_spec,
    unregister_spec,
)
from mat.train import fit
from tests.helpers import make_tiny_setup


@dataclass(frozen=True)
class ToyArgs(Checked):
    """The toy method's one hyperparameter."""

    scale: float = arg(0.5, "Weight of the task loss.", rng=(0.0, 1.0))


TOY_TRAINING = TrainDefaults(learning_rate=1e-3, weight_decay=0.0, weight_decay_scope="all", max_grad_norm=0.0)


@pytest.fixture
def toy() -> Iterator[MethodSpec[ToyArgs]]:
    """The toy method, registered for the test only: its spec and its class."""
    spec = register_spec(MethodSpec("toy", ToyArgs, train_defaults=lambda a: TOY_TRAINING,
                                    perturbation_bound=lambda a: a.scale * 1e-2, optimizer=lambda a: "sgld"))
    try:

        @register_method(spec)
        class Toy(Method[ToyArgs]):
            """One plain step on ``scale`` times the task loss."""

            def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
                inp = self.inputs(batch)
                self.zero_grad()
                loss = self.task_loss(self.logits_from_ids(inp), inp.labels)  # L(θ)
                lr = self.update(self.args.scale * loss)
                return self.floats(loss=loss, lr=lr)

        yield spec
    finally:
        unregister_spec("toy")
        METHODS.pop("toy", None)


def test_the_toy_method_is_listed_configured_and_checked(toy: MethodSpec[ToyArgs]) -> None:
    assert "toy" in METHOD_SPECS and METHOD_ARGS["toy"] is ToyArgs and get_method(toy).name == "toy"
    cfg = parse_cli(["--method", "toy", "--scale", "0.25"])
    assert cfg.method == ToyArgs(scale=0.25)
    assert (cfg.train.learning_rate, cfg.train.weight_decay_scope, cfg.train.max_grad_norm) == (1e-3, "all", 0.0)
    assert "--scale" in build_parser("toy").format_help()
    assert "scale" in searchable_keys("toy")
    assert apply_overrides(cfg, {"scale": 1}).method == ToyArgs(scale=1.0)
    with pytest.raises(ValueError, match=r"scale=2.0 is out of range"):
        apply_overrides(cfg, {"scale": 2.0})
    with pytest.raises(SystemExit):
        parse_cli(["--method", "toys"])  # not registered: argparse's choices come from the registry


def test_the_toy_method_trains_one_step_through_fit(toy: MethodSpec[ToyArgs], tmp_path: Path,
                                                   one_torch_thread: Any) -> None:
    tiny = make_tiny_setup(tmp_path / "tiny", n_train=8, n_dev=4)
    cfg = parse_cli(["--method", "toy", "--task", "sst2", "--model", str(tiny["model"]), "--data_dir",
                     str(tiny["data"]), "--device", "cpu", "--max_steps", "1", "--batch_size", "4",
                     "--output_dir", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache")])
    rec = fit(resolve(cfg), show_progress=False)
    assert (rec.status, rec.method, rec.train_steps) == ("SUCCEEDED", "toy", 1)
    assert rec.params["scale"] == 0.5 and rec.params["learning_rate"] == 1e-3
    assert rec.cost is not None and rec.cost["passes"] == {"forward": 1.0, "backward": 1.0}  # the toy's one step
    assert rec.precision is not None and rec.precision["used"] == "fp32"
    assert [e.step for e in rec.evals] == [1] and rec.best is not None
    assert dataclasses.asdict(cfg.method) == {"scale": 0.5}
