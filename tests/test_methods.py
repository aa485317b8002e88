"""The six training methods: registry, optimizers, argument checks, and real learning on tiny models.

Every model is a tiny random transformer built in code (hidden 32, 2 layers): no downloads.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from mat.methods import METHODS, get_method
from mat.methods.mat import MAT
from mat.optim import build_optimizer
from mat.spec.methods import (
    METHOD_ARGS,
    METHOD_SPECS,
    FreeLBArgs,
    MATArgs,
    R3FArgs,
    SALTArgs,
    SMARTArgs,
    VanillaArgs,
    get_method_spec,
)
from mat.spec.tasks import get_task
from tests.helpers import tiny_bert_config

CLS = get_task("sst2")
REG = get_task("stsb")


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ------------------------------------------------------------------------------------------- helpers


def tiny_model(kind: str = "bert", num_labels: int = 2, seed: int = 0, **kw: Any) -> nn.Module:
    """A tiny random BERT, RoBERTa or DistilBERT for sequence classification."""
    from transformers import (
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    torch.manual_seed(seed)
    if kind == "bert":
        return BertForSequenceClassification(tiny_bert_config(num_labels=num_labels, **kw))
    if kind == "roberta":
        cfg = RobertaConfig(
            vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=130, type_vocab_size=1, pad_token_id=1, num_labels=num_labels, **kw,
        )
        return RobertaForSequenceClassification(cfg)
    if kind == "distilbert":
        cfg = DistilBertConfig(
            vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=128,
            num_labels=num_labels, **kw,
        )
        return DistilBertForSequenceClassification(cfg)
    raise ValueError(kind)


def make_batch(n: int = 8, length: int = 10, seed: int = 0, regression: bool = False, pad: int = 3) -> dict[str, torch.Tensor]:
    """A random right-padded batch as DataCollatorWithPadding yields it (the last ``pad`` tokens of odd rows are padding)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 99, (n, length), generator=g)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[1::2, length - pad :] = 0
    ids[mask == 0] = 0
    labels = torch.rand(n, generator=g) * 5 if regression else torch.randint(0, 2, (n,), generator=g)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": labels}


def separable_data(n: int = 32, length: int = 8, seed: int = 0, regression: bool = False) -> dict[str, torch.Tensor]:
    """Label 1: every token from ids 10-29; label 0: from ids 30-49 (regression target 4.0 / 1.0)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    pos = torch.randint(10, 30, (n, length), generator=g)
    neg = torch.randint(30, 50, (n, length), generator=g)
    ids = torch.where(labels[:, None] == 1, pos, neg)
    ids[:, 0] = 2  # [CLS]
    mask = torch.ones_like(ids)
    mask[::4, -2:] = 0
    ids[mask == 0] = 0
    y: torch.Tensor = 1.0 + 3.0 * labels.float() if regression else labels
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids), "labels": y}


def build(
    method: str,
    args: Any = None,
    model: nn.Module | None = None,
    task: Any = CLS,
    lr: float = 1e-3,
    total_steps: int = 100,
    warmup: int = 0,
    weight_decay: float = 0.0,
    **kw: Any,
) -> Any:
    """A method object on a tiny model with the optimizer and scheduler the training loop would build."""
    from transformers import get_scheduler

    model = model if model is not None else tiny_model(num_labels=task.num_labels)
    model.train()
    args = args if args is not None else METHOD_ARGS[method]()
    opt = build_optimizer(model, get_method_spec(method).optimizer(args), lr=lr, weight_decay=weight_decay)
    sched = get_scheduler("linear", opt, num_warmup_steps=warmup, num_training_steps=total_steps)
    return get_method(get_method_spec(method))(model, opt, sched, task, args, **kw)


FAST_ARGS: dict[str, Any] = {
    "vanilla": VanillaArgs(),
    "mat": MATArgs(sampling_times_delta=1, sampling_times_theta=2, sampling_step_delta=1e-3, lambda_s=1.0, beta_s=0.3, beta_p=0.3),
    "freelb": FreeLBArgs(adv_steps=2, adv_init_mag=1e-2, adv_lr=1e-2, adv_max_norm=0.0),
    "smart": SMARTArgs(adv_k=1, bregman_mu=1.0, bregman_beta=0.9),
    "r3f": R3FArgs(),
    "salt": SALTArgs(inner_steps=1, inner_lr=10.0, init_std=1e-2),
}


def accuracy(model: nn.Module, data: dict[str, torch.Tensor]) -> float:
    """Training-set accuracy of ``model`` on ``data`` (moved to the model's device)."""
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=data["input_ids"].to(device), attention_mask=data["attention_mask"].to(device)).logits
    model.train()
    return float((logits.argmax(-1).cpu() == data["labels"]).float().mean())


