"""beyondbert.icl: repeated random tokens, predictable positions, ICL and induction scores."""

import math

import pytest
import torch

from beyondbert.icl import (icl_score, induction_score, model_from_log, phase_change, predictable,
                            previous_token_score, repeated_random_tokens, token_losses,
                            train_induction)


def test_repeated_tokens_copy_the_block():
    ids, repeated, blocks = repeated_random_tokens(50, 24, 10, torch.Generator().manual_seed(0), 3)
    assert ids.shape == repeated.shape == (50, 24) and blocks.shape == (50,)
    for row, b in enumerate(blocks.tolist()):
        assert 3 <= b <= 12
        assert torch.equal(ids[row, 24 - b:], ids[row, 24 - 2 * b:24 - b])
        assert repeated[row].sum() == b and repeated[row, -b:].all()
    assert len(set(blocks.tolist())) > 3  # the distance varies


def test_predictable_skips_the_first_token_of_the_copy():
    repeated = torch.tensor([[False, False, True, True, True]])
    assert predictable(repeated).tolist() == [[False, False, True, True]]


def test_icl_score_and_errors():
    losses = torch.tensor([3.0, 3.0, 2.0, 0.5])
    assert icl_score(losses, 0, 3) == -2.5
    with pytest.raises(ValueError, match="early < late"):
        icl_score(losses, 3, 1)
    with pytest.raises(ValueError, match="block"):
        repeated_random_tokens(2, 10, 5, torch.Generator(), min_block=6)


STEPS = list(range(0, 2001, 10))


def test_phase_change_finds_a_sudden_drop():
    # plateau at 4.0 for 1000 steps, then a logistic fall to 0.2 (90% -> 10% in 2 * 20 * ln 9 = 88 steps)
    losses = [0.2 + 3.8 / (1 + math.exp((s - 1000) / 20)) for s in STEPS]
    found = phase_change(STEPS, losses)
    assert found.plateau == pytest.approx(4.0, abs=0.01) and found.final == pytest.approx(0.2, abs=0.01)
    assert 1000 <= found.step <= 1010 and 950 <= found.start <= 960 and 1040 <= found.end <= 1050
    assert 80 <= found.width <= 100 and found.sudden


def test_phase_change_calls_a_linear_decline_gradual():
    losses = [4.0 - 3.8 * s / 2000 for s in STEPS]
    found = phase_change(STEPS, losses)
    assert found.width > found.start / 2 and not found.sudden
    small = [4.0 - 0.5 / (1 + math.exp(-(s - 1000) / 20)) for s in STEPS]  # quick but only 0.5 of 4
    assert not phase_change(STEPS, small).sudden


def test_phase_change_without_a_drop_and_errors():
    assert phase_change(STEPS, [3.0] * len(STEPS)) is None
    assert phase_change(STEPS, [1.0 + s / 2000 for s in STEPS]) is None
    with pytest.raises(ValueError, match="same length"):
        phase_change([0, 10], [3.0])
    with pytest.raises(ValueError, match="window"):
        phase_change([0, 10], [3.0, 2.0], window=2)


def test_induction_score_reads_the_right_diagonal():
    seq, block = 8, 3
    att = torch.zeros(1, seq, seq)
    for t in range(seq - block, seq - 1):
        att[0, t, t - block + 1] = 1.0
    assert induction_score(att, torch.tensor([block])) == 1.0
    assert induction_score(torch.eye(seq)[None], torch.tensor([block])) == 0.0


def test_previous_token_score():
    seq = 6
    previous = torch.diag(torch.ones(seq - 1), -1)[None]
    assert previous_token_score(previous) == 1.0
    assert previous_token_score(torch.eye(seq)[None]) == 0.0
    with pytest.raises(ValueError, match="batch, seq, seq"):
        previous_token_score(torch.eye(seq))


def test_train_induction_runs_and_logs():
    threads = torch.get_num_threads()
    log = train_induction(1, vocab=8, length=12, min_block=2, max_block=5, dim=16, steps=20,
                          batch=8, eval_every=10, eval_batch=64, threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert log["steps"] == [0, 10, 20] and len(log["train_losses"]) == 20
    assert abs(log["random"][0] - math.log(8)) < 0.2
    assert log["config"]["n_heads"] == 1 and not log["config"]["mlp"]
    ids, _, _ = repeated_random_tokens(4, 12, 8, torch.Generator().manual_seed(0), 2, 5)
    model = model_from_log(log)
    assert not model.training and token_losses(model, ids).shape == (4, 11)
    with pytest.raises(ValueError, match="steps"):
        train_induction(1, steps=0)


def test_two_layers_learn_to_copy_and_one_layer_does_not():
    """A small version of the page's experiment: only the 2-layer model can use the repeat."""
    small = dict(vocab=32, length=16, min_block=3, max_block=6, dim=16, steps=1000, batch=64,
                 eval_every=50, eval_batch=256, seed=1)
    one, two = train_induction(1, **small), train_induction(2, **small)
    assert two["repeated"][-1] < 1.0 < 2.0 < one["repeated"][-1]
    assert two["icl"][-1] < -2.0 and -1.5 < one["icl"][-1]
    for log in (one, two):  # the random tokens stay unpredictable
        assert log["random"][-1] > math.log(32) - 0.3


def test_induction_mask_matches_the_definition():
    from beyondbert.icl import induction_mask

    blocks = torch.tensor([2, 5, 3])
    mask = induction_mask(blocks, 12)
    for row, block in enumerate(blocks.tolist()):
        expected = torch.zeros(12, 12, dtype=torch.bool)
        for t in range(12 - block, 11):
            expected[t, t - block + 1] = True
        assert torch.equal(mask[row], expected)


def test_half_width_and_halfway_step():
    from beyondbert.icl import halfway_step

    losses = [0.2 + 3.8 / (1 + math.exp((s - 1000) / 20)) for s in STEPS]
    found = phase_change(STEPS, losses)
    assert found.half_width == found.step - found.start and 0 < found.half_width < found.width
    rising = [1 / (1 + math.exp(-(s - 700) / 20)) for s in STEPS]
    assert 690 <= halfway_step(STEPS, rising) <= 710
    assert 990 <= halfway_step(STEPS, losses) <= 1010


def test_train_induction_logs_per_head_scores():
    log = train_induction(2, vocab=8, length=12, min_block=2, max_block=5, dim=16, n_heads=2,
                          steps=20, batch=8, eval_every=10, eval_batch=32)
    assert len(log["previous_token"]) == len(log["induction"]) == len(log["steps"]) == 3
    assert len(log["previous_token"][0]) == 2 and len(log["previous_token"][0][0]) == 2
    assert all(0 <= v <= 1 for per_step in log["induction"] for layer in per_step for v in layer)
