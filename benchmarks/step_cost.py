"""How close a MAT step comes to its pass-count lower bound, and what a SALT step costs next to it.

A MAT step at K_δ, K_θ cannot cost less than the passes it needs:

    lower bound = 1 clean forward (no grad, B)
                + K_δ × (forward + backward to the inputs only, B)
                + K_θ × (forward + backward, 2B: clean and perturbed as one batch)
                + K_θ × optimizer step

The bound is measured twice: as the sum of each pass kind timed on its own (``lower_bound_s``, the
formula above with per-kind medians) and as the very sequence of those passes run as one timed unit right
next to each MAT step (``lower_bound_sequence_s``). ``ratio`` = the median over rounds of MAT step / the
pass sequence of the same round: on a shared machine whose load drifts over a minute, the paired ratio is
the stable one (``ratio_from_kinds`` = MAT step / ``lower_bound_s`` is printed as well).
``extras_over_lower_bound`` times what a MAT step does besides its passes (δ updates, the θ̂/θ̄ copies,
noise, EMAs, mix) on their own. Kinds run round-robin after a warm-up round, the order reversed every
other round; medians over ``--repeats``. Also printed: one vanilla step and the peak RSS. The last line
printed is one JSON object.

SALT (``--salt_k`` unrolled steps, the release's other values) runs in the same rounds: ``salt_step`` and
``salt_first_order`` (the same step with each input gradient taken without ``create_graph``, so δ_K is a
constant of θ: the same forwards and first-order backwards, no double backward), so that salt / vanilla,
salt / mat and the double backward's share come from one run; each kind's process CPU seconds are kept beside
the wall seconds (CPU time hardly moves when other work shares the machine). ``passes`` are the registry's
``passes_per_step``; ``saved_mb`` is each step's peak of the activations autograd holds for its backward
(``torch.autograd.graph.saved_tensors_hooks``, parameters excluded, one untimed step each), and on CUDA
``peak_cuda_step_mb`` its peak allocated memory.

    python benchmarks/step_cost.py --model minilm --batch_size 16 --max_length 128 --k 10
    python benchmarks/step_cost.py --model minilm --batch_size 16 --max_length 64 --k 2 --salt_k 1 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mat.methods.mat import (  # noqa: E402
    MAT,  # noqa: E402
    clip_linf_,
    delta_ascent_,
    ema_,
    init_delta,
    langevin_noise_,
)
from mat.methods.salt import SALT  # noqa: E402
from mat.methods.vanilla import Vanilla  # noqa: E402
from mat.modeling import resolve_model  # noqa: E402
from mat.optim import build_optimizer  # noqa: E402
from mat.spec.methods import MAT_SPEC, SALT_SPEC, VANILLA_SPEC, MATArgs, SALTArgs, VanillaArgs  # noqa: E402
from mat.spec.tasks import get_task  # noqa: E402


def load_model(name: str) -> torch.nn.Module:
    """``bert-base-random``: a randomly initialised BERT-base (``BertConfig()`` defaults: 12 layers, hidden 768,
    110M parameters; the cost of a step does not depend on the weights, and no download is needed);
    anything else through :func:`mat.modeling.resolve_model` (``minilm``, a local folder or a Hub id)."""
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    if name == "bert-base-random":
        return BertForSequenceClassification(BertConfig(num_labels=2))
    return AutoModelForSequenceClassification.from_pretrained(resolve_model(name), num_labels=2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm", help="minilm, a local path, a hub id, or bert-base-random (random-init BERT-base, no download)")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--max_length", type=int, default=128, help="sequence length (every token real)")
    p.add_argument("--k", type=int, default=10, help="K_δ = K_θ = k")
    p.add_argument("--k_delta", type=int, default=None, help="override K_δ")
    p.add_argument("--k_theta", type=int, default=None, help="override K_θ")
    p.add_argument("--salt_k", type=int, default=1, help="SALT's unrolled steps K (the release's 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per kind (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per kind first")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="autocast dtype of every forward (losses stay float32); fp16 adds a GradScaler, as in training")
    p.add_argument("--sampler", default="adam", choices=("sgld", "rmsprop", "adam"))
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


class Bench:
    """The model, a batch of random tokens, a MAT and a vanilla method object, and the pass kinds."""

    def __init__(self, a: argparse.Namespace) -> None:
        from transformers import get_scheduler
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        torch.manual_seed(a.seed)
        self.device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else ("cpu" if a.device == "auto" else a.device))
        self.model = load_model(a.model).to(self.device)
        self.model.train()
        vocab = self.model.config.vocab_size
        b, t = a.batch_size, a.max_length
        self.batch = {
            "input_ids": torch.randint(min(1000, vocab - 1), vocab, (b, t), device=self.device),
            "attention_mask": torch.ones(b, t, dtype=torch.long, device=self.device),
            "token_type_ids": torch.zeros(b, t, dtype=torch.long, device=self.device),
            "labels": torch.randint(0, 2, (b,), device=self.device),
        }
        self.k_delta = a.k if a.k_delta is None else a.k_delta
        self.k_theta = a.k if a.k_theta is None else a.k_theta
        self.args = MATArgs(sampling_times_delta=self.k_delta, sampling_times_theta=self.k_theta, sampler=a.sampler)
        task = get_task("rte")
        opt = build_optimizer(self.model, a.sampler, lr=2e-5, weight_decay=0.01)
        amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.precision]
        self.mat = MAT(self.model, opt, get_scheduler("constant", opt), task, self.args, autocast_dtype=amp)
        vopt = build_optimizer(self.model, "adamw", lr=2e-5, weight_decay=0.01)
        self.vanilla = Vanilla(self.model, vopt, get_scheduler("constant", vopt), task, VanillaArgs(), autocast_dtype=amp)
        self.salt_args = SALTArgs(inner_steps=a.salt_k)
        sopt = build_optimizer(self.model, "adamw", lr=2e-5, weight_decay=0.01)
        sched = get_scheduler("constant", sopt)
        self.salt = SALT(self.model, sopt, sched, task, self.salt_args, autocast_dtype=amp)
        self.salt_fo = FirstOrderSALT(self.model, sopt, sched, task, self.salt_args, autocast_dtype=amp)
        self.inp = self.mat.inputs(self.batch)
        self.pair = self.inp.repeated(2)
        self.mat._bind_grads()  # the pass kinds use MAT's gradient buffer, as its step does

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    # ---- the pass kinds (each exactly as the MAT step runs it)

    def forward(self) -> None:
        with torch.no_grad():
            self.mat.logits(self.mat.embeddings(self.inp.input_ids), self.inp.kwargs)

    def forward_input_backward(self) -> None:
        with torch.no_grad():
            e = self.mat.embeddings(self.inp.input_ids)
        delta = torch.zeros_like(e, requires_grad=True)
        loss = self.mat.logits(e + delta, self.inp.kwargs).float().logsumexp(-1).mean()
        torch.autograd.grad(loss, [delta])

    def forward_backward_2b(self) -> None:
        self.mat._bind_grads()  # (vanilla's zero_grad sets them to None)
        self.mat._zero_grads()
        e = self.mat.embeddings(self.inp.input_ids)
        self.mat.logits(torch.cat([e, e]), self.pair).float().logsumexp(-1).mean().backward()

    def optimizer_step(self) -> None:
        self.mat._bind_grads()  # gradients in place (zeros after vanilla's zero_grad): a full AdamW step
        self.mat.optimizer.step()

    def mat_step(self) -> None:
        self.mat.step(self.batch)

    def passes(self) -> None:
        """The lower bound run as one sequence: exactly the passes of a MAT step, nothing else."""
        self.forward()
        for _ in range(self.k_delta):
            self.forward_input_backward()
        for _ in range(self.k_theta):
            self.forward_backward_2b()
            self.optimizer_step()

    @torch.no_grad()
    def extras(self) -> None:
        """Everything a MAT step does besides its passes: δ updates, copies, noise, EMAs, mix."""
        m, a = self.mat, self.args
        e = m.embeddings(self.inp.input_ids)
        delta = init_delta(e, self.inp.mask, a.adv_init_type, a.adv_init_epsilon)
        delta_bar = delta.clone()
        for _ in range(self.k_delta):
            delta_ascent_(delta, e, a.sampling_step_delta, a.delta_update)
            langevin_noise_(delta, 1e-6, self.inp.mask)
            clip_linf_(delta, a.adv_max_norm)
            ema_(delta_bar, delta, a.beta_s)
        torch._foreach_copy_(m._hat_buf, m.flat.buffers)
        torch._foreach_copy_(m._bar_buf, m.flat.buffers)
        for k in range(self.k_theta):
            if k > 0:
                m._zero_grads()
            m._langevin_()
            ema_(m._bar_buf, m.flat.buffers, a.beta_s)
        m._zero_grads()
        m.mix()

    def vanilla_step(self) -> None:
        self.vanilla.step(self.batch)

    def salt_step(self) -> None:
        self.salt.step(self.batch)

    def salt_first_order(self) -> None:
        self.salt_fo.step(self.batch)


class FirstOrderSALT(SALT):
    """SALT with each input gradient taken without ``create_graph``: δ_K is a constant of θ, so the step runs
    the same forwards and first-order backwards as SALT's, no double backward (what the second order costs)."""

    def unrolled_grad(self, loss: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        self.counts.passes["backward"] += 1.0
        (g,) = torch.autograd.grad(loss, [delta])
        return g


class SavedBytes:
    """Peak bytes of the tensors autograd saves for backward (``saved_tensors_hooks``), one count per storage,
    the parameters' storages left out: the activation memory a step holds at its largest."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.skip = {p.untyped_storage().data_ptr() for p in params}
        self.live: dict[int, list[int]] = {}  # storage pointer -> [saved references, bytes]
        self.now = self.peak = 0

    def pack(self, t: torch.Tensor) -> Any:
        key = t.untyped_storage().data_ptr()
        if key in self.skip or key == 0:
            return t
        entry = self.live.setdefault(key, [0, t.untyped_storage().nbytes()])
        if entry[0] == 0:
            self.now += entry[1]
            self.peak = max(self.peak, self.now)
        entry[0] += 1
        return _Saved(self, key, t)

    @staticmethod
    def unpack(saved: Any) -> torch.Tensor:
        return saved.t if isinstance(saved, _Saved) else saved

    def release(self, key: int) -> None:
        entry = self.live[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.now -= entry[1]
            del self.live[key]


class _Saved:
    """A saved tensor that tells its :class:`SavedBytes` when autograd drops it."""

    def __init__(self, meter: SavedBytes, key: int, t: torch.Tensor) -> None:
        self.meter, self.key, self.t = meter, key, t

    def __del__(self) -> None:
        self.meter.release(self.key)


def step_memory(bench: Bench, step: Callable[[], None]) -> dict[str, float]:
    """One untimed ``step``: its peak saved activations (MB) and, on CUDA, its peak allocated memory (MB)."""
    meter = SavedBytes(list(bench.model.parameters()))
    if bench.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        step()
    out = {"saved_mb": meter.peak / 2**20}
    if bench.device.type == "cuda":
        out["peak_cuda_step_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def measure(bench: Bench, kinds: dict[str, Callable[[], None]], repeats: int,
            warmup: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process CPU seconds per kind and round; kinds are run round-robin (warm-up rounds untimed),
    the order reversed every other round so that neither of two neighbours always runs first."""
    times: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(warmup + repeats):
        for name, fn in (list(kinds.items()) if r % 2 == 0 else list(kinds.items())[::-1]):
            bench.sync()
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            bench.sync()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
            print(f"  round {r} {name}: {time.perf_counter() - t0:.3f} s", file=sys.stderr, flush=True)
    return times, cpu


def lower_bound(t: dict[str, float], k_delta: int, k_theta: int) -> float:
    """1 clean forward + K_δ (forward + input backward) + K_θ (2B forward+backward + optimizer step)."""
    return t["forward"] + k_delta * t["forward_input_backward"] + k_theta * (t["forward_backward_2b"] + t["optimizer_step"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    a = parse_args(argv)
    bench = Bench(a)
    # the optimizer-step kind needs gradients in place
    bench.forward_backward_2b()
    kinds = {
        "forward": bench.forward,
        "forward_input_backward": bench.forward_input_backward,
        "forward_backward_2b": bench.forward_backward_2b,
        "optimizer_step": bench.optimizer_step,
        "vanilla_step": bench.vanilla_step,
        "extras": bench.extras,
        "passes": bench.passes,
        "mat_step": bench.mat_step,
        "salt_step": bench.salt_step,
        "salt_first_order": bench.salt_first_order,
    }
    rounds, cpu_rounds = measure(bench, kinds, a.repeats, a.warmup)
    t = {k: statistics.median(v) for k, v in rounds.items()}
    c = {k: statistics.median(v) for k, v in cpu_rounds.items()}
    steps = ("vanilla_step", "mat_step", "salt_step", "salt_first_order")
    memory = {name.removesuffix("_step"): step_memory(bench, kinds[name]) for name in steps}

    def per_round(num: str, den: str) -> dict[str, float]:
        """Medians over rounds of num / den in the same round, wall and CPU seconds."""
        return {clock: round(statistics.median(x / y for x, y in zip(by[num], by[den])), 3)
                for clock, by in (("wall", rounds), ("cpu", cpu_rounds))}

    lower = lower_bound(t, bench.k_delta, bench.k_theta)
    # paired: each MAT step against the pass sequence run right next to it (robust to the load drifting)
    paired = [m / p for m, p in zip(rounds["mat_step"], rounds["passes"])]
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result: dict[str, Any] = {
        "model": a.model,
        "device": str(bench.device),
        "threads": torch.get_num_threads(),
        "batch_size": a.batch_size,
        "max_length": a.max_length,
        "k_delta": bench.k_delta,
        "k_theta": bench.k_theta,
        "sampler": a.sampler,
        "precision": a.precision,
        "repeats": a.repeats,
        "seconds": {k: round(v, 4) for k, v in t.items()},
        "lower_bound_s": round(lower, 4),
        "lower_bound_sequence_s": round(t["passes"], 4),
        "mat_step_s": round(t["mat_step"], 4),
        "vanilla_step_s": round(t["vanilla_step"], 4),
        "mat_over_vanilla": round(t["mat_step"] / t["vanilla_step"], 2),
        "ratio": round(statistics.median(paired), 4),
        "ratio_per_round": [round(r, 4) for r in paired],
        "ratio_from_kinds": round(t["mat_step"] / lower, 4),
        "salt_k": a.salt_k,
        "cpu_seconds": {k: round(v, 4) for k, v in c.items()},
        "passes": {"vanilla": VANILLA_SPEC.passes_per_step(VanillaArgs()),
                   "mat": MAT_SPEC.passes_per_step(bench.args),
                   "salt": SALT_SPEC.passes_per_step(bench.salt_args)},
        "salt_over_vanilla": per_round("salt_step", "vanilla_step"),
        "salt_over_mat": per_round("salt_step", "mat_step"),
        "mat_over_vanilla_paired": per_round("mat_step", "vanilla_step"),
        "first_order_over_salt": per_round("salt_first_order", "salt_step"),
        "saved_mb": {k: round(v["saved_mb"], 1) for k, v in memory.items()},
        "extras_over_lower_bound": round(t["extras"] / lower, 4),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "peak_rss_mb": round(rss_kb / 1024, 1),
    }
    if bench.device.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["peak_cuda_step_mb"] = {k: round(v["peak_cuda_step_mb"], 1) for k, v in memory.items()}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