# ------------------------------------------------------------------------------------------ registry


def test_registry_names_and_classes() -> None:
    assert list(METHOD_SPECS) == ["vanilla", "mat", "freelb", "smart", "r3f", "salt"]
    assert set(METHODS) == set(METHOD_SPECS) == set(METHOD_ARGS)
    assert get_method(get_method_spec("MAT")) is MAT
    for name, cls in METHODS.items():
        assert cls.name == name and get_method(METHOD_SPECS[name]) is cls


def test_unknown_method_lists_valid_names() -> None:
    with pytest.raises(KeyError, match=r"Did you mean 'freelb'.*vanilla, mat, freelb, smart, r3f, salt"):
        get_method_spec("freelbb")


# -------------------------------------------------------------------------------------------- optim


@pytest.mark.parametrize(
    "name, cls",
    [("adamw", torch.optim.AdamW), ("adam", torch.optim.AdamW), ("sgld", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)],
)
def test_build_optimizer_classes(name: str, cls: type) -> None:
    opt = build_optimizer(tiny_model(), name, lr=3e-5, weight_decay=0.01, eps=1e-6)
    assert type(opt) is cls
    assert all(g["lr"] == 3e-5 for g in opt.param_groups)


def test_adamw_is_fused_and_steps_as_torchs_single_tensor_loop() -> None:
    """mat.optim's AdamW runs fused (one kernel); its updates equal torch's default loop to float rounding."""
    torch.manual_seed(0)
    model, reference = tiny_model(), tiny_model()
    reference.load_state_dict(model.state_dict())
    ours = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.01)
    theirs = torch.optim.AdamW([{"params": g["params"], "weight_decay": g["weight_decay"]} for g in
                                build_optimizer(reference, "adamw", lr=1e-3, weight_decay=0.01).param_groups], lr=1e-3, foreach=False)
    assert ours.defaults["fused"] is True and not theirs.defaults["fused"]
    for _ in range(5):
        grads = [torch.randn_like(p) * 1e-2 for p in model.parameters()]
        for m, opt in ((model, ours), (reference, theirs)):
            for p, g in zip(m.parameters(), grads):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    moved = max((a - b).abs().max().item() for a, b in zip(model.parameters(), tiny_model().parameters()))
    assert moved > 1e-3, "the weights moved: the comparison compares updates, not two untouched models"


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_build_optimizer_no_decay_on_bias_and_layernorm(kind: str) -> None:
    model = tiny_model(kind)
    opt = build_optimizer(model, "adamw", lr=1e-3, weight_decay=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    plain = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed and plain
    assert all(not n.endswith("bias") and "norm" not in n.lower() for n in decayed)
    assert any("norm" in n.lower() and n.endswith("weight") for n in plain)
    assert len(decayed) + len(plain) == len(list(model.parameters()))


def test_build_optimizer_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamx'.*adamw, sgld, rmsprop, adam"):
        build_optimizer(tiny_model(), "adamx", lr=1e-3)


def test_optimizer_per_method() -> None:
    assert get_method_spec("mat").optimizer(MATArgs(sampler="rmsprop")) == "rmsprop"
    assert get_method_spec("freelb").optimizer(FreeLBArgs()) == "adamw"
    assert get_method_spec("vanilla").optimizer(VanillaArgs()) == "adamw"


# ------------------------------------------------------------------------------------- args checks


@pytest.mark.parametrize(
    "cls, field, value, message",
    [
        (MATArgs, "sampling_times_delta", -1, r"^sampling_times_delta=-1 is out of range \[0, 10000\]"),
        (MATArgs, "sampling_times_theta", 0, r"^sampling_times_theta=0 is out of range \[1, 10000\]"),
        (MATArgs, "beta_s", 1.5, r"^beta_s=1.5 is out of range \[0.0, 1.0\]"),
        (MATArgs, "beta_p", -0.1, r"^beta_p=-0.1 is out of range"),
        (MATArgs, "sampling_step_delta", -1e-3, r"^sampling_step_delta=-0.001 is out of range"),
        (MATArgs, "sampling_noise_ratio", -0.1, r"^sampling_noise_ratio=-0.1 is out of range"),
        (MATArgs, "lambda_s", -1.0, r"^lambda_s=-1.0 is out of range"),
        (MATArgs, "sampler", "lbfgs", r"^sampler='lbfgs' is not allowed: choose one of \['sgld', 'rmsprop', 'adam'\]"),
        (MATArgs, "delta_update", "sign", r"^delta_update='sign' is not allowed"),
        (MATArgs, "adv_init_type", "uniform", r"^adv_init_type='uniform' is not allowed"),
        (FreeLBArgs, "adv_steps", 0, r"^adv_steps=0 is out of range \[1, 1000\]"),
        (FreeLBArgs, "adv_lr", -0.1, r"^adv_lr=-0.1 is out of range"),
        (FreeLBArgs, "norm_type", "l1", r"^norm_type='l1' is not allowed"),
        (SMARTArgs, "adv_k", -1, r"^adv_k=-1 is out of range \[0, 1000\]"),
        (SMARTArgs, "adv_step_size", -1.0, r"^adv_step_size=-1.0 is out of range"),
        (SMARTArgs, "bregman_beta", 1.2, r"^bregman_beta=1.2 is out of range \[0.0, 1.0\]"),
        (SMARTArgs, "adv_p_norm", "l3", r"^adv_p_norm='l3' is not allowed"),
        (R3FArgs, "eps", -1e-5, r"^eps=-1e-05 is out of range"),
        (R3FArgs, "noise_type", "cauchy", r"^noise_type='cauchy' is not allowed"),
        (SALTArgs, "inner_steps", 0, r"^inner_steps=0 is out of range \[1, 100\]"),
        (SALTArgs, "inner_lr", -1e-4, r"^inner_lr=-0.0001 is out of range"),
        (SALTArgs, "eps", -0.3, r"^eps=-0.3 is out of range"),
        (SALTArgs, "leader_delta", "middle", r"^leader_delta='middle' is not allowed"),
    ],
)
def test_method_args_out_of_range(cls: type, field: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**{field: value})


def test_mat_rejects_wrong_optimizer_and_disagreeing_lr() -> None:
    with pytest.raises(TypeError, match=r"sampler 'sgld' needs a SGD optimizer, got AdamW"):
        model = tiny_model()
        opt = build_optimizer(model, "adamw", lr=1e-3)
        MAT(model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), CLS, MATArgs(sampler="sgld"))
    with pytest.raises(ValueError, match=r"sampling_step_theta=0.01 but the optimizer's learning rate is 0.001"):
        build("mat", MATArgs(sampling_step_theta=1e-2), lr=1e-3)


