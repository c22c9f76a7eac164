"""In-context learning at toy scale: repeated random sequences, per-position loss, the ICL score.

Olsson et al. (2022) watch a Transformer learn *induction heads*: "find the previous occurrence
of the current token, copy the token that followed it". On random tokens that end with a block
written twice, a model with induction heads predicts the second copy almost perfectly although the
tokens are random; a model without them cannot. The *in-context learning score* is the loss
late in the context minus the loss early in the context (negative = the context helps).
"""

from __future__ import annotations

import torch

from ._checks import check_tensor
from .gpt import GPTConfig, TinyGPT, lm_loss


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
    vocab: int = 32,
    length: int = 24,
    min_block: int = 3,
    dim: int = 32,
    n_heads: int = 2,
    steps: int = 3000,
    batch: int = 32,
    lr: float = 3e-3,
    eval_every: int = 10,
    positions: str = "learned",
    embed_std: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Train an attention-only TinyGPT on :func:`repeated_random_tokens` and track the phase change.

    Every ``eval_every`` steps it measures on a fixed evaluation batch: the mean loss on the
    predictable repeated tokens, the mean loss on the other tokens (random: about ``ln vocab`` at
    best), and the ICL score (loss of the last prediction, always a copy, minus the loss of the
    prediction at position 4, never one). Returns a dict of lists ``steps``, ``repeated``,
    ``random``, ``icl``, ``train_losses``, plus the final ``state`` and ``config``.
    """
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab, context=length, dim=dim, n_layers=n_layers,
                    n_heads=n_heads, mlp=False, layer_norm=False, positions=positions)
    model = TinyGPT(cfg)
    torch.nn.init.normal_(model.tokens.weight, std=embed_std)  # larger than GPT's 0.02: faster here
    gen = torch.Generator().manual_seed(seed)
    eval_ids, eval_repeated, _ = repeated_random_tokens(
        1024, length, vocab, torch.Generator().manual_seed(seed + 1), min_block)
    eval_mask = predictable(eval_repeated)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    log = {"steps": [], "repeated": [], "random": [], "icl": [], "train_losses": []}
    steps_iter = range(steps + 1)
    if progress:
        from tqdm import tqdm

        steps_iter = tqdm(steps_iter, desc=f"{n_layers}-layer attention-only", ascii=True,
                          mininterval=2)
    for step in steps_iter:
        if step % eval_every == 0:
            model.eval()
            losses = token_losses(model, eval_ids)
            log["steps"].append(step)
            log["repeated"].append(losses[eval_mask].mean().item())
            log["random"].append(losses[~eval_mask].mean().item())
            log["icl"].append(icl_score(losses.mean(0), early=3, late=length - 2))
            model.train()
        if step == steps:
            break
        x, _, _ = repeated_random_tokens(batch, length, vocab, gen, min_block)
        loss = lm_loss(model(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        log["train_losses"].append(loss.item())
    model.eval()
    log["state"], log["config"] = model.state_dict(), dict(cfg.__dict__)
    return log


def phase_change_step(steps: list[int], repeated: list[float], threshold: float) -> int | None:
    """The first evaluated step at which the loss on repeated tokens fell below ``threshold`` (or None)."""
    if len(steps) != len(repeated):
        raise ValueError(f"steps and repeated must have the same length, got {len(steps)} "
                         f"and {len(repeated)}")
    for step, loss in zip(steps, repeated):
        if loss < threshold:
            return step
    return None


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
    total, count = 0.0, 0
    for row, block in enumerate(blocks.tolist()):
        queries = torch.arange(seq - block, seq - 1)  # last query has no "next" key inside
        total += attention[row, queries, queries - block + 1].sum().item()
        count += len(queries)
    return total / count
