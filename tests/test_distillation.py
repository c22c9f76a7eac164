"""Distillation losses, students built from teacher layers, and mutual learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy
from torch import nn
from transformers import BertConfig, BertModel

from beyondbert.distillation import (distillation_loss, embedding_distillation_loss,
                                     every_other_layer, mutual_learning_losses,
                                     mutual_learning_step, soft_target_loss, soft_targets,
                                     student_from_teacher)

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64)


def logits(seed: int, shape=(6, 5)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_soft_target_loss_matches_scipy_kl():
    """T² · KL(p_teacher ‖ p_student) against scipy.stats.entropy, to 1e-10 (float64)."""
    s, t, temp = logits(0), logits(1), 3.0
    p_t = torch.softmax(t / temp, -1).numpy()
    p_s = torch.softmax(s / temp, -1).numpy()
    expected = temp ** 2 * np.mean([entropy(a, b) for a, b in zip(p_t, p_s)])
    assert abs(soft_target_loss(s, t, temp).item() - expected) < 1e-10
    assert abs(soft_target_loss(s, t, temp, scale_by_t2=False).item() - expected / 9) < 1e-10
    assert soft_target_loss(t, t, temp).abs().item() < 1e-12


def test_temperature_softens():
    z = torch.tensor([[4.0, 1.0, 0.0]])
    assert soft_targets(z, 5.0).max() < soft_targets(z, 1.0).max()
    assert torch.allclose(soft_targets(z, 1.0), torch.softmax(z, -1))


def test_t_squared_keeps_gradient_size_constant():
    """Without T² the gradient shrinks as 1/T²; with it, it stays about the same at high T."""
    def grad_norm(temp, scale):
        s = logits(0).clone().requires_grad_(True)
        soft_target_loss(s, logits(1), temp, scale_by_t2=scale).backward()
        return s.grad.norm().item()

    assert grad_norm(20.0, True) / grad_norm(10.0, True) == pytest.approx(1.0, rel=0.05)
    assert grad_norm(10.0, False) / grad_norm(20.0, False) == pytest.approx(4.0, rel=0.05)


def test_distillation_loss_mixes_soft_and_hard():
    s, t = logits(0), logits(1)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    ce = F.cross_entropy(s, y)
    soft = soft_target_loss(s, t, 2.0)
    assert torch.allclose(distillation_loss(s, t, y, temperature=2.0, alpha=0.0), ce)
    assert torch.allclose(distillation_loss(s, t, None, temperature=2.0, alpha=1.0), soft)
    assert torch.allclose(distillation_loss(s, t, y, 2.0, 0.3), 0.3 * soft + 0.7 * ce)


@pytest.mark.parametrize("temp", [0, -1.0])
def test_bad_temperature_is_refused(temp):
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(logits(0), logits(1), None, temperature=temp, alpha=1.0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="labels"):
        distillation_loss(logits(0), logits(1), None, alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(logits(0), logits(1), None, alpha=1.5)
    with pytest.raises(ValueError, match="same shape"):
        soft_target_loss(logits(0), logits(1, (6, 4)))
    with pytest.raises(ValueError, match="kind"):
        embedding_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), kind="l1")


def test_embedding_losses():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert embedding_distillation_loss(a, a).item() == 0
    assert embedding_distillation_loss(a, 2 * a, "cosine").abs().item() < 1e-7  # same direction
    assert embedding_distillation_loss(a, 2 * a, "mse").item() == pytest.approx(1.25)


def test_student_keeps_every_other_teacher_layer():
    torch.manual_seed(0)
    teacher = BertModel(BertConfig(**TINY)).eval()
    student = student_from_teacher(teacher, every_other_layer(4))
    assert every_other_layer(4) == [0, 2] and every_other_layer(5) == [0, 2, 4]
    assert len(student.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    assert len(teacher.encoder.layer) == 4 and teacher.config.num_hidden_layers == 4
    for s_layer, t_index in zip(student.encoder.layer, [0, 2]):
        t_state = teacher.encoder.layer[t_index].state_dict()
        for k, v in s_layer.state_dict().items():
            assert torch.equal(v, t_state[k])
    # a copy, not a view: training the student does not touch the teacher
    with torch.no_grad():
        student.encoder.layer[0].attention.self.query.weight.add_(1.0)
    assert not torch.equal(student.encoder.layer[0].attention.self.query.weight,
                           teacher.encoder.layer[0].attention.self.query.weight)
    ids = torch.randint(0, 100, (2, 5))
    assert student(input_ids=ids).last_hidden_state.shape == (2, 5, 32)
    custom = student_from_teacher(teacher, [1, 3])
    assert torch.equal(custom.encoder.layer[1].output.dense.weight,
                       teacher.encoder.layer[3].output.dense.weight)
    with pytest.raises(ValueError):
        student_from_teacher(teacher, [0, 4])
    with pytest.raises(ValueError):
        student_from_teacher(teacher, [2, 0])
    with pytest.raises(TypeError):
        student_from_teacher(nn.Linear(2, 2))


def test_mutual_learning_losses_and_step():
    a, b = logits(0), logits(1)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    la, lb = mutual_learning_losses(a, a.clone(), y)
    assert torch.allclose(la, F.cross_entropy(a, y))  # agreeing students: only the task loss
    la, lb = mutual_learning_losses(a, b, y)
    assert torch.allclose(la, F.cross_entropy(a, y) + soft_target_loss(a, b))
    assert torch.allclose(lb, F.cross_entropy(b, y) + soft_target_loss(b, a))
    # a few steps on a separable toy problem: both students learn
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    target = (x[:, 0] > 0).long()
    net_a, net_b = nn.Linear(4, 2), nn.Linear(4, 2)
    opt_a = torch.optim.SGD(net_a.parameters(), lr=0.5)
    opt_b = torch.optim.SGD(net_b.parameters(), lr=0.5)
    first = mutual_learning_step(net_a, net_b, opt_a, opt_b, x, target)
    for _ in range(30):
        last = mutual_learning_step(net_a, net_b, opt_a, opt_b, x, target)
    assert last[0] < first[0] and last[1] < first[1]


def test_distilbert_layers_keep_first_and_last():
    from beyondbert.distillation import distilbert_layers

    assert distilbert_layers(12, 6) == [0, 2, 4, 7, 9, 11]   # DistilBERT's extraction
    assert distilbert_layers(6, 3) == [0, 3, 5]
    assert distilbert_layers(6) == [0, 3, 5] and distilbert_layers(4) == [0, 3]
    assert distilbert_layers(5, 1) == [4] and distilbert_layers(3, 3) == [0, 1, 2]
    with pytest.raises(ValueError):
        distilbert_layers(4, 5)
    torch.manual_seed(0)
    teacher = BertModel(BertConfig(**TINY)).eval()
    student = student_from_teacher(teacher)            # default: first and last layer
    assert torch.equal(student.encoder.layer[1].output.dense.weight,
                       teacher.encoder.layer[3].output.dense.weight)


def test_fidelity_and_paired_bootstrap():
    from beyondbert.distillation import fidelity, paired_bootstrap_spearman

    torch.manual_seed(0)
    t = torch.randn(20, 8)
    same = fidelity(2 * t, t)
    assert same["cosine"] == pytest.approx(1.0) and same["pair_spearman"] == pytest.approx(1.0)
    noisy = fidelity(t + torch.randn(20, 8), t)
    assert noisy["cosine"] < 0.95 and noisy["pair_spearman"] < 0.95
    with pytest.raises(ValueError):
        fidelity(t, t[:, :4])
    rng = np.random.default_rng(0)
    human = rng.normal(size=200)
    good, bad = human + rng.normal(size=200) * 0.3, human + rng.normal(size=200) * 3
    r = paired_bootstrap_spearman(human, good, bad, n_boot=300, seed=1)
    assert r["rho_a"] > r["rho_b"] and r["low"] > 0 and r["low"] < r["diff"] < r["high"]
    assert r == paired_bootstrap_spearman(human, good, bad, n_boot=300, seed=1)