# ----------------------------------------------------------------------------------- model support


class _NoEmbeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)

    def get_input_embeddings(self) -> nn.Module:
        raise NotImplementedError

    def forward(self, inputs_embeds: torch.Tensor) -> Any:  # pragma: no cover - never reached
        return inputs_embeds


class _NoneEmbeddings(_NoEmbeddings):
    def get_input_embeddings(self) -> Any:
        return None


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("cls", [_NoEmbeddings, _NoneEmbeddings])
def test_model_without_input_embeddings_is_named(method: str, cls: type) -> None:
    model = cls()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with pytest.raises(TypeError, match=f"{cls.__name__} does not expose its word embeddings"):
        get_method(get_method_spec(method))(model, opt, None, CLS, METHOD_ARGS[method]())


@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert"])
def test_mat_runs_on_bert_roberta_distilbert(kind: str) -> None:
    model = tiny_model(kind)
    before = [p.detach().clone() for p in model.parameters()]
    method = build("mat", FAST_ARGS["mat"], model=model, diagnostics=True)
    if kind == "distilbert":
        assert "token_type_ids" not in method.accepted
    for seed in range(2):
        stats = method.step(make_batch(seed=seed))
        assert set(stats) >= {"loss", "adv_loss", "delta_norm", "delta_kl", "dropout_kl", "lr"}
        assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())
        assert stats["adv_loss"] > 0 and 0 < stats["delta_norm"] <= 1e-5 * (1 + 1e-5)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


# ------------------------------------------------------------------------------------------ the step


@pytest.mark.parametrize("method", list(METHODS))
def test_one_scheduler_step_per_batch_and_float_stats(method: str) -> None:
    m = build(method, FAST_ARGS[method])
    for i in range(3):
        stats = m.step(make_batch(seed=i))
        assert m.scheduler.last_epoch == i + 1
        assert "loss" in stats and all(type(v) is float for v in stats.values())
    assert all(p.grad is None or not p.grad.any() for p in m.params)  # zero_grad'ed after the step


