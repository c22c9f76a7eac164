"""RLHF in miniature: preference pairs, a Bradley-Terry reward model, PPO with a KL penalty, DPO.

The pipeline of InstructGPT (Ouyang et al., 2022) on the course's tiny character-level GPT:

1. a policy (the pretrained LM) writes K completions of a prompt;
2. an annotator ranks them (here a *simulated* annotator, :func:`simulated_ranking`, whose hidden
   taste is a gold score such as :class:`WordScore`); a ranking of K gives C(K, 2) pairs;
3. a reward model learns to score texts so that ``sigmoid(r_chosen - r_rejected)`` is the
   probability of the annotator's choice (Bradley & Terry, 1952): a learned *proxy* of the gold
   score;
4. PPO (Schulman et al., 2017) raises the reward while a KL penalty keeps the policy near the
   pretrained reference model; DPO (Rafailov et al., 2023) skips steps 3-4 and trains the policy
   on the pairs directly.
"""

from __future__ import annotations

import copy
import itertools
import re

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_tensor
from .gpt import TinyGPT, corpus_vocabulary, generate  # noqa: F401  (corpus_vocabulary: re-exported)


# --------------------------------------------------------------------------- the annotator
_WORD = re.compile(r"[a-z]+")


def annotator_score(text: str) -> float:
    """A naive taste: spaces per character, in [0, 1]. Degenerate text games it ("a a a a")."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return text.count(" ") / max(1, len(text))


class WordScore:
    """The simulated annotator's hidden taste: *real, short, not repeated* words.

    Score of a text = (characters of its words, i.e. runs of letters in lower case, which occur in
    ``vocabulary`` and have at most ``max_len`` letters, at their first occurrence) minus (the
    characters of every repeat of a word already seen), divided by the length of the text: in
    [-1, 1]. Non-words, long words and spaces earn nothing and a repeat takes its characters away
    again, so degenerate text cannot game it: "to to to to" scores (2 - 6) / 11.
    """

    def __init__(self, vocabulary: frozenset[str] | set[str], max_len: int = 7) -> None:
        if not vocabulary:
            raise ValueError("vocabulary must hold at least one word")
        if not isinstance(max_len, int) or max_len < 1:
            raise ValueError(f"max_len must be a positive int, got {max_len!r}")
        self.vocabulary, self.max_len = frozenset(vocabulary), max_len

    def __call__(self, text: str) -> float:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        seen, credit = set(), 0
        for word in _WORD.findall(text.lower()):
            if word in seen:
                credit -= len(word)
            elif len(word) <= self.max_len and word in self.vocabulary:
                credit += len(word)
            seen.add(word)
        return credit / max(1, len(text))


def simulated_ranking(scores: torch.Tensor, generator: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    """The annotator ranks each prompt's K completions: ``scores (prompts, K)`` -> ``(prompts, K)``
    indices, best first.

    It ranks by ``score + noise * Gumbel`` noise, so any two completions come out in the order
    ``a`` before ``b`` with probability ``sigmoid((s_a - s_b) / noise)`` (a difference of two
    Gumbels is logistic): the Bradley-Terry model, as :func:`simulated_preferences`.
    """
    check_tensor(scores, "scores")
    if scores.dim() != 2 or scores.shape[1] < 2:
        raise ValueError(f"scores must be (prompts, K) with K >= 2, got {tuple(scores.shape)}")
    if not noise > 0:
        raise ValueError(f"noise must be > 0, got {noise!r}")
    uniform = torch.rand(scores.shape, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    gumbel = -torch.log(-torch.log(uniform))
    return (scores.double() + noise * gumbel).argsort(dim=1, descending=True)


def ranking_pairs(order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All C(K, 2) (preferred, other) pairs of each ranking ``order (prompts, K)`` (best first).

    Returns two ``(prompts, K * (K - 1) / 2)`` index tensors into the K completions of each prompt.
    """
    check_tensor(order, "order")
    if order.dim() != 2 or order.shape[1] < 2:
        raise ValueError(f"order must be (prompts, K) with K >= 2, got {tuple(order.shape)}")
    first, second = zip(*itertools.combinations(range(order.shape[1]), 2))
    return order[:, list(first)], order[:, list(second)]


def simulated_preferences(
    scores_a: torch.Tensor, scores_b: torch.Tensor, generator: torch.Generator, noise: float = 0.02
) -> torch.Tensor:
    """Which of two completions the annotator prefers: bool ``(pairs,)``, True = ``a``.

    The annotator is itself Bradley-Terry: ``P(a preferred) = sigmoid((s_a - s_b) / noise)``, so
    close calls are coin flips and clear differences are almost always judged right.
    """
    check_tensor(scores_a, "scores_a")
    check_tensor(scores_b, "scores_b")
    if scores_a.shape != scores_b.shape or scores_a.dim() != 1:
        raise ValueError(f"scores_a and scores_b must both be (pairs,), got "
                         f"{tuple(scores_a.shape)} and {tuple(scores_b.shape)}")
    p = torch.sigmoid((scores_a - scores_b) / noise)
    return torch.rand(p.shape, generator=generator) < p


