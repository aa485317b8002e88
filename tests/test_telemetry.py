"""Per-step telemetry (issue 14): every method's step statistics, MAT's diagnostics (δ's own KL under one
dropout mask, the dropout-only KL), the TensorBoard scalars of a run and their means in ``trial.json``.

Tiny random BERT and tiny local data, built in code; the TensorBoard files are read back with TensorBoard's
own event reader.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from mat.cli import parse_cli
from mat.methods import METHODS
from mat.provenance import resolve
from mat.spec.methods import MATArgs
from mat.spec.records import EvalResult, TrialRecord, read_record, write_record
from mat.telemetry import Telemetry
from mat.train import fit
from tests.helpers import make_tiny_setup
from tests.test_methods import FAST_ARGS, build, make_batch, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SAMPLED = {"update_norm", "grad_norm", "theta_noise_norm"}  # parameter-wide norms: every 10th training step

# δ ≡ 0: no δ steps, a zero initial δ (the dropout_consistency rung)
NO_DELTA = MATArgs(sampling_times_delta=0, sampling_times_theta=2, adv_init_epsilon=0.0, lambda_s=1.0)
# a δ large enough to change the logits of the tiny model (the mat_visible_delta rung's geometry)
VISIBLE = MATArgs(sampling_times_delta=2, sampling_times_theta=2, lambda_s=1.0, adv_max_norm=1e-1,
                  adv_init_epsilon=1e-2, sampling_step_delta=1e-1)


def no_dropout_model() -> torch.nn.Module:
    return tiny_model(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout=0.0)


# --------------------------------------------------------------------------------------- step statistics


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_reports_gradient_and_update_norms(method: str) -> None:
    m = build(method, FAST_ARGS[method])
    stats = m.step(make_batch())
    assert {"loss", "lr", "grad_norm", "update_norm"} <= set(stats)  # the first step's update is measured
    assert all(type(v) is float and math.isfinite(v) for v in stats.values())
    assert stats["grad_norm"] > 0 and stats["update_norm"] > 0


def test_update_norm_is_the_size_of_the_optimizer_step_every_tenth_step() -> None:
    m = build("vanilla", lr=1e-3, max_grad_norm=1.0)
    before = [p.detach().clone() for p in m.params]
    stats = m.step(make_batch())
    moved = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.detach() - b) for p, b in zip(m.params, before)]))
    assert stats["update_norm"] == pytest.approx(float(moved), rel=1e-5)
    steps = [m.step(make_batch(seed=i)) for i in range(1, 21)]  # scheduler steps 1..20
    assert [i + 1 for i, s in enumerate(steps) if "update_norm" in s] == [10, 20]
    assert all("grad_norm" in s for s in steps), "clipping computes the norm: recorded at every step"
    k = build("mat", FAST_ARGS["mat"])  # K_θ = 2: the first optimizer step of the step is measured, once
    assert k.step(make_batch())["update_norm"] > 0 and k.stats.means() == {}


def test_grad_norm_is_the_norm_before_clipping() -> None:
    runs = []
    for clip in (0.0, 1e-3):  # a tiny clip: the step's gradients are rescaled, the reported norm is not
        m = build("vanilla", model=tiny_model(seed=3), max_grad_norm=clip)
        torch.manual_seed(0)
        runs.append(m.step(make_batch(seed=1))["grad_norm"])
    assert runs[0] == pytest.approx(runs[1], rel=1e-6) and runs[0] > 1e-3


def test_theta_noise_norm_matches_the_langevin_scale() -> None:
    lr, ratio = 1e-2, 0.5
    m = build("mat", MATArgs(sampling_times_delta=0, sampling_times_theta=2, lambda_s=0.0, sampling_noise_ratio=ratio), lr=lr)
    stats = m.step(make_batch())
    n = sum(p.numel() for p in m.params)
    expected = math.sqrt(2 * stats["lr"]) * ratio * lr * math.sqrt(n)  # ‖std·ξ‖ ≈ std·sqrt(N)
    assert stats["theta_noise_norm"] == pytest.approx(expected, rel=0.05)
    quiet = build("mat", dataclasses.replace(FAST_ARGS["mat"], sampling_noise_ratio=0.0)).step(make_batch())
    assert quiet["theta_noise_norm"] == 0.0


# ------------------------------------------------------------------------------------------- diagnostics


def test_delta_own_kl_is_zero_when_delta_is_zero() -> None:
    """δ ≡ 0 (K_δ = 0, zero initial δ): the replayed forward sees the clean forward's masks and input."""
    m = build("mat", NO_DELTA, diagnostics=True)
    for i in range(2):
        stats = m.step(make_batch(seed=i))
        assert stats["delta_own_kl"] == 0.0
        assert stats["dropout_kl"] > 0 and stats["adv_loss"] > 0  # dropout alone moves the logits


