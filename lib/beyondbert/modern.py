"""The modern ("Transformer++") encoder block: RMSNorm, SwiGLU, rotary positions, pre-norm, no biases.

The name Transformer++ is from Gu & Dao (2023, Mamba), for the recipe of LLaMA (Touvron et al.,
2023): RMSNorm (Zhang & Sennrich, 2019) instead of LayerNorm, a SwiGLU feed-forward network
(Shazeer, 2020), rotary position embeddings (RoPE; Su et al., 2021) instead of learned absolute
positions, the norm *before* each sub-block (pre-norm) and linear layers without biases.

    each block: x = x + Attention(RMSNorm(x))   (RoPE on queries and keys)
                x = x + SwiGLU(RMSNorm(x))

RoPE here pairs dimension ``i`` with ``i + head_dim/2`` (the "rotate half" layout of GPT-NeoX,
Hugging Face LLaMA and ModernBERT); the paper's layout pairs neighbours ``(2i, 2i+1)``. The two are
the same rotation up to a fixed permutation of the head dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._checks import check_ids_and_mask, check_tensor
from .attention import padding_mask, scaled_dot_product_attention
from .bert import BertOutput


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """``x / sqrt(mean(x**2) + eps) * weight`` over the last dimension; ``x`` ``(..., dim)``.

    Unlike LayerNorm, nothing is subtracted (no mean) and there is no bias.
    """
    check_tensor(x, "x")
    if not x.dtype.is_floating_point:
        raise ValueError(f"x must be a floating-point tensor, got dtype {x.dtype}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    out = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps)
    if weight is not None:
        if weight.shape != x.shape[-1:]:
            raise ValueError(f"weight must have shape ({x.shape[-1]},), got {tuple(weight.shape)}")
        out = out * weight
    return out


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned gain (no bias); ``(..., dim)`` -> same."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


def swiglu_hidden_size(dim: int, mlp_ratio: float = 4.0, multiple_of: int = 8) -> int:
    """SwiGLU width with about the parameters of a ``mlp_ratio * dim`` GELU MLP (LLaMA's 2/3 rule).

    SwiGLU has three matrices instead of two, so its hidden width is ``2/3 * mlp_ratio * dim``,
    rounded up to a multiple of ``multiple_of``.
    """
    hidden = int(2 * mlp_ratio * dim / 3)
    return multiple_of * math.ceil(hidden / multiple_of)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))``, no biases (Shazeer, 2020); ``(..., dim)`` -> same."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.silu(self.gate(x)) * self.up(x))


def rope_angles(seq_len: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cos, sin)``, each ``(seq_len, head_dim)``: position ``m``, pair ``i`` turns by ``m * base**(-2i/head_dim)``.

    Both halves of the last dimension hold the same angles (the "rotate half" layout).
    """
    if not isinstance(seq_len, int) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    if not isinstance(head_dim, int) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension (pairs of coordinates), got {head_dim!r}")
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)  # (d/2,)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)         # (seq, d/2)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dimension (a 90° turn of each pair)."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` ``(..., seq, head_dim)`` by their position's angles.

    ``cos``/``sin`` come from :func:`rope_angles` and have at least ``seq`` rows.
    """
    check_tensor(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., seq, head_dim), got {tuple(x.shape)}")
    seq, head_dim = x.shape[-2:]
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dimension (pairs of coordinates), got {head_dim}")
    if cos.shape[-1] != head_dim or sin.shape != cos.shape:
        raise ValueError(f"cos and sin must have shape (>= {seq}, {head_dim}), got "
                         f"{tuple(cos.shape)} and {tuple(sin.shape)}")
    if seq > cos.shape[0]:
        raise ValueError(f"sequence of {seq} positions is longer than the RoPE table "
                         f"({cos.shape[0]} positions)")
    cos, sin = cos[:seq].to(x.dtype), sin[:seq].to(x.dtype)
    return x * cos + rotate_half(x) * sin


class RotaryEmbedding(nn.Module):
    """A RoPE table for ``max_seq_len`` positions; ``forward(x)`` rotates ``(..., seq, head_dim)``."""

    def __init__(self, head_dim: int, max_seq_len: int, base: float = 10000.0) -> None:
        super().__init__()
        cos, sin = rope_angles(max_seq_len, head_dim, base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_rope(x, self.cos, self.sin)


class ModernAttention(nn.Module):
    """Multi-head self-attention without biases, with RoPE applied to queries and keys."""

    def __init__(self, dim: int, num_heads: int, max_seq_len: int, rope_base: float = 10000.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.output = nn.Linear(dim, dim, bias=False)
        self.rope = RotaryEmbedding(self.head_dim, max_seq_len, rope_base)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = x.shape
        return x.view(batch, seq, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(batch, seq, dim)``, mask bool broadcastable to ``(batch, heads, seq, seq)``."""
        q = self.rope(self._split_heads(self.query(x)))
        k = self.rope(self._split_heads(self.key(x)))
        v = self._split_heads(self.value(x))
        context, weights = scaled_dot_product_attention(q, k, v, mask)
        batch, _, seq, _ = context.shape
        return self.output(context.transpose(1, 2).reshape(batch, seq, -1)), weights


