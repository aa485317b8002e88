"""MAT: Mixed-strategy Adversarial Training (Zhong et al.; Algorithm 2 of the paper).

One training step per batch, as docs/design.md ("The MAT step") specifies it; hyperparameters are the flags of
the authors' code (Charles-Zhong/MAT ``MAT.py``, ``utils/function.py``), fields of
:class:`mat.spec.methods.MATArgs`.
With e = the word embeddings of the batch (B, T, H) and θ_t the parameters:

1. δ phase (eq. 11 for δ). δ ~ init, δ̄ = δ; f(θ_t, e) once, without gradients; K_δ times:
   g = ∇_δ λ·ℓ_s(f(θ_t, e), f(θ_t, e+δ)) (∂/∂δ only: no parameter gradient is computed);
   δ ← δ + γ_δ·g/‖g‖∞ (``normalized``, per example) or γ_δ·g (``raw``), + sqrt(2γ_δ)·ε_δ·ξ, ε_δ = ratio·γ_δ;
   then (clip last) δ ← δ·min(1, adv_max_norm/‖δ‖∞) per example; δ̄ ← β_s·δ̄ + (1−β_s)·δ.
2. θ phase (eq. 11/12 for θ). θ̂ = copy of θ_t, θ̄ = θ_t; K_θ times:
   loss = L(θ) + λ·ℓ_s(f(θ, e), f(θ, e+δ̄)) (clean and perturbed forward as one 2B batch, gradients through
   both and through the embedding lookup); optimizer step (the sampler's preconditioner) at the scheduled lr;
   θ ← θ + sqrt(2·lr)·ε_θ·ξ, ε_θ = ratio·γ_θ (γ_θ the base learning rate); θ̄ ← β_s·θ̄ + (1−β_s)·θ.
3. Mix: θ_{t+1} = β_p·θ̂ + (1−β_p)·θ̄ (parameters only, not buffers); the scheduler steps once.

Where this deliberately differs from the authors' code (docs/design.md, each with a test in
``tests/test_mat_step.py``): θ̂ is a real copy (their ``state_dict()`` aliased the live weights); θ̄ starts
from θ_t as Algorithm 2 line 7 says (their ``mean_theta = model.state_dict()`` aliased the weights too, so
their θ̄ started after the first inner step); the clip comes after the noise (their δ exceeded
``adv_max_norm``); the δ phase computes ∂/∂δ only; the KL uses float32 ``log_softmax``; the averages cover
parameters only; the regression ℓ_s is a batch mean unless ``consistency_reduction`` is ``sum`` (the
authors'); δ lives on real tokens only (init and noise are
masked, padding stays 0, where theirs perturbed padding too) and the initial δ is clipped too, so
‖δ̄‖∞ ≤ adv_max_norm always holds; a step the fp16 GradScaler skips adds no noise and no θ̄ update.
The settings around the step are the authors' (:func:`mat.spec.methods.mat_training`): no gradient
clipping, their optimizer set-up (AdamW's decay 0.01 on every parameter; none for SGD and RMSprop), γ_θ 1e-5;
``tests/test_fidelity.py`` checks K_δ = 3, K_θ = 4 steps against a transcription of the authors' loop in
float64 and measures what each of these departures changes (docs/methods.md).

Efficiency: the trainable parameters are moved into one contiguous buffer at construction
(:class:`mat.methods.flat.FlatParams`; the ``Parameter`` objects stay), and θ̂, θ̄ and the gradients get
buffers of the same layout, allocated once and overwritten in place: θ̂ and θ̄ are the only extra copies
of the parameters. A copy, the EMA and the mix are then one kernel each over all parameters, and once
the optimizer has stepped the gradient buffer holds the Langevin noise (one ``normal_``, one ``add_`` per
parameter group) before it is zeroed for the next backward. Work for a zero noise, a zero β or a zero λ is
skipped.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

import torch
from torch import Tensor

from mat.losses import consistency_loss
from mat.methods.base import Inputs, Method, per_example_norm, register_method
from mat.methods.flat import FlatParams
from mat.methods.stats import StepStats, global_norm, independent_rng, replayed_rng, rng_state
from mat.optim import OPTIMIZER_CLASSES
from mat.spec.methods import MAT_SPEC, MATArgs

_GRAD_NORM_FLOOR = 1e-8  # the authors' clamp of ‖g‖∞ in update_delta
# + the step: dropout masks of the λ = 0 diagnostic forward, apart from training's
_DIAGNOSTIC_SEED = 0x5EED_D1A6


# ---------------------------------------------------------------------------------- δ, as pure functions


def init_delta(embeds: Tensor, mask: Tensor, kind: str, epsilon: float) -> Tensor:
    """Initial perturbation δ^(1) (B, T, H) on the real tokens (``mask`` (B, T)), padding 0.

    ``zero``: 0; ``rand``: ε·U[0, 1) (the authors' ``torch.rand(size) * epsilon``); ``randn``: ε·N(0, 1).
    """
    if kind == "zero" or epsilon == 0:
        return torch.zeros_like(embeds)
    if kind == "rand":
        delta = torch.rand_like(embeds)
    elif kind == "randn":
        delta = torch.randn_like(embeds)
    else:
        raise ValueError(f"unknown adv_init_type {kind!r}: use zero, rand or randn")
    return delta.mul_(epsilon).mul_(mask.unsqueeze(-1).to(delta.dtype))


@torch.no_grad()
def delta_ascent_(delta: Tensor, grad: Tensor, step: float, mode: str) -> Tensor:
    """δ ← δ + γ_δ·g/‖g‖∞ per example (``normalized``) or δ + γ_δ·g (``raw``), in place."""
    if mode == "normalized":
        grad = grad / per_example_norm(grad, "inf").clamp_min(_GRAD_NORM_FLOOR)
    elif mode != "raw":
        raise ValueError(f"unknown delta_update {mode!r}: use normalized or raw")
    return delta.add_(grad, alpha=step)


@torch.no_grad()
def langevin_noise_(x: Tensor, std: float, mask: Tensor | None = None) -> Tensor:
    """x ← x + std·ξ, ξ ~ N(0, I) (on the real tokens when ``mask`` (B, T) is given), in place."""
    if std > 0:
        noise = torch.randn_like(x)
        if mask is not None:
            noise.mul_(mask.unsqueeze(-1).to(noise.dtype))
        x.add_(noise, alpha=std)
    return x


NOISE_CHUNK = 1 << 20  # elements per independently seeded chunk of a large CPU noise buffer


def standard_normal_(buf: Tensor, chunk: int = NOISE_CHUNK, workers: int | None = None) -> Tensor:
    """Fill a flat buffer (N,) with N(0, 1) draws, in place; on CPU in parallel for large buffers.

    CPU ``normal_`` runs on one thread (22.7 M draws for MiniLM take ~0.09 s per θ step, whatever the thread
    count), so a buffer longer than ``chunk`` is split into chunks, each filled from its own generator
    seeded with ``s + i`` (chunk i), where ``s`` is one draw from torch's global generator; ``workers``
    threads (default: ``torch.get_num_threads()``) fill them. The values depend only on the global RNG
    state (so seeds, checkpoints and resumes reproduce them), not on the number of workers. A buffer of at
    most ``chunk`` elements, and every CUDA buffer, is filled by ``normal_()`` from the global generator
    exactly as before, so small models (the tests' tiny BERT) keep their noise stream.
    """
    n = buf.numel()
    if buf.device.type != "cpu" or n <= chunk:
        return buf.normal_()
    seed = int(torch.randint(0, 2**62, (1,)).item())
    parts = buf.split(chunk)

    def fill(i: int) -> None:
        gen = torch.Generator()
        gen.manual_seed(seed + i)
        parts[i].normal_(generator=gen)

    threads = max(1, workers if workers is not None else torch.get_num_threads())
    if threads == 1:
        for i in range(len(parts)):
            fill(i)
    else:
        with ThreadPoolExecutor(max_workers=min(threads, len(parts))) as pool:
            list(pool.map(fill, range(len(parts))))
    return buf


@torch.no_grad()
def clip_linf_(delta: Tensor, max_norm: float) -> Tensor:
    """Rescale each example whose ‖δ‖∞ exceeds ``max_norm`` onto it (the authors' rule), in place (0: no
    bound)."""
    if max_norm > 0:
        norm = per_example_norm(delta, "inf")
        delta.mul_((max_norm / norm.clamp_min(torch.finfo(norm.dtype).tiny)).clamp_(max=1.0))
        delta.clamp_(-max_norm, max_norm)  # the rescale may overshoot by an ulp: the bound holds exactly
    return delta


@torch.no_grad()
def ema_(average: Tensor | list[Tensor], new: Tensor | list[Tensor], beta: float) -> None:
    """average ← β·average + (1−β)·new, in place (a tensor, or lists with ``_foreach_lerp_``)."""
    if isinstance(average, Tensor):
        average.lerp_(new, 1.0 - beta)  # type: ignore[arg-type]
    else:
        torch._foreach_lerp_(average, new, 1.0 - beta)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- the method


@register_method(MAT_SPEC)
class MAT(Method[MATArgs]):
    """MAT step (see the module docstring); ``args`` is a :class:`mat.spec.methods.MATArgs`.

    ``step`` returns ``loss`` (mean task loss L over the θ steps), ``adv_loss`` (mean λ·ℓ_s(f(θ,e),
    f(θ,e+δ̄)) over the θ steps), ``delta_norm`` (mean over examples of ‖δ̄‖∞), ``delta_kl`` (ℓ_s of the
    last δ step, at θ_t: clean vs. perturbed under different dropout masks, 0 when no δ step runs), ``lr``,
    and on every 10th training step (its first optimizer step, :mod:`mat.methods.stats`) ``grad_norm``,
    ``update_norm`` (‖Δθ‖₂ of the optimizer step) and ``theta_noise_norm`` (‖Langevin noise‖₂, 0 without
    noise); and with ``diagnostics`` (one extra forward,
    the training's random stream untouched):

    * ``dropout_kl``: ℓ_s(f(θ_t,e), f(θ_t,e)) of two forwards that differ only in their dropout masks (the δ
      phase's clean forward and the first θ step's; with λ = 0 the clean forward is the extra one, on masks
      of its own);
    * ``delta_own_kl``: ℓ_s(f(θ_t,e), f(θ_t,e+δ̄)) under the *same* dropout masks (the extra forward replays
      the clean forward's generator state): what δ̄ itself does, 0 when δ̄ ≡ 0.

    Raises:
        TypeError: the optimizer is not the class ``args.sampler`` names.
        ValueError: ``args.sampling_step_theta`` disagrees with the optimizer's learning rate.
    """

    def __init__(self, model: Any, optimizer: Any, scheduler: Any, task: Any, args: Any, **kw: Any) -> None:
        super().__init__(model, optimizer, scheduler, task, args, **kw)
        expected = OPTIMIZER_CLASSES[args.sampler]
        if type(optimizer) is not expected:
            raise TypeError(
                f"MAT sampler {args.sampler!r} needs a {expected.__name__} optimizer, got "
                f"{type(optimizer).__name__} (build it with mat.optim.build_optimizer(model, "
                f"{args.sampler!r}, ...))"
            )
        self.gammas = [self._base_lr(g) for g in self.optimizer.param_groups]  # γ_θ per parameter group
        self.flat = FlatParams(self.params)  # θ in one contiguous buffer (per device/dtype)
        self._hat_buf, self.theta_hat = self.flat.like() if args.beta_p > 0 else ([], [])  # θ̂
        self._bar_buf, self.theta_bar = self.flat.like() if args.beta_s > 0 else ([], [])  # θ̄
        self._grad_buf, self.grads = self.flat.like()  # .grad storage, and the noise scratch
        sizes = [len(g["params"]) for g in self.optimizer.param_groups]
        index = [list(range(sum(sizes[:i]), sum(sizes[: i + 1]))) for i in range(len(sizes))]
        self._param_slices = [self.flat.segments(self.flat.views, self.flat.buffers, ix) for ix in index]
        self._noise_slices = [self.flat.segments(self.grads, self._grad_buf, ix) for ix in index]
        self.stats = StepStats(self.flat.buffers)  # update norms over the contiguous buffers (same value)
        self._dropout_ref: Tensor | None = None  # diagnostics: the δ phase's clean logits (B, C)

    def _base_lr(self, group: Mapping[str, Any]) -> float:
        base = float(group.get("initial_lr", group["lr"]))
        theta = self.args.sampling_step_theta
        if theta is not None and not math.isclose(theta, base, rel_tol=1e-6):
            raise ValueError(
                f"sampling_step_theta={theta} but the optimizer's learning rate is {base}: they are the same "
                "quantity (build the optimizer with lr=sampling_step_theta)"
            )
        return base

    # ------------------------------------------------------------------------------------------ step

    def step(self, batch: Mapping[str, Tensor]) -> dict[str, float]:
        inp = self.inputs(batch)
        self.flat.rebind()
        delta_bar, dstats = self.delta_phase(inp)
        lr = self.lr()
        loss, adv_loss = self.theta_phase(inp, delta_bar)
        self.mix()
        self.scheduler.step()
        return self.floats(loss=loss, adv_loss=adv_loss, lr=lr, **dstats, **self.step_stats())

    def consistency(self, a: Tensor, b: Tensor) -> Tensor:
        """ℓ_s (float32): symmetric KL (batch mean), or for regression the squared error summed or averaged
        over the batch as ``consistency_reduction`` says (the authors' ``sum``; the harness's default
        ``mean``)."""
        return consistency_loss(a, b, self.is_regression, self.args.consistency_reduction)

    # --------------------------------------------------------------------------------------- δ phase

    def delta_phase(self, inp: Inputs) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Sample δ (step 1); returns δ̄ (B, T, H) (None when λ = 0: δ̄ is then unused) and stats.

        Only ∂/∂δ is computed (``torch.autograd.grad``): parameter ``.grad`` stays as it was.
        """
        a = self.args
        zero = torch.zeros((), device=self.device)
        stats: dict[str, Tensor] = {"delta_norm": zero, "delta_kl": zero}
        if a.lambda_s == 0 and not self.diagnostics:
            return None, stats
        with torch.no_grad():
            e = self.embeddings(inp.input_ids)  # e  (B, T, H), no graph: ∂/∂δ needs none through e
            masks = rng_state(self.device) if self.diagnostics else None  # the clean forward's dropout masks
            if a.lambda_s == 0:  # diagnostics only: a clean forward on masks of its own, the stream untouched
                seed = _DIAGNOSTIC_SEED + int(getattr(self.scheduler, "last_epoch", 0))
                with independent_rng(seed, self.device), self.counts.diagnostic():
                    clean = self.logits(e, inp.kwargs)
            else:
                clean = self.logits(e, inp.kwargs)  # f(θ_t, e), once per batch
            self._dropout_ref = clean if self.diagnostics else None  # vs the first θ step's clean forward
        if a.lambda_s == 0:
            stats["delta_own_kl"] = torch.zeros((), device=self.device)
            return None, stats
        delta = clip_linf_(init_delta(e, inp.mask, a.adv_init_type, a.adv_init_epsilon), a.adv_max_norm)
        delta_bar = delta.clone()  # δ̄ = δ^(1)
        noise_std = math.sqrt(2 * a.sampling_step_delta) * a.sampling_noise_ratio * a.sampling_step_delta
        delta.requires_grad_(True)
        for _ in range(a.sampling_times_delta):
            kl = self.consistency(clean, self.logits(e + delta, inp.kwargs))  # ℓ_s(f(θ_t,e), f(θ_t,e+δ))
            g = self.input_grad(a.lambda_s * kl, delta)  # ∇_δ λ·ℓ_s
            if self.scaler is not None:  # fp16: an overflowed ∂/∂δ must not poison δ (fp32/bf16: NaN shows)
                g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
            stats["delta_kl"] = kl.detach()
            delta_ascent_(delta, g, a.sampling_step_delta, a.delta_update)
            langevin_noise_(delta, noise_std, inp.mask)  # + sqrt(2γ_δ)·ε_δ·ξ
            clip_linf_(delta, a.adv_max_norm)  # clip last
            ema_(delta_bar, delta.detach(), a.beta_s)  # δ̄ ← β_s·δ̄ + (1−β_s)·δ
        stats["delta_norm"] = per_example_norm(delta_bar, "inf").mean()
        if masks is not None:  # f(θ_t, e+δ̄) on the clean forward's dropout masks: δ̄'s own effect
            with torch.no_grad(), replayed_rng(masks, self.device), self.counts.diagnostic():
                stats["delta_own_kl"] = self.consistency(clean, self.logits(e + delta_bar, inp.kwargs))
        return delta_bar, stats

    # --------------------------------------------------------------------------------------- θ phase

    def theta_phase(self, inp: Inputs, delta_bar: Tensor | None) -> tuple[Tensor, Tensor]:
        """Sample θ (step 2): K_θ optimizer steps with Langevin noise; returns mean L and mean λ·ℓ_s.

        An optimizer step the fp16 GradScaler skips (inf/NaN gradients) adds no noise and leaves θ̄ as it
        was: θ and θ̄ are unchanged by that iteration.
        """
        a = self.args
        with torch.no_grad():
            if self._hat_buf:
                torch._foreach_copy_(self._hat_buf, self.flat.buffers)  # θ̂ = θ_t (a copy, not an alias)
            if self._bar_buf:
                torch._foreach_copy_(self._bar_buf, self.flat.buffers)  # θ̄ = θ_t
        self._bind_grads()
        pair = inp.repeated(2) if delta_bar is not None else None
        total_task = torch.zeros((), device=self.device)
        total_adv = torch.zeros((), device=self.device)
        for i in range(a.sampling_times_theta):
            if i > 0:  # the buffer is zero at the start of a step (zeroed at the end of the last one, or new)
                self._zero_grads()
            e = self.embeddings(inp.input_ids)  # lookup redone at θ^(k): gradients reach the table
            if delta_bar is not None and pair is not None:
                both = self.logits(torch.cat([e, e + delta_bar]), pair)  # [f(θ,e); f(θ,e+δ̄)]  (2B, C)
                clean, adv = both.split(inp.batch_size)
                adv_loss = a.lambda_s * self.consistency(clean, adv)  # λ·ℓ_s(f(θ,e), f(θ,e+δ̄))
            else:
                clean = self.logits(e, inp.kwargs)
                adv_loss = torch.zeros((), device=self.device)
            loss = self.task_loss(clean, inp.labels)  # L(θ)
            if self._dropout_ref is not None:  # diagnostics: f(θ_t, e) twice, two dropout masks, δ = 0
                self.stats.add("dropout_kl", self.consistency(self._dropout_ref, clean.detach()))
                self._dropout_ref = None
            self.backward(loss + adv_loss)
            if self.optimizer_step():  # fp16: a step the GradScaler skipped (inf gradients) is no sample
                self._langevin_()  # θ ← θ + sqrt(2·lr)·ε_θ·ξ  (eq. 11/12)
                if self._bar_buf:
                    # θ̄ ← β_s·θ̄ + (1−β_s)·θ  (Alg. 2, line 10)
                    ema_(self._bar_buf, self.flat.buffers, a.beta_s)
            total_task += loss.detach()
            total_adv += adv_loss.detach()
        self._zero_grads()
        n = float(a.sampling_times_theta)
        return total_task / n, total_adv / n

    def _bind_grads(self) -> None:
        """Make each ``p.grad`` a view of the contiguous gradient buffer (again, if someone reset it)."""
        for p, g in zip(self.params, self.grads):
            if p.grad is None or p.grad.data_ptr() != g.data_ptr():
                p.grad = g

    def _zero_grads(self) -> None:
        for buf in self._grad_buf:
            buf.zero_()

    @torch.no_grad()
    def _langevin_(self) -> None:
        """θ ← θ + sqrt(2·lr)·ε_θ·ξ per parameter group, ε_θ = ratio·γ_θ; the gradient buffer is the
        scratch."""
        ratio = self.args.sampling_noise_ratio
        stds = [math.sqrt(2 * g["lr"]) * ratio * gamma
                for g, gamma in zip(self.optimizer.param_groups, self.gammas)]
        square = torch.zeros((), device=self.device)  # ‖Σ_g std_g·ξ_g‖², when this step is measured
        if any(s > 0 for s in stds):
            for buf in self._grad_buf:  # the gradients were consumed by the optimizer step
                standard_normal_(buf)
            for params, noise, std in zip(self._param_slices, self._noise_slices, stds):
                if std > 0 and noise:
                    torch._foreach_add_(params, noise, alpha=std)
                    if self.stats.measuring:
                        square = square + (std * global_norm(noise)) ** 2
        if self.stats.measuring:
            self.stats.add("theta_noise_norm", square.sqrt())

    # ------------------------------------------------------------------------------------------- mix

    @torch.no_grad()
    def mix(self) -> None:
        """θ_{t+1} = β_p·θ̂ + (1−β_p)·θ̄ over the parameters (step 3)."""
        beta_p = self.args.beta_p
        if self._bar_buf:  # θ̄ is its own EMA
            if self._hat_buf:
                for theta, bar, hat in zip(self.flat.buffers, self._bar_buf, self._hat_buf):
                    torch.lerp(bar, hat, beta_p, out=theta)  # θ̄ + β_p(θ̂ − θ̄), written into θ in one pass
            else:
                torch._foreach_copy_(self.flat.buffers, self._bar_buf)
        elif self._hat_buf:  # β_s = 0: θ̄ is the last iterate θ itself
            torch._foreach_lerp_(self.flat.buffers, self._hat_buf, beta_p)