def test_delta_own_kl_sees_a_visible_delta_under_one_mask() -> None:
    m = build("mat", VISIBLE, diagnostics=True)
    stats = m.step(make_batch())
    assert stats["delta_own_kl"] > 0 and stats["delta_norm"] > 1e-2


@pytest.mark.parametrize("args", [VISIBLE, NO_DELTA, dataclasses.replace(NO_DELTA, lambda_s=0.0)], ids=["delta", "no_delta", "lambda0"])
def test_dropout_kl_is_zero_without_dropout(args: MATArgs) -> None:
    m = build("mat", args, model=no_dropout_model(), diagnostics=True)
    stats = m.step(make_batch())
    assert stats["dropout_kl"] < 1e-10
    if args.lambda_s == 0:
        assert stats["delta_own_kl"] == 0.0


def test_dropout_kl_with_lambda_zero_uses_masks_of_its_own() -> None:
    m = build("mat", dataclasses.replace(NO_DELTA, lambda_s=0.0), diagnostics=True)
    assert m.step(make_batch())["dropout_kl"] > 0


@pytest.mark.parametrize("args", [FAST_ARGS["mat"], dataclasses.replace(NO_DELTA, lambda_s=0.0)], ids=["lambda1", "lambda0"])
def test_diagnostics_leave_the_training_unchanged(args: MATArgs) -> None:
    """The extra forward replays or forks the random generators: losses and weights are the same bits."""
    runs = []
    for diagnostics in (False, True):
        m = build("mat", args, model=tiny_model(seed=0), diagnostics=diagnostics)
        torch.manual_seed(7)
        losses = [m.step(make_batch(seed=i))["loss"] for i in range(3)]
        runs.append((losses, [p.detach().clone() for p in m.params], torch.rand(3)))
    (l0, p0, r0), (l1, p1, r1) = runs
    assert l0 == l1 and all(torch.equal(a, b) for a, b in zip(p0, p1))
    assert torch.equal(r0, r1), "the global generator is where it would have been"


def test_diagnostics_cost_one_forward_counted_apart_from_training() -> None:
    for args in (FAST_ARGS["mat"], NO_DELTA, dataclasses.replace(NO_DELTA, lambda_s=0.0)):
        counts = []
        for diagnostics in (False, True):
            m = build("mat", args, diagnostics=diagnostics)
            m.step(make_batch())
            counts.append((dict(m.counts.passes), dict(m.counts.diagnostic_passes), m.counts.updates))
        assert counts[0][0] == counts[1][0], "training's passes are the same with and without --diagnostics"
        assert (counts[0][1], counts[1][1]) == ({"forward": 0.0, "backward": 0.0}, {"forward": 1.0, "backward": 0.0})
        assert counts[0][2] == counts[1][2] == args.sampling_times_theta, args


# ------------------------------------------------------------------------------- TensorBoard and the record


def test_record_keeps_telemetry_in_evals_only(tmp_path: Path) -> None:
    ev = EvalResult(step=4, epoch=1.0, metrics={"accuracy": 50.0}, score=50.0, telemetry={"loss": 0.5, "grad_norm": math.nan})
    plain = EvalResult(step=2, epoch=0.5, metrics={"accuracy": 40.0}, score=40.0)
    rec = TrialRecord(trial_id="t", method="mat", task="sst2", model="m", seed=1, params={}, evals=[plain, ev], best=ev, final=ev)
    write_record(rec, tmp_path)
    raw = json.loads((tmp_path / "trial.json").read_text())
    assert "telemetry" not in raw["evals"][0] and raw["evals"][1]["telemetry"] == {"loss": 0.5, "grad_norm": None}
    assert "telemetry" not in raw["best"] and "telemetry" not in raw["final"]
    back = read_record(tmp_path / "trial.json")
    assert back.evals[0].telemetry == {} and back.evals[1].telemetry["loss"] == 0.5
    assert math.isnan(back.evals[1].telemetry["grad_norm"])


def test_telemetry_interval_means(tmp_path: Path) -> None:
    t = Telemetry(tmp_path / "tb")
    t.add(1, {"loss": 1.0, "lr": 1e-3})
    t.add(2, {"loss": 3.0, "lr": 1e-3})
    assert t.interval() == {"loss": 2.0, "lr": 1e-3}
    t.add(3, {"loss": 5.0})
    assert t.interval() == {"loss": 5.0} and t.interval() == {}
    t.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tiny_setup(tmp_path_factory.mktemp("telemetry"), n_train=32, n_dev=16)


