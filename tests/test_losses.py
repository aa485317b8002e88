"""mat.losses: pure tensor functions against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from mat.losses import consistency_loss, squared_error, symmetric_kl, task_loss


def test_symmetric_kl_is_zero_on_equal_logits() -> None:
    logits = torch.tensor([[0.3, -1.2, 2.0], [5.0, 5.0, -3.0]])
    assert_close(symmetric_kl(logits, logits.clone()), torch.tensor(0.0))
    # a constant shift of the logits is the same distribution
    assert_close(symmetric_kl(logits, logits + 7.0), torch.tensor(0.0), atol=1e-6, rtol=0)


def test_symmetric_kl_hand_value_and_batch_mean() -> None:
    # P = softmax([0, ln 3]) = (1/4, 3/4), Q = (1/2, 1/2):
    # KL(P||Q) + KL(Q||P) = sum (p - q)(ln p - ln q) = 1/4 ln 2 + 1/4 ln 1.5 = ln(3) / 4
    p = torch.tensor([[0.0, math.log(3.0)], [1.0, 2.0]])
    q = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    assert_close(symmetric_kl(p[:1], q[:1]), torch.tensor(math.log(3.0) / 4))
    assert_close(symmetric_kl(p, q), torch.tensor(math.log(3.0) / 8))  # mean with a zero row


def test_symmetric_kl_matches_two_kl_divs() -> None:
    g = torch.Generator().manual_seed(0)
    p, q = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    lp, lq = F.log_softmax(p, -1), F.log_softmax(q, -1)
    expected = F.kl_div(lq, lp, log_target=True, reduction="batchmean") + F.kl_div(lp, lq, log_target=True, reduction="batchmean")
    assert_close(symmetric_kl(p, q), expected)
    assert_close(symmetric_kl(p, q), symmetric_kl(q, p))  # symmetric


def test_symmetric_kl_finite_on_saturated_logits() -> None:
    # gap 200: the authors' softmax().log() underflows to log(0) = -inf; log_softmax stays finite.
    p = torch.tensor([[0.0, 200.0]])
    q = torch.tensor([[0.0, 0.0]])
    kl = torch.nn.KLDivLoss(reduction="batchmean")
    naive = kl(p.softmax(-1).log(), q.softmax(-1)) + kl(q.softmax(-1).log(), p.softmax(-1))
    assert not torch.isfinite(naive)
    assert_close(symmetric_kl(p, q), torch.tensor(100.0), rtol=1e-5, atol=1e-4)


def test_symmetric_kl_float32_and_gradients_to_both() -> None:
    p = torch.randn(3, 2, dtype=torch.bfloat16, requires_grad=True)
    q = torch.randn(3, 2, dtype=torch.bfloat16, requires_grad=True)
    loss = symmetric_kl(p, q)
    assert loss.dtype == torch.float32
    loss.backward()
    assert p.grad is not None and q.grad is not None
    assert p.grad.abs().sum() > 0 and q.grad.abs().sum() > 0


def test_symmetric_kl_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        symmetric_kl(torch.zeros(2, 3), torch.zeros(2, 2))


def test_consistency_loss_regression_is_batch_mean_squared_error() -> None:
    a = torch.tensor([[1.0], [3.0]])
    b = torch.tensor([[0.0], [1.0]])
    assert_close(consistency_loss(a, b, is_regression=True), torch.tensor(2.5))  # (1 + 4) / 2
    assert_close(squared_error(a, b), torch.tensor(2.5))
    # a batch mean: duplicating the batch leaves it unchanged (the authors' sum doubled it)
    assert_close(consistency_loss(a.repeat(2, 1), b.repeat(2, 1), is_regression=True), torch.tensor(2.5))


def test_consistency_loss_regression_summed_is_the_authors_mse_sum() -> None:
    """``reduction="sum"``: the authors' ``MSELoss(reduction="sum")`` over the (B, 1) logits, B times the mean."""
    a = torch.tensor([[1.0], [3.0], [-2.0]])
    b = torch.tensor([[0.0], [1.0], [0.5]])
    assert_close(consistency_loss(a, b, is_regression=True, reduction="sum"), torch.tensor(11.25))  # 1 + 4 + 6.25
    assert_close(squared_error(a, b, "sum"), torch.nn.MSELoss(reduction="sum")(a, b))
    assert_close(squared_error(a, b, "sum"), 3 * squared_error(a, b))
    with pytest.raises(ValueError, match="unknown reduction 'max'"):
        squared_error(a, b, "max")


def test_consistency_loss_classification_is_symmetric_kl() -> None:
    p, q = torch.randn(4, 3), torch.randn(4, 3)
    assert_close(consistency_loss(p, q, is_regression=False), symmetric_kl(p, q))
    assert_close(consistency_loss(p, q, is_regression=False, reduction="sum"), symmetric_kl(p, q))  # batch mean either way


def test_task_loss_values() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    expected = -(F.log_softmax(logits, -1)[0, 0] + F.log_softmax(logits, -1)[1, 1]) / 2
    assert_close(task_loss(logits, labels, is_regression=False), expected)
    reg = torch.tensor([[1.0], [2.0]])
    assert_close(task_loss(reg, torch.tensor([0.0, 4.0]), is_regression=True), torch.tensor(2.5))  # (1 + 4) / 2


@pytest.mark.parametrize("num_labels", [1, 3])
def test_task_loss_matches_hf_head_loss(num_labels: int) -> None:
    from transformers import BertForSequenceClassification

    from tests.helpers import tiny_bert_config

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=num_labels)).eval()
    ids = torch.randint(5, 99, (4, 6))
    labels = torch.rand(4) * 5 if num_labels == 1 else torch.randint(0, num_labels, (4,))
    out = model(input_ids=ids, labels=labels)
    assert_close(task_loss(out.logits, labels, is_regression=num_labels == 1), out.loss)
