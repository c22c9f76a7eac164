"""A readable BERT encoder written from scratch (Devlin et al., 2019).

It loads Hugging Face BERT weights (``config.json`` + ``model.safetensors``) and reproduces
``transformers.BertModel``'s hidden states; ``tests/test_bert.py`` checks the parity.

    embeddings = token + segment + position  ->  LayerNorm
    each layer: x = LN(x + MHA(x));  x = LN(x + FFN(x))      (post-norm, GELU)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ._checks import check_ids_and_mask
from .attention import MultiHeadAttention, padding_mask


@dataclass(frozen=True)
class BertConfig:
    """The hyper-parameters of ``config.json`` that the encoder uses."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0

    @classmethod
    def from_json(cls, path: str | Path) -> "BertConfig":
        """Read the fields this class knows from a Hugging Face ``config.json``."""
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


class BertOutput(NamedTuple):
    """What :class:`BertEncoder` returns.

    last_hidden_state: ``(batch, seq, dim)``; hidden_states: embeddings + one per layer, each
    ``(batch, seq, dim)`` (or None); attentions: one ``(batch, heads, seq, seq)`` per layer (or None).
    """

    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class BertEmbeddings(nn.Module):
    """Token + segment (token type) + position embeddings, then LayerNorm."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.token = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        self.segment = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """input_ids, token_type_ids ``(batch, seq)`` -> ``(batch, seq, dim)``."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.token(input_ids) + self.segment(token_type_ids) + self.position(positions)
        return self.norm(x)


class BertLayer(nn.Module):
    """One post-norm encoder block: attention, add & norm, feed-forward, add & norm."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(cfg.hidden_size, cfg.num_attention_heads)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x ``(batch, seq, dim)``, mask bool ``(batch, 1, 1, seq)`` -> (x, attention weights)."""
        attended, weights = self.attention(x, mask)
        x = self.attention_norm(x + attended)
        x = self.ffn_norm(x + self.ffn_out(nn.functional.gelu(self.ffn_in(x))))
        return x, weights


class BertEncoder(nn.Module):
    """Embeddings followed by ``num_hidden_layers`` encoder blocks (no pooler head)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> BertOutput:
        """input_ids, attention_mask (0/1), token_type_ids: ``(batch, seq)``.

        Returns a :class:`BertOutput` whose ``last_hidden_state`` is ``(batch, seq, dim)``.
        """
        attention_mask = check_ids_and_mask(input_ids, attention_mask)
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length must be <= {self.config.max_position_embeddings}, "
                f"got {input_ids.shape[1]}"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        elif token_type_ids.shape != input_ids.shape:
            raise ValueError(
                f"token_type_ids must have shape {tuple(input_ids.shape)}, "
                f"got {tuple(token_type_ids.shape)}"
            )
        mask = padding_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        hidden_states, attentions = [x], []
        for layer in self.layers:
            x, weights = layer(x, mask)
            hidden_states.append(x)
            attentions.append(weights)
        return BertOutput(
            last_hidden_state=x,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "BertEncoder":
        """Build the encoder from a Hugging Face BERT folder (config.json + model.safetensors)."""
        from safetensors.torch import load_file

        path = Path(path)
        weights_file = path / "model.safetensors"
        if not (path / "config.json").is_file() or not weights_file.is_file():
            raise FileNotFoundError(
                f"expected config.json and model.safetensors in {path}, found "
                f"{sorted(p.name for p in path.iterdir()) if path.is_dir() else 'no folder'}"
            )
        model = cls(BertConfig.from_json(path / "config.json"))
        hf_state = load_file(str(weights_file))
        model.load_state_dict(convert_hf_state_dict(hf_state), strict=True)
        return model.eval()


_HF_LAYER_NAMES = {
    "attention.self.query": "attention.query",
    "attention.self.key": "attention.key",
    "attention.self.value": "attention.value",
    "attention.output.dense": "attention.output",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out",
    "output.LayerNorm": "ffn_norm",
}
_HF_EMBEDDING_NAMES = {
    "word_embeddings": "token",
    "token_type_embeddings": "segment",
    "position_embeddings": "position",
    "LayerNorm": "norm",
}


def convert_hf_state_dict(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``transformers.BertModel`` weights to this module's names (pooler dropped)."""
    converted = {}
    for name, tensor in hf_state.items():
        name = name.removeprefix("bert.")
        if name.startswith("pooler.") or name.endswith("position_ids"):
            continue
        parts = name.split(".")
        if parts[0] == "embeddings":
            new = f"embeddings.{_HF_EMBEDDING_NAMES[parts[1]]}.{parts[-1]}"
        elif parts[:2] == ["encoder", "layer"]:
            inner = ".".join(parts[3:-1])
            new = f"layers.{parts[2]}.{_HF_LAYER_NAMES[inner]}.{parts[-1]}"
        else:
            raise KeyError(f"unexpected weight name in a BERT checkpoint: {name}")
        converted[new] = tensor
    return converted