class ModernBlock(nn.Module):
    """Pre-norm block: ``x + Attention(RMSNorm(x))``, then ``x + SwiGLU(RMSNorm(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, max_seq_len: int,
                 eps: float = 1e-6, rope_base: float = 10000.0) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(dim, eps)
        self.attention = ModernAttention(dim, num_heads, max_seq_len, rope_base)
        self.mlp_norm = RMSNorm(dim, eps)
        self.mlp = SwiGLU(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(batch, seq, dim)`` -> (x, attention weights ``(batch, heads, seq, seq)``)."""
        attended, weights = self.attention(self.attention_norm(x), mask)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), weights


class ModernEncoder(nn.Module):
    """Token embeddings (no position table: RoPE), ``num_layers`` modern blocks, a final RMSNorm."""

    def __init__(self, vocab_size: int, dim: int, num_layers: int, num_heads: int,
                 max_seq_len: int, mlp_hidden: int | None = None, pad_token_id: int = 0) -> None:
        super().__init__()
        self.max_seq_len = max_seq_len
        self.token = nn.Embedding(vocab_size, dim, padding_idx=pad_token_id)
        hidden = mlp_hidden or swiglu_hidden_size(dim)
        self.layers = nn.ModuleList(ModernBlock(dim, num_heads, hidden, max_seq_len)
                                    for _ in range(num_layers))
        self.norm = RMSNorm(dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> BertOutput:
        """input_ids, attention_mask ``(batch, seq)`` -> :class:`~beyondbert.bert.BertOutput`.

        There are no segment embeddings: ``token_type_ids`` must be None.
        """
        attention_mask = check_ids_and_mask(input_ids, attention_mask)
        if token_type_ids is not None:
            raise ValueError("ModernEncoder has no token type (segment) embeddings; pass None")
        if input_ids.shape[1] > self.max_seq_len:
            raise ValueError(f"sequence length must be <= {self.max_seq_len} (the RoPE table), "
                             f"got {input_ids.shape[1]}")
        mask = padding_mask(attention_mask)
        x = self.token(input_ids)
        for layer in self.layers:
            x, _ = layer(x, mask)
        return BertOutput(last_hidden_state=self.norm(x))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class PreNormBertLayer(nn.Module):
    """BERT's layer with the LayerNorm moved *before* each sub-block (pre-norm; Xiong et al., 2020).

    Same parameters as :class:`~beyondbert.bert.BertLayer` (attention, GELU feed-forward, two
    LayerNorms); only where the norms sit changes: ``x + MHA(LN(x))``, then ``x + FFN(LN(x))``.
    """

    def __init__(self, cfg) -> None:
        super().__init__()
        from .attention import MultiHeadAttention

        self.attention = MultiHeadAttention(cfg.hidden_size, cfg.num_attention_heads)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(batch, seq, dim)``, mask bool ``(batch, 1, 1, seq)`` -> (x, attention weights)."""
        attended, weights = self.attention(self.attention_norm(x), mask)
        x = x + attended
        x = x + self.ffn_out(nn.functional.gelu(self.ffn_in(self.ffn_norm(x))))
        return x, weights


class PreNormBertEncoder(nn.Module):
    """:class:`~beyondbert.bert.BertEncoder` with pre-norm layers and one final LayerNorm.

    The single-factor twin of BERT's post-norm encoder for the stability experiment: embeddings,
    attention, feed-forward and widths are BERT's; only the position of the norms differs.
    """

    def __init__(self, cfg) -> None:
        super().__init__()
        from .bert import BertEmbeddings

        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList(PreNormBertLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> BertOutput:
        """input_ids, attention_mask ``(batch, seq)`` -> :class:`~beyondbert.bert.BertOutput`."""
        attention_mask = check_ids_and_mask(input_ids, attention_mask)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        mask = padding_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        for layer in self.layers:
            x, _ = layer(x, mask)
        return BertOutput(last_hidden_state=self.norm(x))


def stability_run(tokenizer_json: str, norm: str, *, layers: int = 6, dim: int = 64, heads: int = 4,
                  max_len: int = 32, batch_size: int = 16, steps: int = 150, lr: float = 1e-2,
                  n_train: int = 270, seed: int = 0) -> dict:
    """Train a deep tiny BERT at a high learning rate **without warm-up**, post-norm or pre-norm.

    ``norm="post"`` is BERT's :class:`~beyondbert.bert.BertEncoder`; ``"pre"`` is
    :class:`PreNormBertEncoder`, the same layers with the norms moved. Dynamic masking on
    FULL-SENTENCES blocks of the first ``n_train`` news articles, AdamW at a constant ``lr``.
    Returns ``{"loss": per-step MLM loss (nan once non-finite), "unigram_loss"}``: a run that learned
    ends well below the unigram loss; one that diverged stays at or above it.
    """
    from tokenizers import Tokenizer

    from .bert import BertConfig, BertEncoder
    from .mlm import (MaskedBatches, MaskedLM, count_baselines, encode_segments, full_sentences, init_weights,
                      pretraining_loss, tokenize_documents)
    from .seeding import seed_everything, torch_threads
    from .tokenization import news_corpus

    if norm not in ("post", "pre"):
        raise ValueError(f"norm must be 'post' or 'pre', got {norm!r}")
    tok = Tokenizer.from_str(tokenizer_json)
    cls, sep, pad, mask = (tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]"))
    vocab = tok.get_vocab_size()
    docs = tokenize_documents(tok, news_corpus()[:n_train])
    data = encode_segments([(b,) for b in full_sentences(docs, max_len, sep)], max_len, cls, sep, pad)
    del data["token_type_ids"]
    seed_everything(seed, threads=None)
    batches = MaskedBatches(data, batch_size, [pad, cls, sep], mask, vocab, masking="dynamic", seed=seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=4 * dim, max_position_embeddings=max_len, type_vocab_size=1, pad_token_id=pad)
    model = init_weights(MaskedLM(BertEncoder(cfg) if norm == "post" else PreNormBertEncoder(cfg), dim))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    losses = []
    model.train()
    with torch_threads(1):
        for _ in range(steps):
            loss, parts = pretraining_loss(model, batches())
            if not math.isfinite(parts["mlm_loss"]):
                losses += [math.nan] * (steps - len(losses))
                break
            losses.append(parts["mlm_loss"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    ids = data["input_ids"]
    targets = torch.where(torch.isin(ids, torch.tensor([pad, cls, sep])), torch.full_like(ids, -100), ids)
    baseline = count_baselines(docs, ids, targets, vocab)["unigram_loss"]
    return {"loss": losses, "unigram_loss": baseline}
