"""beyondbert.icl: repeated random tokens, predictable positions, ICL and induction scores."""

import pytest
import torch

from beyondbert.icl import (icl_score, induction_score, phase_change_step, predictable,
                            repeated_random_tokens, train_induction)


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


def test_phase_change_step():
    assert phase_change_step([0, 10, 20], [3.0, 2.0, 0.5], 1.0) == 20
    assert phase_change_step([0, 10], [3.0, 2.0], 1.0) is None


def test_induction_score_reads_the_right_diagonal():
    seq, block = 8, 3
    att = torch.zeros(1, seq, seq)
    for t in range(seq - block, seq - 1):
        att[0, t, t - block + 1] = 1.0
    assert induction_score(att, torch.tensor([block])) == 1.0
    assert induction_score(torch.eye(seq)[None], torch.tensor([block])) == 0.0


def test_train_induction_runs_and_logs():
    log = train_induction(1, vocab=8, length=12, min_block=2, dim=16, steps=20, batch=8, eval_every=10)
    assert log["steps"] == [0, 10, 20] and len(log["train_losses"]) == 20
    assert abs(log["random"][0] - torch.log(torch.tensor(8.0)).item()) < 0.2
