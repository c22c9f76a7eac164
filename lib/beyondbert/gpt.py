"""A tiny GPT (decoder-only Transformer) and how it writes: greedy, temperature, top-k, top-p.

The decoder is built from :class:`beyondbert.attention.MultiHeadAttention` with a causal mask, so
position ``i`` only sees positions ``0..i`` and one forward pass gives the next-token loss of every
position at once (Radford et al., 2018). The blocks are pre-norm with a final LayerNorm, as in
GPT-2 (Radford et al., 2019, §2.3; GPT-1 was post-norm). ``pretrained_tiny_gpt`` trains a
character-level one on gensim's ``lee_background.cor`` once per book build (through
:func:`beyondbert.cache.cached`).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_tensor
from .attention import MultiHeadAttention, causal_mask
from .seeding import torch_threads


# --------------------------------------------------------------------------- tokenizer and data
class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters of a text."""

    def __init__(self, chars: str | list[str]) -> None:
        chars = sorted(set(chars))
        if not chars:
            raise ValueError("CharTokenizer needs at least one character")
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """``text`` -> int64 ids ``(len(text),)``; a character outside the vocabulary is an error."""
        missing = sorted(set(text) - set(self.index))
        if missing:
            raise ValueError(f"characters not in the vocabulary: {missing[:10]}")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """ids ``(seq,)`` -> text."""
        return "".join(self.chars[int(i)] for i in ids)


def lee_text() -> str:
    """gensim's ``lee_background.cor`` (300 Australian news articles), one line per article."""
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="latin-1") as f:
        return f.read()


def corpus_vocabulary(text: str, min_count: int = 2) -> frozenset[str]:
    """The lower-case words (runs of letters a-z) that occur at least ``min_count`` times in ``text``."""
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count must be a positive int, got {min_count!r}")
    counts = Counter(re.findall(r"[a-z]+", text.lower()))
    return frozenset(w for w, c in counts.items() if c >= min_count)


def real_word_share(text: str, vocabulary: frozenset[str] | set[str]) -> float:
    """Share of the words (runs of letters) of ``text`` that are in ``vocabulary``; the first and
    last are left out (they may be cut by the window). NaN when no word is left."""
    words = re.findall(r"[a-z]+", text.lower())[1:-1]
    return sum(w in vocabulary for w in words) / len(words) if words else float("nan")


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class GPTConfig:
    """Sizes of a :class:`TinyGPT`. ``mlp=False`` and ``layer_norm=False`` give an attention-only model.

    ``positions``: ``"learned"`` (a trained table, as GPT-2) or ``"sinusoidal"`` (fixed sines and
    cosines, Vaswani et al. 2017: "attend to the previous token" is then one linear map).
    """

    vocab_size: int
    context: int = 64
    dim: int = 128
    n_layers: int = 2
    n_heads: int = 4
    mlp: bool = True
    layer_norm: bool = True
    positions: str = "learned"

    def __post_init__(self) -> None:
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal', got {self.positions!r}")
        for name in ("vocab_size", "context", "dim", "n_layers", "n_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")


def sinusoidal_positions(context: int, dim: int) -> torch.Tensor:
    """Fixed position vectors ``(context, dim)``: sin and cos of ``pos / 10000^(2i/dim)`` (Vaswani et al., 2017)."""
    pos = torch.arange(context, dtype=torch.float32)[:, None]
    freq = 10000 ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    table = torch.zeros(context, dim)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


class DecoderBlock(nn.Module):
    """Pre-norm block (GPT-2): ``x + attention(norm(x))`` with a causal mask, then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        norm = (lambda: nn.LayerNorm(cfg.dim)) if cfg.layer_norm else nn.Identity
        self.norm1, self.attention = norm(), MultiHeadAttention(cfg.dim, cfg.n_heads)
        self.norm2 = norm() if cfg.mlp else None
        self.mlp = (nn.Sequential(nn.Linear(cfg.dim, 4 * cfg.dim), nn.GELU(),
                                  nn.Linear(4 * cfg.dim, cfg.dim)) if cfg.mlp else None)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(batch, seq, dim)``, mask bool ``(seq, seq)`` -> (x, attention ``(batch, heads, seq, seq)``)."""
        attended, weights = self.attention(self.norm1(x), mask)
        x = x + attended
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x, weights


