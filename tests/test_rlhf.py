"""beyondbert.rlhf: Bradley-Terry, DPO (closed form) and PPO's clipped objective; tiny training runs."""

import copy
import math

import pytest
import torch

from beyondbert.gpt import GPTConfig, TinyGPT
from beyondbert.rlhf import (RewardModel, annotator_score, bradley_terry_loss, completion_logprobs,
                             dpo, dpo_loss, ppo, ppo_clipped_objective, simulated_preferences,
                             train_reward_model)
from beyondbert.seeding import seed_everything


def test_bradley_terry_closed_form_and_stability():
    loss = bradley_terry_loss(torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert math.isclose(loss.item(), (math.log(1 + math.exp(-2)) + math.log(2)) / 2, rel_tol=1e-6)
    assert math.isclose(bradley_terry_loss(torch.tensor([-100.0]), torch.tensor([100.0])).item(), 200, rel_tol=1e-5)


def test_dpo_loss_hand_computed():
    # policy - reference: chosen +1, rejected -1 -> margin 2; beta 0.5 -> -log sigmoid(1)
    loss = dpo_loss(torch.tensor([-5.0]), torch.tensor([-7.0]), torch.tensor([-6.0]), torch.tensor([-6.0]), 0.5)
    assert math.isclose(loss.item(), math.log(1 + math.exp(-1)), rel_tol=1e-6)
    # the policy equal to the reference: loss log 2 whatever the log-probs
    x = torch.tensor([-3.0, -8.0])
    assert math.isclose(dpo_loss(x, x.flip(0), x, x.flip(0), 0.1).item(), math.log(2), rel_tol=1e-6)


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    pc, pr = torch.tensor([-5.0], requires_grad=True), torch.tensor([-5.0], requires_grad=True)
    dpo_loss(pc, pr, torch.tensor([-5.0]), torch.tensor([-5.0]), 0.1).backward()
    assert pc.grad.item() < 0 < pr.grad.item()  # descent raises log pi(chosen)


def test_ppo_objective_clips_only_in_the_favoured_direction():
    old = torch.zeros(4)
    new = torch.tensor([math.log(2), math.log(2), math.log(0.5), math.log(0.5)])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    assert math.isclose(ppo_clipped_objective(new, old, adv, 0.2).item(), (1.2 - 2 + 0.5 - 0.8) / 4, rel_tol=1e-6)
    assert math.isclose(ppo_clipped_objective(old, old, adv, 0.2).item(), 0.0, abs_tol=1e-7)


def test_mismatched_pairs_are_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="same shape"):
        dpo_loss(torch.zeros(3), torch.zeros(2), torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3), beta=0)
    with pytest.raises(ValueError, match="share one shape"):
        ppo_clipped_objective(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        bradley_terry_loss([1.0], torch.zeros(1))


def test_annotator_and_preferences():
    assert annotator_score("a b c") == 2 / 5
    a, b = torch.tensor([0.3, 0.1, 0.2]), torch.tensor([0.1, 0.3, 0.2])
    prefs = torch.stack([simulated_preferences(a, b, torch.Generator().manual_seed(s)) for s in range(200)]).float().mean(0)
    assert prefs[0] > 0.99 and prefs[1] < 0.01 and 0.35 < prefs[2] < 0.65


@pytest.fixture
def tiny():
    seed_everything(0)
    return TinyGPT(GPTConfig(vocab_size=6, context=12, dim=16, n_layers=1, n_heads=2)).eval()


def test_reward_model_learns_the_preference(tiny):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 6, (200, 8), generator=g)
    score = (ids[:, 2:] == 0).float().mean(1)  # prefers token 0 in the completion
    a, b = ids[:100], ids[100:]
    pref = score[:100] > score[100:]
    chosen, rejected = torch.where(pref[:, None], a, b), torch.where(pref[:, None], b, a)
    rm = RewardModel(tiny)
    train_reward_model(rm, chosen, rejected, 2, steps=80, batch=32, lr=3e-3)
    with torch.no_grad():
        acc = (rm(chosen, 2) >= rm(rejected, 2)).float().mean().item()
    assert acc > 0.8


def test_ppo_and_dpo_move_the_policy_toward_the_reward(tiny):
    prompts = torch.randint(0, 6, (32, 2), generator=torch.Generator().manual_seed(1))

    def reward(ids):
        return (ids[:, 2:] == 0).float().mean(1)

    policy = copy.deepcopy(tiny)
    log = ppo(policy, tiny, reward, prompts, 6, iterations=12, batch=32, kl_coef=0.01, lr=3e-3)
    assert log["reward"][-1] > log["reward"][0] + 0.1
    chosen = torch.cat([prompts, torch.zeros(32, 6, dtype=torch.long)], 1)
    rejected = torch.cat([prompts, torch.ones(32, 6, dtype=torch.long)], 1)
    policy = copy.deepcopy(tiny)
    before = completion_logprobs(policy, chosen, 2).sum().item()
    losses = dpo(policy, tiny, chosen, rejected, 2, beta=0.5, steps=20, batch=16, lr=3e-3)
    assert losses[-1] < losses[0]
    with torch.no_grad():
        assert completion_logprobs(policy, chosen, 2).sum().item() > before


def test_word_score_rewards_real_short_words_and_penalises_repeats():
    from beyondbert.rlhf import WordScore, corpus_vocabulary

    vocab = corpus_vocabulary("The fire was near the town. The fire, the town; extraordinarily extraordinarily", 2)
    assert vocab == {"the", "fire", "town", "extraordinarily"}
    gold = WordScore(vocab, max_len=7)
    assert gold("the fire") == 7 / 8
    assert gold("the the the the") == (3 - 9) / 15  # a repeat costs its characters: degenerate text cannot game it
    assert gold("    ") == 0.0 and gold("xq zzv") == 0.0
    assert gold("extraordinarily") == 0.0  # a long word earns nothing
    with pytest.raises(ValueError, match="vocabulary"):
        WordScore(set())


def test_simulated_ranking_is_bradley_terry_pairwise():
    from beyondbert.rlhf import ranking_pairs, simulated_ranking

    scores = torch.tensor([[0.3, 0.2, 0.25, 0.0]]).expand(20000, 4)
    order = simulated_ranking(scores, torch.Generator().manual_seed(0), noise=0.05)
    assert order.shape == (20000, 4) and torch.equal(order.sort(1).values, torch.arange(4).expand(20000, 4))
    a_before_b = ((order == 0).float().argmax(1) < (order == 1).float().argmax(1)).float().mean().item()
    assert abs(a_before_b - torch.sigmoid(torch.tensor(0.1 / 0.05)).item()) < 0.015
    win, lose = ranking_pairs(torch.tensor([[2, 0, 3, 1]]))
    assert win.shape == lose.shape == (1, 6)
    assert set(zip(win[0].tolist(), lose[0].tolist())) == {(2, 0), (2, 3), (2, 1), (0, 3), (0, 1), (3, 1)}


def test_ppo_logs_the_gold_score(tiny):
    prompts = torch.randint(0, 6, (16, 2), generator=torch.Generator().manual_seed(1))
    log = ppo(copy.deepcopy(tiny), tiny, lambda ids: (ids[:, 2:] == 0).float().mean(1), prompts, 4,
              iterations=3, batch=8, gold_fn=lambda ids: (ids[:, 2:] == 1).float().mean(1))
    assert len(log["gold"]) == len(log["reward"]) == len(log["kl"]) == 3
    assert all(0 <= g <= 1 for g in log["gold"])
