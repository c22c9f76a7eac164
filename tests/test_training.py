"""The shared training loop: it trains, is reproducible, reports time and memory, refuses bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from beyondbert.training import (PeakMemory, SentenceClassifier, accuracy, fit, shuffled_batches,
                                 train_classifier)


def regression_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.1
    return x, y


def run(seed: int = 0):
    x, y = regression_problem()
    torch.manual_seed(123)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    report = fit(model, lambda m, idx: ((m(x[idx]).squeeze(-1) - y[idx]) ** 2).mean(),
                 shuffled_batches(64, 16, seed=seed), opt, epochs=5, seed=seed, progress=False)
    return model, report


def test_fit_trains_and_reports():
    model, report = run()
    assert len(report.losses) == 5 * 4
    assert report.losses[-1] < 0.1 * report.losses[0]
    assert report.seconds > 0 and report.seconds_per_epoch == pytest.approx(report.seconds / 5)
    assert report.peak_memory_mib >= 0 and "RSS" in report.memory_method
    assert not model.training  # left in eval mode


def test_fit_is_reproducible():
    assert run(0)[1].losses == run(0)[1].losses
    assert run(0)[1].losses != run(1)[1].losses


def test_shuffled_batches_cover_everything_once():
    batches = shuffled_batches(10, 4, seed=0)
    epoch0, epoch1 = batches(0), batches(1)
    assert [len(b) for b in epoch0] == [4, 4, 2]
    assert sorted(torch.cat(epoch0).tolist()) == list(range(10))
    assert torch.cat(epoch0).tolist() != torch.cat(epoch1).tolist()
    assert torch.equal(torch.cat(batches(0)), torch.cat(epoch0))


def test_peak_memory_sees_a_large_tensor():
    with PeakMemory() as mem:
        big = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB of float32, touched
        del big
    assert mem.peak_mib > 48, f"a 64 MiB tensor should show, got {mem.peak_mib:.1f} MiB"


def test_bad_input_is_refused():
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs"):
        fit(model, lambda m, b: m(b).sum(), [torch.zeros(1, 3)], opt, epochs=0)
    with pytest.raises(ValueError, match="empty"):
        fit(model, lambda m, b: m(b).sum(), [], opt, progress=False)
    with pytest.raises(ValueError, match="scalar"):
        fit(model, lambda m, b: m(b), [torch.zeros(2, 3)], opt, progress=False)
    with pytest.raises(TypeError, match="optimizer"):
        fit(model, lambda m, b: m(b).sum(), [torch.zeros(1, 3)], "sgd")


def test_sentence_classifier_and_accuracy():
    class Encoder(nn.Module):
        dim = 3

        def forward(self, features):
            return features["x"]

    torch.manual_seed(0)
    model = SentenceClassifier(Encoder(), n_classes=2)
    x = torch.randn(8, 3)
    logits = model({"x": x})
    assert logits.shape == (8, 2)
    labels = logits.argmax(-1)
    assert accuracy(model, {"x": x}, labels) == 1.0
    assert accuracy(model, {"x": x}, 1 - labels) == 0.0
    with pytest.raises(ValueError, match="n_classes"):
        SentenceClassifier(Encoder(), n_classes=1)
    with pytest.raises(ValueError, match="dim"):
        SentenceClassifier(nn.Identity(), n_classes=2)


def test_train_classifier_learns_a_separable_task():
    class Encoder(nn.Module):
        dim = 4

        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, features):
            return self.proj(features["x"])

    torch.manual_seed(0)
    x = torch.randn(80, 4)
    labels = (x[:, 0] > 0).long()
    model = SentenceClassifier(Encoder(), 2)
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    result = train_classifier(model, {"x": x}, labels, range(60), range(60, 80), epochs=30,
                              head_lr=0.02, progress=False)
    assert result["trainable"] == 4 * 2 + 2  # only the head
    assert result["accuracy"] >= 0.75, result["accuracy"]
    assert sum(result["losses"][-4:]) < 0.8 * sum(result["losses"][:4])
    assert len(result["losses"]) == 30 * 4 and result["seconds_per_epoch"] > 0


def test_fit_keeps_a_frozen_encoder_in_eval_mode():
    """Head-only training: the frozen part (with dropout) must compute its test-time output."""
    from beyondbert.training import train_mode

    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5))
    for p in encoder.parameters():
        p.requires_grad_(False)
    model = nn.Sequential(encoder, nn.Dropout(0.5), nn.Linear(8, 2))
    train_mode(model)
    assert not encoder.training and not encoder[1].training  # frozen: eval, dropout off
    assert model.training and model[1].training               # trained part: dropout on
    x = torch.randn(5, 4)
    assert torch.equal(encoder(x), encoder(x))
    train_mode(model, frozen_eval=False)
    assert encoder.training
    seen = []
    fit(model, lambda m, b: (seen.append(m[0].training), m(x).pow(2).mean())[1], [0],
        torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1),
        progress=False)
    assert seen == [False]


def test_lora_inside_a_frozen_encoder_keeps_training_mode():
    from beyondbert.lora import inject_lora
    from beyondbert.training import train_mode

    model = nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1)), nn.Linear(4, 2))
    inject_lora(model, ["0.0"], r=2)   # freezes everything but the LoRA matrices
    model[1].weight.requires_grad_(True)
    train_mode(model)
    assert model[0].training and model[0][1].training


def test_cross_validation_folds_cover_every_item_once():
    from beyondbert.training import cross_validation_folds

    folds = cross_validation_folds(23, 5, seed=1)
    tested = sorted(i for _, test in folds for i in test)
    assert tested == list(range(23))
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == 23
    assert folds == cross_validation_folds(23, 5, seed=1) != cross_validation_folds(23, 5, seed=2)
    with pytest.raises(ValueError):
        cross_validation_folds(3, 5)


def test_linear_probe_learns_a_separable_problem():
    from beyondbert.training import train_linear_probe

    torch.manual_seed(0)
    x = torch.randn(80, 6)
    y = (x[:, 0] > 0).long()
    head = train_linear_probe(x, y, list(range(60)), epochs=50, lr=0.05, seed=3)
    assert (head(x[60:]).argmax(-1) == y[60:]).float().mean() > 0.9
    again = train_linear_probe(x, y, list(range(60)), epochs=50, lr=0.05, seed=3)
    assert torch.equal(head.weight, again.weight)


def test_mcnemar_exact_p_values():
    from beyondbert.training import mcnemar

    same = mcnemar([True, False, True], [True, False, True])
    assert same == {"a_only": 0, "b_only": 0, "p_value": 1.0}
    # 10 discordant items, all won by A: p = 2 * 0.5**10
    r = mcnemar([True] * 10 + [False] * 5, [False] * 10 + [False] * 5)
    assert (r["a_only"], r["b_only"]) == (10, 0)
    assert r["p_value"] == pytest.approx(2 * 0.5 ** 10)
    # 1 vs 3 discordant: p = 2 * (1 + 4) / 16 = 0.625
    assert mcnemar([1, 0, 0, 0], [0, 1, 1, 1])["p_value"] == pytest.approx(0.625)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])