# --------------------------------------------------------------------------- losses
def _check_pair(chosen: torch.Tensor, rejected: torch.Tensor, names: tuple[str, str]) -> None:
    check_tensor(chosen, names[0])
    check_tensor(rejected, names[1])
    if chosen.shape != rejected.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape (one entry per "
                         f"pair), got {tuple(chosen.shape)} and {tuple(rejected.shape)}")
    if chosen.dim() != 1 or chosen.shape[0] == 0:
        raise ValueError(f"{names[0]} must be a non-empty 1-D tensor (pairs,), got "
                         f"{tuple(chosen.shape)}")


def bradley_terry_loss(reward_chosen: torch.Tensor, reward_rejected: torch.Tensor) -> torch.Tensor:
    """Reward-model loss ``-mean log sigmoid(r_chosen - r_rejected)``; inputs ``(pairs,)``."""
    _check_pair(reward_chosen, reward_rejected, ("reward_chosen", "reward_rejected"))
    return -F.logsigmoid(reward_chosen - reward_rejected).mean()


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    reference_chosen: torch.Tensor,
    reference_rejected: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """DPO: ``-mean log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))`` (Rafailov et al., 2023).

    Each input ``(pairs,)`` is a completion's summed log-probability under the policy or the frozen
    reference model.
    """
    _check_pair(policy_chosen, policy_rejected, ("policy_chosen", "policy_rejected"))
    _check_pair(reference_chosen, reference_rejected, ("reference_chosen", "reference_rejected"))
    if policy_chosen.shape != reference_chosen.shape:
        raise ValueError(f"policy and reference log-probs must have the same shape, got "
                         f"{tuple(policy_chosen.shape)} and {tuple(reference_chosen.shape)}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(beta * margin).mean()


def ppo_clipped_objective(
    logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, clip: float = 0.2
) -> torch.Tensor:
    """PPO's clipped surrogate (to *maximise*): ``mean min(rho A, clip(rho, 1-eps, 1+eps) A)``.

    ``rho = exp(logp_new - logp_old)``; all inputs share one shape (e.g. ``(batch, tokens)``).
    Schulman et al. (2017), eq. 7.
    """
    for name, t in (("logp_new", logp_new), ("logp_old", logp_old), ("advantages", advantages)):
        check_tensor(t, name)
    if not (logp_new.shape == logp_old.shape == advantages.shape):
        raise ValueError(f"logp_new, logp_old and advantages must share one shape, got "
                         f"{tuple(logp_new.shape)}, {tuple(logp_old.shape)}, "
                         f"{tuple(advantages.shape)}")
    if not 0 < clip < 1:
        raise ValueError(f"clip must be in (0, 1), got {clip!r}")
    ratio = torch.exp(logp_new - logp_old)
    return torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()


# --------------------------------------------------------------------------- models
def completion_logprobs(model: TinyGPT, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """Log-probability of each completion token ``(batch, seq - prompt_len)`` of ids ``(batch, seq)``."""
    if not 1 <= prompt_len < ids.shape[1]:
        raise ValueError(f"prompt_len must be in 1..{ids.shape[1] - 1}, got {prompt_len}")
    logits = model(ids)[:, prompt_len - 1:-1]
    return logits.log_softmax(-1).gather(-1, ids[:, prompt_len:, None]).squeeze(-1)


class RewardModel(nn.Module):
    """A scalar score for a text: a TinyGPT body, a linear head per token, averaged over the completion."""

    def __init__(self, body: TinyGPT) -> None:
        super().__init__()
        self.body = copy.deepcopy(body)
        self.score = nn.Linear(body.cfg.dim, 1)

    def forward(self, ids: torch.Tensor, prompt_len: int) -> torch.Tensor:
        """ids ``(batch, seq)`` -> rewards ``(batch,)`` (mean token score over positions >= prompt_len)."""
        hidden, _ = self.body.hidden_states(ids)
        return self.score(hidden[:, prompt_len:]).squeeze(-1).mean(-1)


def train_reward_model(
    rm: RewardModel, chosen: torch.Tensor, rejected: torch.Tensor, prompt_len: int,
    *, steps: int = 150, batch: int = 64, lr: float = 1e-3, seed: int = 0,
) -> list[float]:
    """Bradley-Terry training on ``(pairs, seq)`` id tensors of chosen and rejected texts; returns losses."""
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen and rejected must have the same shape, got "
                         f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(rm.parameters(), lr=lr, weight_decay=0.01)
    losses = []
    rm.train()
    for _ in range(steps):
        idx = torch.randint(0, len(chosen), (batch,), generator=gen)
        loss = bradley_terry_loss(rm(chosen[idx], prompt_len), rm(rejected[idx], prompt_len))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    rm.eval()
    return losses


def ppo(
    policy: TinyGPT, reference: TinyGPT, reward_fn, prompts: torch.Tensor, new_tokens: int,
    *, iterations: int = 30, batch: int = 64, kl_coef: float = 0.05, clip: float = 0.2,
    epochs: int = 4, lr: float = 1e-3, seed: int = 0, progress: bool = False, gold_fn=None,
) -> dict:
    """PPO with a per-sequence KL penalty to the frozen ``reference`` (trains ``policy`` in place).

    Each iteration samples ``batch`` completions of random ``prompts`` ``(n, prompt_len)``,
    scores them with ``reward_fn(ids (batch, seq)) -> (batch,)``, subtracts
    ``kl_coef * sum_t (log pi - log pi_ref)``, and takes ``epochs`` steps on the clipped
    objective with the batch-normalised total as the advantage of every token (a batch-mean
    baseline instead of a learned value model). Returns lists ``reward``, ``kl`` (per-sequence
    estimate, nats) and ``objective`` per iteration, measured on that iteration's samples (drawn
    before its update), and ``gold`` when ``gold_fn`` (same signature as ``reward_fn``; a score
    the policy never sees) is given.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    prompt_len = prompts.shape[1]
    log = {"reward": [], "kl": [], "objective": []}
    if gold_fn is not None:
        log["gold"] = []
    iters = range(iterations)
    if progress:
        from tqdm import tqdm

        iters = tqdm(iters, desc=f"PPO, KL coefficient {kl_coef}", ascii=True, mininterval=2)
    for _ in iters:
        start = prompts[torch.randint(0, len(prompts), (batch,), generator=gen)]
        ids = generate(policy, start, new_tokens, generator=gen)
        with torch.no_grad():
            logp_old = completion_logprobs(policy, ids, prompt_len)
            logp_ref = completion_logprobs(reference, ids, prompt_len)
            reward = reward_fn(ids)
            kl = (logp_old - logp_ref).sum(-1)
            total = reward - kl_coef * kl
            adv = ((total - total.mean()) / (total.std() + 1e-8))[:, None].expand_as(logp_old)
            if gold_fn is not None:
                log["gold"].append(float(torch.as_tensor(gold_fn(ids), dtype=torch.float64).mean()))
        policy.train()
        for _ in range(epochs):
            objective = ppo_clipped_objective(completion_logprobs(policy, ids, prompt_len),
                                              logp_old, adv, clip)
            opt.zero_grad(set_to_none=True)
            (-objective).backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            opt.step()
        policy.eval()
        log["reward"].append(reward.mean().item())
        log["kl"].append(kl.mean().item())
        log["objective"].append(objective.item())
    return log


def dpo(
    policy: TinyGPT, reference: TinyGPT, chosen: torch.Tensor, rejected: torch.Tensor,
    prompt_len: int, *, beta: float = 0.1, steps: int = 150, batch: int = 64, lr: float = 1e-4,
    seed: int = 0, progress: bool = False, evaluate=None, eval_every: int = 10,
) -> list[float]:
    """DPO on preference pairs ``(pairs, seq)`` (trains ``policy`` in place); returns the losses.

    ``evaluate(step)``, if given, is called before the first step and after every ``eval_every``
    steps (policy in eval mode), e.g. to sample from the policy and log its gold score and KL.
    """
    if chosen.shape != rejected.shape:
        raise ValueError(f"chosen and rejected must have the same shape, got "
                         f"{tuple(chosen.shape)} and {tuple(rejected.shape)}")
    with torch.no_grad():
        ref_c = completion_logprobs(reference, chosen, prompt_len).sum(-1)
        ref_r = completion_logprobs(reference, rejected, prompt_len).sum(-1)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(policy.parameters(), lr=lr)
    steps_iter = range(steps)
    if progress:
        from tqdm import tqdm

        steps_iter = tqdm(steps_iter, desc=f"DPO, beta {beta}", ascii=True, mininterval=2)
    if not isinstance(eval_every, int) or eval_every < 1:
        raise ValueError(f"eval_every must be a positive int, got {eval_every!r}")
    losses = []
    for step in steps_iter:
        if evaluate is not None and step % eval_every == 0:
            policy.eval()
            evaluate(step)
        policy.train()
        idx = torch.randint(0, len(chosen), (batch,), generator=gen)
        loss = dpo_loss(completion_logprobs(policy, chosen[idx], prompt_len).sum(-1),
                        completion_logprobs(policy, rejected[idx], prompt_len).sum(-1),
                        ref_c[idx], ref_r[idx], beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    policy.eval()
    if evaluate is not None and steps % eval_every == 0:
        evaluate(steps)
    return losses


@torch.no_grad()
def sampled_kl(policy: TinyGPT, reference: TinyGPT, ids: torch.Tensor, prompt_len: int) -> float:
    """Mean over sequences of ``sum_t (log pi - log pi_ref)`` on ``ids`` sampled from ``policy`` (nats)."""
    return (completion_logprobs(policy, ids, prompt_len)
            - completion_logprobs(reference, ids, prompt_len)).sum(-1).mean().item()