def _run(tiny: dict[str, Path], out: Path, method: str, *extra: str) -> Any:
    cfg = parse_cli(["--task", "sst2", "--model", str(tiny["model"]), "--data_dir", str(tiny["data"]), "--method", method,
                     "--epochs", "1", "--batch_size", "8", "--eval_times", "2", "--max_length", "32", "--device", "cpu",
                     "--output_dir", str(out), *extra])
    return fit(resolve(cfg), show_progress=False)


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.parametrize("method,extra", [
    ("mat", ("--diagnostics", "--sampling_times_delta", "1", "--sampling_times_theta", "2")),
    ("vanilla", ()),
], ids=["mat", "vanilla"])
def test_tensorboard_scalars_equal_the_records_interval_means(tiny: dict[str, Path], tmp_path: Path, method: str, extra: tuple[str, ...]) -> None:
    out = tmp_path / method
    record = _run(tiny, out, method, *extra)
    disk = read_record(out / "trial.json")
    assert [e.telemetry for e in disk.evals] == [e.telemetry for e in record.evals]
    scalars = _scalars(out / "tensorboard")
    train = {tag.removeprefix("train/"): v for tag, v in scalars.items() if tag.startswith("train/")}
    expected = {"loss", "lr", "grad_norm", "update_norm"} | ({"adv_loss", "delta_norm", "delta_kl", "theta_noise_norm",
                                                              "dropout_kl", "delta_own_kl"} if method == "mat" else set())
    assert set(train) == expected
    assert [s for s, _ in train["loss"]] == list(range(1, disk.train_steps + 1)), "one scalar per step"
    for name in (SAMPLED & expected) - ({"grad_norm"} if method == "vanilla" else set()):  # vanilla clips: free norm
        assert [s for s, _ in train[name]] == list(range(1, disk.train_steps + 1, 10)), name
    previous = 0
    for ev in disk.evals:
        for name, points in train.items():
            values = [v for s, v in points if previous < s <= ev.step]
            if not values:  # measured every 10th step only: none in this interval
                assert name in SAMPLED and name not in ev.telemetry
                continue
            assert ev.telemetry[name] == pytest.approx(sum(values) / len(values), rel=1e-5, abs=1e-12), (name, ev.step)
        previous = ev.step
    assert [v for _, v in scalars["dev/score"]] == pytest.approx([e.score for e in disk.evals], rel=1e-6)


def test_the_web_ui_tensorboard_path_links_to_the_trials_folder(tmp_path: Path) -> None:
    """NNI 3.0 (local) starts TensorBoard on <experiment>/trials/<id>/output/tensorboard, not on $NNI_OUTPUT_DIR."""
    from trials.nni_store import link_tensorboard_for_webui

    exp = tmp_path / "exp"
    (exp / "db").mkdir(parents=True)
    (exp / "db" / "nni.sqlite").write_bytes(b"")
    out = exp / "environments" / "local-env" / "trials" / "AbCdE"
    out.mkdir(parents=True)
    (exp / "trials" / "AbCdE" / "output" / "tensorboard").mkdir(parents=True)  # NNI's empty folder
    link = link_tensorboard_for_webui(out, "AbCdE", {"NNI_SYS_DIR": str(out)})
    assert link == exp / "trials" / "AbCdE" / "output" / "tensorboard" and link.resolve() == (out / "tensorboard").resolve()
    assert link_tensorboard_for_webui(out, "AbCdE", {"NNI_SYS_DIR": str(out)}) is None, "a resumed trial keeps the link"
    assert link_tensorboard_for_webui(out, "AbCdE", {}) is None, "standalone: nothing to do"


@pytest.mark.parametrize("method", list(METHODS))
def test_measuring_the_update_norm_changes_no_trained_number(method: str) -> None:
    """12 steps (two of them measured: the θ snapshot taken, subtracted, freed) against the same 12 steps with
    the measurement switched off: the trained parameters are bit-identical. So the telemetry, and any change to
    how it keeps its snapshot, never moves a study's numbers."""
    runs = []
    for measure in (True, False):
        m = build(method, FAST_ARGS[method], model=tiny_model(seed=0))
        if not measure:
            m.stats.before_update = lambda step: False  # type: ignore[method-assign]
        torch.manual_seed(1234)
        steps = [m.step(make_batch(seed=i)) for i in range(12)]
        assert sum("update_norm" in s for s in steps) == (2 if measure else 0)
        runs.append([p.detach().clone() for p in m.params])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