class TinyGPT(nn.Module):
    """Token + learned position embeddings, ``n_layers`` causal decoder blocks, a linear LM head."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.positions = nn.Embedding(cfg.context, cfg.dim)
        if cfg.positions == "sinusoidal":
            self.positions.weight.requires_grad_(False)
        self.blocks = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.dim) if cfg.layer_norm else nn.Identity()
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        self.apply(self._init)
        if cfg.positions == "sinusoidal":  # apply() re-initialised every embedding
            with torch.no_grad():
                self.positions.weight.copy_(sinusoidal_positions(cfg.context, cfg.dim))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def hidden_states(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """ids ``(batch, seq)`` -> (final hidden ``(batch, seq, dim)``, attention of each layer)."""
        check_tensor(ids, "ids")
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"ids must be int64 of shape (batch, seq), got {ids.dtype} "
                             f"{tuple(ids.shape)}")
        seq = ids.shape[1]
        if not 1 <= seq <= self.cfg.context:
            raise ValueError(f"sequence length must be 1..{self.cfg.context}, got {seq}")
        x = self.tokens(ids) + self.positions(torch.arange(seq, device=ids.device))
        mask = causal_mask(seq, device=ids.device)
        attentions = []
        for block in self.blocks:
            x, weights = block(x, mask)
            attentions.append(weights)
        return self.norm(x), attentions

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids ``(batch, seq)`` -> next-token logits ``(batch, seq, vocab)``."""
        return self.head(self.hidden_states(ids)[0])