@pytest.mark.parametrize("method", list(METHODS))
def test_nan_is_not_swallowed(method: str) -> None:
    m = build(method, FAST_ARGS[method])
    with torch.no_grad():
        m.model.classifier.weight.fill_(float("nan"))
    assert math.isnan(m.step(make_batch())["loss"])


@pytest.mark.parametrize("method", ["vanilla", "freelb", "r3f", "salt"])
def test_gradient_clipping_bounds_the_sgd_update(method: str) -> None:
    # SGD without weight decay: theta' - theta = -lr * clipped grad, so ||update|| <= lr * max_grad_norm.
    model = tiny_model()
    from transformers import get_scheduler

    opt = build_optimizer(model, "sgld", lr=0.5)
    sched = get_scheduler("constant", opt)
    m = get_method(get_method_spec(method))(model, opt, sched, CLS, FAST_ARGS[method], max_grad_norm=1e-3)
    before = [p.detach().clone() for p in m.params]
    m.step(make_batch())
    update = torch.cat([(p.detach() - b).flatten() for p, b in zip(m.params, before)]).norm()
    assert 0 < update <= 0.5 * 1e-3 * (1 + 1e-4)


def test_bf16_autocast_runs() -> None:
    m = build("mat", FAST_ARGS["mat"], autocast_dtype=torch.bfloat16)
    stats = m.step(make_batch())
    assert math.isfinite(stats["loss"]) and m.scaler is None


def test_fp16_autocast_uses_a_grad_scaler_and_checkpoints_it() -> None:
    m = build("freelb", FAST_ARGS["freelb"], autocast_dtype=torch.float16)
    assert m.scaler is not None
    assert math.isfinite(m.step(make_batch())["loss"])
    assert "scaler" in m.state_dict()


def test_smart_teacher_is_an_ema_and_checkpoints() -> None:
    m = build("smart", SMARTArgs(bregman_beta=0.75))
    teacher0 = [t.clone() for t in m.teacher]
    assert all(torch.equal(t, p) for t, p in zip(teacher0, m.params))  # θ̃_0 = θ_0
    m.step(make_batch())
    for t0, t, p in zip(teacher0, m.teacher, m.params):
        assert_close(t, 0.75 * t0 + 0.25 * p.detach())
    state = m.state_dict()
    other = build("smart", SMARTArgs(bregman_beta=0.75), model=tiny_model(seed=1))
    other.load_state_dict(state)
    for a, b in zip(other.teacher, m.teacher):
        assert torch.equal(a, b)


def test_symmetric_kl_detached_is_mt_dnn_symkl() -> None:
    """Value: the symmetric KL; gradient: mt-dnn's SymKlCriterion, written out with F.kl_div as there."""
    import torch.nn.functional as F

    from mat.losses import symmetric_kl
    from mat.methods.smart import symmetric_kl_detached

    torch.manual_seed(0)
    a, b = torch.randn(6, 3, requires_grad=True), torch.randn(6, 3, requires_grad=True)
    ours = symmetric_kl_detached(a, b)
    ga, gb = torch.autograd.grad(ours, [a, b])
    mt_dnn = F.kl_div(F.log_softmax(a, -1), F.softmax(b.detach(), -1), reduction="batchmean") + F.kl_div(
        F.log_softmax(b, -1), F.softmax(a.detach(), -1), reduction="batchmean"
    )
    ha, hb = torch.autograd.grad(mt_dnn, [a, b])
    assert_close(ours, symmetric_kl(a, b))
    assert_close(ours, mt_dnn)
    assert_close(ga, ha) and assert_close(gb, hb)


