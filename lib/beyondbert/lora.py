"""Parameter-efficient fine-tuning: LoRA layers (Hu et al., 2021), and soft prompts for contrast.

LoRA keeps a pretrained ``nn.Linear`` (weight ``W`` of shape ``(out, in)``) frozen and learns a
low-rank update ``ΔW = (α / r) · B A`` with ``A`` of shape ``(r, in)`` (random) and ``B`` of shape
``(out, r)`` (zeros, so training starts from the pretrained model exactly):

    y = x Wᵀ + b + (α / r) · x Aᵀ Bᵀ

``merge`` folds ``ΔW`` into ``W`` (no extra cost at inference), ``unmerge`` takes it out again.
The initialisation and the scale follow ``peft`` (``kaiming_uniform_(A, a=√5)``, ``B = 0``,
``scaling = α / r``), so a model injected here and a ``peft`` model with the same ``A``, ``B``
compute the same outputs.

Prompt (prefix) tuning is the other family: the model stays frozen and a few learned vectors are
put in front of the input (:class:`SoftPrompt`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn


def _check_rank(r: object, in_features: int, out_features: int) -> int:
    if not isinstance(r, int) or isinstance(r, bool):
        raise TypeError(f"LoRA rank r must be an int, got {type(r).__name__}")
    if r <= 0 or r > min(in_features, out_features):
        raise ValueError(
            f"LoRA rank r must be between 1 and min(in_features, out_features) = "
            f"{min(in_features, out_features)} for a ({out_features}, {in_features}) layer, got {r}"
        )
    return r


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update; input ``(..., in)`` → ``(..., out)``.

    ``lora_A``: ``(r, in)``, ``lora_B``: ``(out, r)``, ``scaling = alpha / r`` (``alpha``
    defaults to ``r``, a scale of 1). ``dropout`` applies to the LoRA branch's input only.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float | None = None,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        r = _check_rank(r, base.in_features, base.out_features)
        alpha = float(r if alpha is None else alpha)
        if alpha <= 0:
            raise ValueError(f"LoRA alpha must be > 0, got {alpha}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear and peft; B stays 0
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """``ΔW = (α / r) · B A``, shape ``(out, in)``."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:
            return y
        return y + self.scaling * (self.dropout(x) @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self) -> None:
        """``W ← W + ΔW``: one plain linear layer at inference (no-op if already merged)."""
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """``W ← W − ΔW``: the frozen weight back, the adapter separate (no-op if not merged)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, merged={self.merged}"


def _matches(name: str, pattern: str | Sequence[str]) -> bool:
    """peft's rule: a string is a regex the full name must match; a list holds name suffixes."""
    if isinstance(pattern, str):
        return re.fullmatch(pattern, name) is not None
    return any(name == key or name.endswith("." + key) for key in pattern)


def inject_lora(model: nn.Module, target_modules: str | Sequence[str], r: int = 8,
                alpha: float | None = None, dropout: float = 0.0,
                freeze_base: bool = True) -> list[str]:
    """Replace every ``nn.Linear`` whose name matches ``target_modules`` by a :class:`LoRALinear`.

    ``target_modules``: a regex the full module name must match, or a list of name suffixes
    (``["query", "value"]``), as in ``peft.LoraConfig``. With ``freeze_base`` every parameter
    that is not a LoRA matrix is frozen. Returns the replaced modules' names; raises
    ``ValueError`` when the pattern matches no ``nn.Linear``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(target_modules, str) and not (
        isinstance(target_modules, Sequence) and all(isinstance(t, str) for t in target_modules)
    ):
        raise TypeError(f"target_modules must be a regex string or a list of names, "
                        f"got {target_modules!r}")
    linears = {name: m for name, m in model.named_modules()
               if isinstance(m, nn.Linear) and not isinstance(m, LoRALinear)}
    chosen = [name for name in linears if _matches(name, target_modules)]
    if not chosen:
        examples = ", ".join(list(linears)[:6]) or "none"
        raise ValueError(f"target_modules={target_modules!r} matches no nn.Linear of the model "
                         f"(its linear layers include: {examples})")
    if freeze_base:
        for p in model.parameters():
            p.requires_grad_(False)
    for name in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(linears[name], r=r, alpha=alpha, dropout=dropout))
    return chosen


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """The model's :class:`LoRALinear` layers, in module order."""
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def _require_lora(model: nn.Module) -> list[LoRALinear]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA layers: call inject_lora first")
    return layers


def merge_lora(model: nn.Module) -> int:
    """Merge every LoRA layer's update into its weight; returns how many layers were merged."""
    layers = _require_lora(model)
    for layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Undo :func:`merge_lora`; returns how many layers were unmerged."""
    layers = _require_lora(model)
    for layer in layers:
        layer.unmerge()
    return len(layers)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA matrices (``...lora_A``, ``...lora_B``): what an adapter file stores."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if k.endswith(("lora_A", "lora_B"))}


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"trainable": n, "frozen": n, "total": n}``: parameters with and without ``requires_grad``.

    A parameter shared by two modules counts once.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    trainable = frozen = 0
    for p in model.parameters():  # parameters() yields each shared tensor once
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    return {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}


class SoftPrompt(nn.Module):
    """Prompt tuning (Lester et al., 2021): ``n_tokens`` learned vectors put before the input.

    ``forward(inputs_embeds (batch, seq, dim), attention_mask (batch, seq))`` returns
    ``(batch, n_tokens + seq, dim)`` and the mask extended with ones. Only ``prompt``
    (``n_tokens × dim`` numbers) is trained; the model it feeds stays frozen.
    """

    def __init__(self, n_tokens: int, dim: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(n_tokens, int) or n_tokens < 1:
            raise ValueError(f"n_tokens must be an int >= 1, got {n_tokens!r}")
        if init is not None and tuple(init.shape) != (n_tokens, dim):
            raise ValueError(f"init must have shape ({n_tokens}, {dim}), got {tuple(init.shape)}")
        start = init.detach().clone() if init is not None else torch.randn(n_tokens, dim) * 0.02
        self.prompt = nn.Parameter(start)

    def forward(self, inputs_embeds: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.prompt.shape[1]:
            raise ValueError(f"inputs_embeds must be (batch, seq, {self.prompt.shape[1]}), "
                             f"got {tuple(inputs_embeds.shape)}")
        batch = inputs_embeds.shape[0]
        prompt = self.prompt.unsqueeze(0).expand(batch, -1, -1).to(inputs_embeds.dtype)
        ones = attention_mask.new_ones(batch, self.prompt.shape[0])
        return torch.cat([prompt, inputs_embeds], dim=1), torch.cat([ones, attention_mask], dim=1)