def lm_loss(logits: torch.Tensor, ids: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy: position ``t`` predicts ``ids[:, t + 1]``.

    logits ``(batch, seq, vocab)``, ids ``(batch, seq)``; ``reduction="none"`` returns
    ``(batch, seq - 1)`` losses in nats.
    """
    if logits.shape[:2] != ids.shape:
        raise ValueError(f"logits (batch, seq, vocab) {tuple(logits.shape)} do not match ids "
                         f"(batch, seq) {tuple(ids.shape)}")
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    return losses if reduction == "none" else losses.mean()


# --------------------------------------------------------------------------- sampling
def filter_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Logits ``(..., vocab)`` divided by ``temperature``, ``-inf`` outside the top-k / top-p set.

    top-k keeps the ``k`` largest logits (ties at the k-th value are kept). top-p (nucleus;
    Holtzman et al., 2020) keeps the smallest set of most likely tokens whose probabilities sum
    to at least ``p`` (so the most likely token is always kept). Both may be given.
    """
    check_tensor(logits, "logits")
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for 0), got {temperature!r}")
    vocab = logits.shape[-1]
    logits = logits / temperature
    if top_k is not None:
        if not isinstance(top_k, int) or not 1 <= top_k <= vocab:
            raise ValueError(f"top_k must be an int in 1..{vocab} (the vocabulary), got {top_k!r}")
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
        drop_sorted = before >= top_p  # already reached p without this token
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@torch.no_grad()
def generate(
    model: TinyGPT,
    ids: torch.Tensor,
    new_tokens: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    return_logprobs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Append ``new_tokens`` tokens to ``ids`` ``(batch, seq)``; returns ``(batch, seq + new_tokens)``.

    ``greedy=True`` takes the most likely token; otherwise it samples from
    ``softmax(filter_logits(...))``. The model sees at most its last ``context`` tokens.
    ``return_logprobs=True`` also returns ``(batch, new_tokens)``: the log-probability of each
    chosen token under the model's own distribution (temperature 1, nothing filtered) given the
    context it was generated from, i.e. how likely the model finds the text it wrote.
    """
    if not isinstance(new_tokens, int) or new_tokens < 0:
        raise ValueError(f"new_tokens must be a non-negative int, got {new_tokens!r}")
    was_training = model.training
    model.eval()
    logprobs = []
    for _ in range(new_tokens):
        logits = model(ids[:, -model.cfg.context:])[:, -1]
        if greedy:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = filter_logits(logits, temperature, top_k, top_p).softmax(dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        if return_logprobs:
            logprobs.append(logits.log_softmax(dim=-1).gather(-1, nxt))
        ids = torch.cat([ids, nxt], dim=1)
    model.train(was_training)
    if return_logprobs:
        return ids, (torch.cat(logprobs, dim=1) if logprobs else ids.new_zeros(ids.shape[0], 0).float())
    return ids


def distinct_ngrams(text: str, n: int = 4) -> float:
    """Share of the ``n``-character sequences of ``text`` that are distinct (1 = no repeats; low = loops)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    grams = [text[i:i + n] for i in range(len(text) - n + 1)]
    if not grams:
        raise ValueError(f"text must hold at least n = {n} characters, got {len(text)}")
    return len(set(grams)) / len(grams)


# --------------------------------------------------------------------------- training
def random_windows(data: torch.Tensor, batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` random windows of ``length`` tokens from a 1-D id tensor -> ``(batch, length)``."""
    starts = torch.randint(0, len(data) - length, (batch,), generator=generator)
    return torch.stack([data[s:s + length] for s in starts.tolist()])


def train_lm(
    model: TinyGPT,
    data: torch.Tensor,
    steps: int,
    *,
    batch: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = False,
) -> list[float]:
    """AdamW on next-token loss over random windows of ``data``; returns the losses.

    Each window holds ``context + 1`` tokens: the model reads the first ``context`` and predicts
    the next token at every position, the last one included (the position generation reads once
    the text is longer than the context). The learning rate warms up for 5% of the steps, then
    decays to 10% with a cosine.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.55 + 0.45 * math.cos(math.pi * min(s, steps) / steps)))
    steps_iter = range(steps)
    if progress:
        from tqdm import tqdm

        steps_iter = tqdm(steps_iter, desc="training the tiny GPT", ascii=True, mininterval=2)
    losses = []
    model.train()
    for _ in steps_iter:
        x = random_windows(data, batch, model.cfg.context + 1, gen)
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def perplexity(model: TinyGPT, data: torch.Tensor, batch: int = 64) -> float:
    """exp(mean next-token loss) over consecutive non-overlapping ``context`` windows of ``data``."""
    n = model.cfg.context
    windows = data[: (len(data) // n) * n].view(-1, n)
    if len(windows) == 0:
        raise ValueError(f"data must hold at least {n} tokens, got {len(data)}")
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        x = windows[i:i + batch]
        total += lm_loss(model(x), x, reduction="none").sum().item()
        count += x.shape[0] * (n - 1)
    return math.exp(total / count)


# --------------------------------------------------------------------------- the shared model
PRETRAIN = {"context": 64, "dim": 64, "n_layers": 2, "n_heads": 4, "steps": 1200, "batch": 32,
            "lr": 3e-3, "seed": 0, "held_out": 0.1}


def _pretrain(settings: dict) -> dict:
    text = lee_text()
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    split = int(len(ids) * (1 - settings["held_out"]))
    cfg = GPTConfig(vocab_size=tok.vocab_size, context=settings["context"], dim=settings["dim"],
                    n_layers=settings["n_layers"], n_heads=settings["n_heads"])
    torch.manual_seed(settings["seed"])
    model = TinyGPT(cfg)
    with torch_threads(1):  # fast, and the weights do not depend on the caller's thread count
        start = time.perf_counter()
        losses = train_lm(model, ids[:split], settings["steps"], batch=settings["batch"],
                          lr=settings["lr"], seed=settings["seed"], progress=True)
    return {"config": asdict(cfg), "chars": tok.chars, "state": model.state_dict(),
            "losses": losses, "split": split, "seconds": time.perf_counter() - start}


def pretrained_tiny_gpt(**overrides) -> tuple[TinyGPT, CharTokenizer, dict]:
    """The course's tiny character-level GPT on ``lee_background.cor``, trained once per build.

    Returns ``(model in eval mode, tokenizer, info)``; ``info`` holds ``losses`` (training curve),
    ``train_ids``/``held_out_ids`` (the last 10% of the text is never trained on) and ``seconds``
    (training time of the run that filled the cache). ``overrides`` change :data:`PRETRAIN`.
    """
    unknown = set(overrides) - set(PRETRAIN)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; expected some of {sorted(PRETRAIN)}")
    from .cache import cached

    settings = {**PRETRAIN, **overrides}
    stored = cached("tiny-gpt-lee", settings, lambda: _pretrain(settings))
    tok = CharTokenizer(stored["chars"])
    model = TinyGPT(GPTConfig(**stored["config"]))
    model.load_state_dict(stored["state"])
    model.eval()
    ids = tok.encode(lee_text())
    info = {"losses": stored["losses"], "seconds": stored["seconds"], "settings": settings,
            "train_ids": ids[:stored["split"]], "held_out_ids": ids[stored["split"]:]}
    return model, tok, info