def test_smart_regulariser_gradient_is_the_detached_form() -> None:
    """The parameter gradient of one SMART step (α = 2, no Bregman term, a fixed ν) equals L + α·SymKl by hand,
    and is about half what the symmetric KL through both sides of each term would give (the old 2x)."""
    import torch.nn.functional as F

    model = tiny_model()
    m = build("smart", SMARTArgs(adv_alpha=2.0, bregman_mu=0.0), model=model)
    m.model.eval()  # no dropout: the hand-written forwards see the same function
    batch = make_batch()
    nu = torch.randn(8, 10, 32, generator=torch.Generator().manual_seed(1)) * 1e-2
    m._adversarial_noise = lambda e, target, inp: nu  # type: ignore[method-assign]
    seen: list[list[torch.Tensor]] = []
    m.optimizer.register_step_pre_hook(lambda o, a, kw: seen.append([p.grad.clone() for p in m.params]))
    theta0 = [p.detach().clone() for p in m.params]
    m.step(batch)
    with torch.no_grad():  # back to θ_0: the step moved the parameters
        for p, p0 in zip(m.params, theta0):
            p.copy_(p0)
    inp = m.inputs(batch)

    def grads(full: bool) -> list[torch.Tensor]:
        m.zero_grad()
        e = m.embeddings(inp.input_ids)
        clean, adv = m.logits(e, inp.kwargs), m.logits(e + nu, inp.kwargs)
        c, d = (clean, adv) if full else (clean.detach(), adv.detach())
        sym = F.kl_div(F.log_softmax(clean, -1), F.softmax(d, -1), reduction="batchmean") + F.kl_div(
            F.log_softmax(adv, -1), F.softmax(c, -1), reduction="batchmean"
        )  # mt-dnn: adv_lc(logits, adv_logits), SymKlCriterion
        (F.cross_entropy(clean, inp.labels) + 2.0 * sym).backward()
        return [p.grad.clone() for p in m.params]

    for got, want in zip(seen[0], grads(full=False)):
        assert_close(got, want, rtol=1e-4, atol=1e-7)
    task_only = [g.clone() for g in grads(full=False)]
    m.zero_grad()
    e = m.embeddings(inp.input_ids)
    F.cross_entropy(m.logits(e, inp.kwargs), inp.labels).backward()
    ce = [p.grad.clone() for p in m.params]
    detached = torch.cat([(a - c).flatten() for a, c in zip(task_only, ce)]).norm()
    both = torch.cat([(a - c).flatten() for a, c in zip(grads(full=True), ce)]).norm()
    assert 1.8 < float(both / detached) < 2.2  # the regulariser's gradient through both sides: ~2x


def test_smart_and_r3f_with_zero_weights_are_vanilla() -> None:
    data = make_batch()
    ref = build("vanilla")
    torch.manual_seed(1)
    ref.step(data)
    for method, args in (("smart", SMARTArgs(adv_alpha=0.0, bregman_mu=0.0)), ("r3f", R3FArgs(r3f_lambda=0.0))):
        m = build(method, args)
        torch.manual_seed(1)
        m.step(data)
        for p, q in zip(m.params, ref.params):
            assert_close(p, q)


@pytest.mark.parametrize("steps", [1, 3])
def test_freelb_without_a_perturbation_is_vanilla(steps: int) -> None:
    """δ_0 = 0 and ascent step 0 keep δ at 0, so FreeLB's K-step average of ∇L(x + δ_k)/K is vanilla's ∇L(x);
    without dropout the two updates agree to rounding (Adam's first step, lr·g/(|g| + ε), magnifies the rounding
    of the K-term sum where |g| is near ε: 1e-6 is 0.1% of an update of this lr)."""
    data = make_batch()
    quiet = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    ref = build("vanilla", model=tiny_model(**quiet))
    ref.step(data)
    m = build("freelb", FreeLBArgs(adv_steps=steps, adv_init_mag=0.0, adv_lr=0.0, adv_max_norm=0.0),
              model=tiny_model(**quiet))
    m.step(data)
    untouched = build("vanilla", model=tiny_model(**quiet)).params
    moved = max(float((p - q).detach().abs().max()) for p, q in zip(ref.params, untouched))
    assert moved > 1e-4, "the reference step moved the weights"
    for p, q in zip(m.params, ref.params):
        assert_close(p, q, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ learning

LEARN_STEPS = {"vanilla": 40, "mat": 25, "freelb": 40, "smart": 40, "r3f": 40, "salt": 40}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_learns_a_separable_task(method: str) -> None:
    torch.manual_seed(0)
    data = separable_data()
    m = build(method, FAST_ARGS[method], lr=2e-3, total_steps=LEARN_STEPS[method], max_grad_norm=1.0)
    n = data["labels"].shape[0]
    for _ in range(LEARN_STEPS[method]):
        idx = torch.randperm(n)[:16]
        m.step({k: v[idx] for k, v in data.items()})
    assert accuracy(m.model, data) >= 0.95


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_regression(method: str) -> None:
    args = FAST_ARGS[method]
    m = build(method, args, model=tiny_model(num_labels=1), task=REG, lr=2e-3)
    data = separable_data(regression=True)
    losses = [m.step({k: v[:16] for k, v in data.items()})["loss"] for _ in range(6)]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]


def test_fast_args_are_valid_dataclasses() -> None:
    for name, args in FAST_ARGS.items():
        assert isinstance(args, METHOD_ARGS[name])
        assert dataclasses.is_dataclass(args)
