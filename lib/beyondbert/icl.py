"""In-context learning at toy scale: repeated random sequences, per-position loss, the ICL score.

Olsson et al. (2022) watch a Transformer learn *induction heads*: "find the previous occurrence
of the current token, copy the token that followed it". On random tokens that end with a block
written twice, a model with induction heads predicts the second copy almost perfectly although the
tokens are random; a model without them cannot. The *in-context learning score* is the loss
late in the context minus the loss early in the context (negative = the context helps).
:func:`phase_change` finds the sudden drop of the loss on the repeated tokens in a training curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import check_tensor
from .gpt import GPTConfig, TinyGPT, lm_loss
from .seeding import torch_threads


def repeated_random_tokens(
    batch: int, length: int, vocab: int, generator: torch.Generator,
    min_block: int = 4, max_block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random tokens whose last ``2 * block`` positions are a random block written twice.

    Each row draws its own block length from ``min_block..max_block`` (default ``length // 2``),
    so the distance between a token and its copy varies and cannot be learned from positions
    alone. Returns ``ids (batch, length)`` int64, ``repeated (batch, length)`` bool (True where
    the token copies the one ``block`` positions earlier) and ``blocks (batch,)``.
    """
    for name, value in (("batch", batch), ("length", length), ("vocab", vocab),
                        ("min_block", min_block)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    max_block = length // 2 if max_block is None else max_block
    if not 1 <= min_block <= max_block <= length // 2:
        raise ValueError(f"need 1 <= min_block <= max_block <= length // 2 = {length // 2}, got "
                         f"min_block={min_block}, max_block={max_block}")
    ids = torch.randint(0, vocab, (batch, length), generator=generator)
    blocks = torch.randint(min_block, max_block + 1, (batch,), generator=generator)
    positions = torch.arange(length)
    repeated = positions >= length - blocks[:, None]  # the second copy: the last `block` tokens
    source = (positions - blocks[:, None]).clamp(min=0)
    ids = torch.where(repeated, ids.gather(1, source), ids)
    return ids, repeated, blocks


def token_losses(model: TinyGPT, ids: torch.Tensor) -> torch.Tensor:
    """Next-token losses ``(batch, seq - 1)`` in nats; entry ``t`` is the loss of predicting ``ids[:, t + 1]``."""
    with torch.no_grad():
        return lm_loss(model(ids), ids, reduction="none")


def predictable(repeated: torch.Tensor) -> torch.Tensor:
    """Targets ``(batch, seq - 1)`` a copying model can get right: the token and the one before it are copies.

    (The first token of the second copy follows the end of the first copy, which has no earlier
    occurrence, so nothing in the context predicts it.)
    """
    return repeated[:, 1:] & repeated[:, :-1]


def icl_score(losses: torch.Tensor, early: int, late: int) -> float:
    """In-context learning score: ``losses[late] - losses[early]`` (nats; negative = context helps).

    ``losses`` ``(seq - 1,)`` are per-position losses, e.g. from :func:`position_losses`.
    """
    check_tensor(losses, "losses")
    if losses.dim() != 1:
        raise ValueError(f"losses must be 1-D (positions,), got shape {tuple(losses.shape)}")
    n = losses.shape[0]
    if not (0 <= early < late < n):
        raise ValueError(f"need 0 <= early < late < {n}, got early={early}, late={late}")
    return float(losses[late] - losses[early])


def train_induction(
    n_layers: int,
    *,
    vocab: int = 64,
    length: int = 24,
    min_block: int = 2,
    max_block: int = 10,
    dim: int = 32,
    n_heads: int = 1,
    layer_norm: bool = True,
    positions: str = "learned",
    embed_std: float = 1.0,
    steps: int = 2000,
    batch: int = 64,
    lr: float = 5e-3,
    warmup: int = 200,
    eval_every: int = 10,
    eval_batch: int = 256,
    seed: int = 0,
    threads: int | None = 1,
    progress: bool = False,
) -> dict:
    """Train an attention-only TinyGPT on :func:`repeated_random_tokens` and track the phase change.

    Adam with a linear warm-up of the learning rate over ``warmup`` steps, then constant. Every
    ``eval_every`` steps it measures on a fixed batch of ``eval_batch`` sequences: the mean loss
    on the predictable repeated tokens, the mean loss on the other tokens (random: about
    ``ln vocab`` at best) and the ICL score (loss of the last prediction, always a copy, minus the
    loss of the prediction at position 3, never one: by construction, a copy's loss minus a random
    token's loss) and, for every head, its :func:`previous_token_score` and
    :func:`induction_score` on that batch. Returns a dict of lists ``steps``, ``repeated``,
    ``random``, ``icl``, ``train_losses``; ``previous_token`` and ``induction`` (one
    ``[layer][head]`` nested list per evaluation); plus the final ``state`` and ``config``.

    ``threads``: PyTorch threads while training (restored afterwards; ``None`` keeps the current
    setting). A model this small is all per-operation overhead: two threads are no faster than
    one on an idle machine and several times slower on a busy one.
    """
    for name, value in (("steps", steps), ("batch", batch), ("eval_every", eval_every),
                        ("eval_batch", eval_batch)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    if length < 6:
        raise ValueError(f"length must be at least 6 (the ICL score reads position 3), got {length}")
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab, context=length, dim=dim, n_layers=n_layers, n_heads=n_heads,
                    mlp=False, layer_norm=layer_norm, positions=positions)
    model = TinyGPT(cfg)
    torch.nn.init.normal_(model.tokens.weight, std=embed_std)  # larger than GPT's 0.02: faster here
    gen = torch.Generator().manual_seed(seed)
    eval_ids, eval_repeated, eval_blocks = repeated_random_tokens(
        eval_batch, length, vocab, torch.Generator().manual_seed(seed + 1), min_block, max_block)
    eval_mask = predictable(eval_repeated)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (warmup + 1)))
    log = {"steps": [], "repeated": [], "random": [], "icl": [], "train_losses": [],
           "previous_token": [], "induction": []}
    stripe = induction_mask(eval_blocks, length)
    query = torch.arange(1, length)
    steps_iter = range(steps + 1)
    if progress:
        from tqdm import tqdm

        steps_iter = tqdm(steps_iter, desc=f"{n_layers}-layer attention-only", ascii=True,
                          mininterval=2)
    with torch_threads(threads):
        for step in steps_iter:
            if step % eval_every == 0:
                model.eval()
                with torch.no_grad():
                    hidden, attentions = model.hidden_states(eval_ids)
                    losses = lm_loss(model.head(hidden), eval_ids, reduction="none")
                log["previous_token"].append(
                    [att[:, :, query, query - 1].mean(dim=(0, 2)).tolist() for att in attentions])
                log["induction"].append(
                    [((att * stripe[:, None]).sum(dim=(0, 2, 3)) / stripe.sum()).tolist()
                     for att in attentions])
                log["steps"].append(step)
                log["repeated"].append(losses[eval_mask].mean().item())
                log["random"].append(losses[~eval_mask].mean().item())
                log["icl"].append(icl_score(losses.mean(0), early=3, late=length - 2))
                model.train()
            if step == steps:
                break
            x, _, _ = repeated_random_tokens(batch, length, vocab, gen, min_block, max_block)
            loss = lm_loss(model(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            log["train_losses"].append(loss.item())
    model.eval()
    log["state"], log["config"] = model.state_dict(), dict(cfg.__dict__)
    return log


def model_from_log(log: dict) -> TinyGPT:
    """The trained model (eval mode) stored in a :func:`train_induction` result."""
    model = TinyGPT(GPTConfig(**log["config"]))
    model.load_state_dict(log["state"])
    return model.eval()


@dataclass(frozen=True)
class PhaseChange:
    """Where and how fast a training curve drops from its plateau (steps are training steps).

    ``plateau`` and ``final`` are loss levels; ``start`` is the last step still at 90% of the way
    from ``final`` up to ``plateau``, ``end`` the first step down at 10%, ``step`` the first step
    at or below the midpoint, ``width = end - start`` the duration of the drop.
    """

    plateau: float
    final: float
    start: int
    step: int
    end: int

    @property
    def width(self) -> int:
        return self.end - self.start

    @property
    def half_width(self) -> int:
        """Steps from the 90% level to the midpoint: the drop itself, without its slow tail."""
        return self.step - self.start

    @property
    def sudden(self) -> bool:
        """The loss lost at least half its plateau value in at most half as many steps as it sat before."""
        return self.plateau - self.final >= self.plateau / 2 and self.width <= self.start / 2


def phase_change(steps: list[int], losses: list[float], window: int = 3,
                 tail: float = 0.1) -> PhaseChange | None:
    """Locate the steepest drop of a loss curve and measure its levels and width (None: no drop).

    ``final`` is the median of the last ``tail`` fraction of the curve. The steepest drop is the
    largest fall over ``window`` consecutive evaluations; ``plateau`` is the median loss over the
    second half of the evaluations before it. Then :class:`PhaseChange` reads the 90%, 50% and 10%
    crossings between the two levels. ``steps`` and ``losses`` are equally long lists (one entry
    per evaluation, steps increasing).
    """
    if len(steps) != len(losses):
        raise ValueError(f"steps and losses must have the same length, got {len(steps)} "
                         f"and {len(losses)}")
    if not isinstance(window, int) or not 1 <= window < len(losses):
        raise ValueError(f"window must be an int in 1..{len(losses) - 1} (fewer than the "
                         f"{len(losses)} evaluations), got {window!r}")
    if not 0 < tail <= 0.5:
        raise ValueError(f"tail must be in (0, 0.5], got {tail!r}")
    y = torch.tensor(losses, dtype=torch.float64)
    final = y[-max(1, round(tail * len(y))):].median().item()
    falls = y[:-window] - y[window:]
    steepest = int(falls.argmax())
    plateau = y[steepest // 2:steepest + 1].median().item()
    if falls[steepest] <= 0 or plateau <= final:
        return None
    high = final + 0.9 * (plateau - final)
    middle = final + 0.5 * (plateau - final)
    low = final + 0.1 * (plateau - final)
    start = max(i for i in range(steepest + 1) if y[i] >= high)  # exists: plateau is a median
    end = next((i for i in range(start, len(y)) if y[i] <= low), None)
    if end is None:  # the curve climbs back after the drop and stays above the 10% level
        return None
    middle_at = next(i for i in range(start, end + 1) if y[i] <= middle)
    return PhaseChange(plateau=plateau, final=final, start=steps[start], step=steps[middle_at],
                       end=steps[end])


def previous_token_score(attention: torch.Tensor) -> float:
    """Mean attention from each query ``t >= 1`` to key ``t - 1``: what a previous-token head does.

    attention ``(batch, seq, seq)`` (one head).
    """
    check_tensor(attention, "attention")
    if attention.dim() != 3 or attention.shape[1] != attention.shape[2] or attention.shape[1] < 2:
        raise ValueError(f"attention must be (batch, seq, seq) with seq >= 2, got "
                         f"{tuple(attention.shape)}")
    query = torch.arange(1, attention.shape[1])
    return attention[:, query, query - 1].mean().item()


def induction_score(attention: torch.Tensor, blocks: torch.Tensor) -> float:
    """Mean attention from each query ``t`` of the second copy to key ``t - block + 1``.

    That key is the token *after* the previous occurrence of the current token: where an induction
    head looks. attention ``(batch, seq, seq)`` (one head); ``blocks (batch,)`` the block lengths
    from :func:`repeated_random_tokens`.
    """
    check_tensor(attention, "attention")
    check_tensor(blocks, "blocks")
    if attention.dim() != 3 or attention.shape[1] != attention.shape[2]:
        raise ValueError(f"attention must be (batch, seq, seq), got {tuple(attention.shape)}")
    if blocks.shape != attention.shape[:1]:
        raise ValueError(f"blocks must be (batch,) = {tuple(attention.shape[:1])}, got "
                         f"{tuple(blocks.shape)}")
    seq = attention.shape[-1]
    if blocks.numel() and not (1 <= int(blocks.min()) and int(blocks.max()) <= seq // 2):
        raise ValueError(f"blocks must be in 1..seq // 2 = {seq // 2}, got {blocks.tolist()}")
    return float((attention * induction_mask(blocks, seq)).sum() / induction_mask(blocks, seq).sum())


def induction_mask(blocks: torch.Tensor, seq: int) -> torch.Tensor:
    """Bool ``(batch, seq, seq)``: True at (query ``t``, key ``t - block + 1``) for the queries of
    the second copy that have a "next" key (``seq - block <= t < seq - 1``)."""
    t = torch.arange(seq)
    query = (t >= seq - blocks[:, None]) & (t < seq - 1)  # (batch, seq)
    key = t[None, :, None] - blocks[:, None, None] + 1      # (batch, seq, 1): wanted key per query
    return query[:, :, None] & (t[None, None, :] == key)


def halfway_step(steps: list[int], values: list[float], tail: float = 0.1) -> int:
    """The first step at which ``values`` have covered half the way from their first value to
    their final level (median of the last ``tail`` of the curve), rising or falling."""
    if len(steps) != len(values) or len(steps) < 2:
        raise ValueError(f"steps and values must be equally long lists of 2 or more, got "
                         f"{len(steps)} and {len(values)}")
    y = torch.tensor(values, dtype=torch.float64)
    final = y[-max(1, round(tail * len(y))):].median().item()
    middle = (y[0].item() + final) / 2
    rising = final >= y[0].item()
    return next(s for s, v in zip(steps, values) if (v >= middle if rising else v <= middle))
