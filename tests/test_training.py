"""The shared training loop: it trains, is reproducible, reports time and memory, refuses bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from beyondbert.training import PeakMemory, fit, shuffled_batches


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
