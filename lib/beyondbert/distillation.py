"""Knowledge distillation: soft targets with a temperature, students made of teacher layers, and
online (mutual) distillation.

- :func:`distillation_loss` — Hinton, Vinyals & Dean (2015): the student matches the teacher's
  temperature-softened distribution, ``T² · KL(softmax(t/T) ‖ softmax(s/T))``, mixed with the usual
  cross-entropy on the hard labels. The ``T²`` keeps the soft term's gradients the same size for
  every ``T`` (they shrink as ``1/T²`` otherwise).
- :func:`student_from_teacher` — DistilBERT's initialisation (Sanh et al., 2019): a student with
  fewer layers whose layers are copies of chosen teacher layers (by default spread evenly from the
  first to the last, :func:`distilbert_layers`: ``[0, 2, 4, 7, 9, 11]`` of 12, as DistilBERT).
- :func:`fidelity` and :func:`paired_bootstrap_spearman` — how closely a student (or a quantized
  model) reproduces its teacher, and a paired interval for a difference of Spearman correlations.
- :func:`embedding_distillation_loss` — match the teacher's sentence embeddings (MSE, as in
  Reimers & Gurevych, 2020) or their direction (cosine, DistilBERT's extra loss on hidden states).
- :func:`mutual_learning_losses` / :func:`mutual_learning_step` — deep mutual learning (Zhang et
  al., 2018): two students, each with its task loss plus ``KL(p_other ‖ p_self)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_tensor


def _check_logits(student: torch.Tensor, teacher: torch.Tensor) -> None:
    check_tensor(student, "student_logits")
    check_tensor(teacher, "teacher_logits")
    if student.dim() != 2 or student.shape != teacher.shape:
        raise ValueError(f"student and teacher logits must both be (batch, classes) of the same "
                         f"shape, got {tuple(student.shape)} and {tuple(teacher.shape)}")


def _check_temperature(temperature: object) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return float(temperature)


def soft_targets(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``softmax(logits / T)`` over the last dimension: higher ``T``, softer distribution."""
    check_tensor(logits, "logits")
    return torch.softmax(logits / _check_temperature(temperature), dim=-1)


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     temperature: float = 1.0, scale_by_t2: bool = True) -> torch.Tensor:
    """``T² · KL(softmax(t/T) ‖ softmax(s/T))``, averaged over the batch; logits ``(batch, classes)``.

    ``scale_by_t2=False`` drops the ``T²`` (to show what it is for).
    """
    _check_logits(student_logits, teacher_logits)
    t = _check_temperature(temperature)
    log_p_student = F.log_softmax(student_logits / t, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / t, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * t * t if scale_by_t2 else kl


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor | None = None, temperature: float = 2.0,
                      alpha: float = 0.5) -> torch.Tensor:
    """Hinton et al.'s loss: ``α · T² · KL(soft teacher ‖ soft student) + (1 − α) · CE(s, labels)``.

    Logits ``(batch, classes)``, labels ``(batch,)`` int64 (needed unless ``alpha == 1``).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    if alpha == 1:
        return soft
    if labels is None:
        raise ValueError("labels are needed when alpha < 1 (the hard-label part of the loss)")
    check_tensor(labels, "labels")
    if labels.shape != student_logits.shape[:1] or labels.dtype != torch.int64:
        raise ValueError(f"labels must be int64 of shape ({student_logits.shape[0]},), "
                         f"got {labels.dtype} {tuple(labels.shape)}")
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def embedding_distillation_loss(student: torch.Tensor, teacher: torch.Tensor,
                                kind: str = "mse") -> torch.Tensor:
    """Match sentence embeddings ``(batch, dim)``: ``"mse"`` (values) or ``"cosine"`` (1 − cos)."""
    check_tensor(student, "student")
    check_tensor(teacher, "teacher")
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(f"student and teacher embeddings must both be (batch, dim) of the same "
                         f"shape, got {tuple(student.shape)} and {tuple(teacher.shape)}")
    if kind == "mse":
        return F.mse_loss(student, teacher.detach())
    if kind == "cosine":
        return (1 - F.cosine_similarity(student, teacher.detach(), dim=-1)).mean()
    raise ValueError(f"kind must be 'mse' or 'cosine', got {kind!r}")


def every_other_layer(n_layers: int) -> list[int]:
    """Teacher layers ``0, 2, 4, …`` (half of them, rounded up).

    Not DistilBERT's choice: this drops the teacher's last layer (for 12 layers it keeps
    ``[0, 2, …, 10]``), whose output is what the student must reproduce. DistilBERT keeps
    ``[0, 2, 4, 7, 9, 11]``, first and last included: see :func:`distilbert_layers`.
    """
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    return list(range(0, n_layers, 2))


def distilbert_layers(n_layers: int, keep: int | None = None) -> list[int]:
    """``keep`` teacher layers spread evenly from the first to the last (DistilBERT's extraction).

    Index ``i`` of the student takes teacher layer ``floor(i · (n_layers − 1) / (keep − 1) + ½)``:
    12 → 6 gives ``[0, 2, 4, 7, 9, 11]`` (Sanh et al., 2019, keep these), 6 → 3 gives
    ``[0, 3, 5]``. ``keep`` defaults to half the layers, rounded up.
    """
    if not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    keep = (n_layers + 1) // 2 if keep is None else keep
    if not isinstance(keep, int) or not 1 <= keep <= n_layers:
        raise ValueError(f"keep must be an int in [1, {n_layers}], got {keep!r}")
    if keep == 1:
        return [n_layers - 1]
    step = (n_layers - 1) / (keep - 1)
    return [int(i * step + 0.5) for i in range(keep)]


def student_from_teacher(teacher: nn.Module, layers: Sequence[int] | None = None) -> nn.Module:
    """A copy of a Hugging Face BERT-style ``teacher`` that keeps only the teacher layers ``layers``.

    Embeddings (and pooler) are copied unchanged; ``layers`` defaults to half the layers spread
    from the first to the last (:func:`distilbert_layers`). The teacher is left untouched, and the
    student's ``config.num_hidden_layers`` is updated.
    """
    encoder = getattr(teacher, "encoder", None)
    blocks = getattr(encoder, "layer", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError(f"teacher must be a BERT-style model with .encoder.layer (a ModuleList), "
                        f"got {type(teacher).__name__}")
    n = len(blocks)
    layers = distilbert_layers(n) if layers is None else list(layers)
    if not layers or any(not isinstance(i, int) or not 0 <= i < n for i in layers):
        raise ValueError(f"layers must be a non-empty list of teacher layer indices in "
                         f"[0, {n - 1}], got {layers}")
    if sorted(set(layers)) != layers:
        raise ValueError(f"layers must be increasing and without repeats, got {layers}")
    student = copy.deepcopy(teacher)
    student.encoder.layer = nn.ModuleList(copy.deepcopy(blocks[i]) for i in layers)
    if hasattr(student, "config"):
        student.config.num_hidden_layers = len(layers)
    for new_index, block in enumerate(student.encoder.layer):  # keep per-layer indices consistent
        attention = getattr(getattr(block, "attention", None), "self", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = new_index
    return student


def mutual_learning_losses(logits_a: torch.Tensor, logits_b: torch.Tensor,
                           labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Deep mutual learning: ``CE(a, y) + KL(p_b ‖ p_a)`` and ``CE(b, y) + KL(p_a ‖ p_b)``.

    Each student treats the other's prediction as a fixed target (detached), so the two losses
    can be back-propagated together. Logits ``(batch, classes)``, labels ``(batch,)`` int64.
    """
    _check_logits(logits_a, logits_b)
    loss_a = F.cross_entropy(logits_a, labels) + soft_target_loss(logits_a, logits_b.detach())
    loss_b = F.cross_entropy(logits_b, labels) + soft_target_loss(logits_b, logits_a.detach())
    return loss_a, loss_b


def mutual_learning_step(model_a: nn.Module, model_b: nn.Module,
                         optimizer_a: torch.optim.Optimizer, optimizer_b: torch.optim.Optimizer,
                         inputs: Any, labels: torch.Tensor,
                         forward: Callable[[nn.Module, Any], torch.Tensor] | None = None
                         ) -> tuple[float, float]:
    """One update of both students on one batch; returns their two losses.

    ``forward(model, inputs)`` gives logits (default ``model(inputs)``). Both students are
    updated from the same forward pass (Zhang et al. update them in turn; with small steps the
    two orders behave alike).
    """
    forward = forward or (lambda model, x: model(x))
    loss_a, loss_b = mutual_learning_losses(forward(model_a, inputs), forward(model_b, inputs),
                                            labels)
    optimizer_a.zero_grad(set_to_none=True)
    optimizer_b.zero_grad(set_to_none=True)
    (loss_a + loss_b).backward()  # the detached targets keep the two gradients separate
    optimizer_a.step()
    optimizer_b.step()
    return loss_a.item(), loss_b.item()


def fidelity(student: torch.Tensor, teacher: torch.Tensor) -> dict[str, float]:
    """How closely ``student`` vectors ``(n, dim)`` reproduce ``teacher`` vectors on the same texts.

    ``cosine``: mean cosine between each text's two vectors (1 = same direction);
    ``pair_spearman``: Spearman correlation between the two models' cosine similarities of all
    ``n (n − 1) / 2`` pairs of texts (1 = the student ranks every pair as the teacher does,
    whatever its vectors look like).
    """
    check_tensor(student, "student")
    check_tensor(teacher, "teacher")
    if student.shape != teacher.shape or student.dim() != 2 or student.shape[0] < 3:
        raise ValueError(f"student and teacher must both be (n >= 3, dim) of the same shape, got "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    from scipy.stats import spearmanr

    s, t = F.normalize(student.float(), dim=-1), F.normalize(teacher.float(), dim=-1)
    upper = torch.triu_indices(len(s), len(s), offset=1)
    pairs_s, pairs_t = (s @ s.T)[upper[0], upper[1]], (t @ t.T)[upper[0], upper[1]]
    return {"cosine": float((s * t).sum(-1).mean()),
            "pair_spearman": float(spearmanr(pairs_s.numpy(), pairs_t.numpy()).statistic)}


def paired_bootstrap_spearman(human: Any, scores_a: Any, scores_b: Any, n_boot: int = 1000,
                              seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Spearman ρ of two models' scores with ``human`` judgments, and a paired bootstrap interval
    for the difference ``ρ_a − ρ_b``: the same resampled items score both models (Efron &
    Tibshirani, 1993), so the interval reflects the difference, not each model's own spread.

    All three ``(n,)``. Returns ``rho_a``, ``rho_b``, ``diff``, ``low``, ``high``.
    """
    import numpy as np
    from scipy.stats import rankdata

    h, a, b = (np.asarray(v, dtype=float) for v in (human, scores_a, scores_b))
    if not h.shape == a.shape == b.shape or h.ndim != 1 or len(h) < 3:
        raise ValueError(f"human, scores_a and scores_b must be (n >= 3,) of one length, got "
                         f"{h.shape}, {a.shape}, {b.shape}")

    def rho(x: np.ndarray, y: np.ndarray) -> np.ndarray:  # row-wise Spearman (ties: average ranks)
        rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
        rx, ry = rx - rx.mean(-1, keepdims=True), ry - ry.mean(-1, keepdims=True)
        return (rx * ry).sum(-1) / np.sqrt((rx ** 2).sum(-1) * (ry ** 2).sum(-1))

    idx = np.random.default_rng(seed).integers(0, len(h), size=(n_boot, len(h)))
    diffs = rho(a[idx], h[idx]) - rho(b[idx], h[idx])
    tail = (1 - level) / 2
    rho_a, rho_b = float(rho(a, h)), float(rho(b, h))
    return {"rho_a": rho_a, "rho_b": rho_b, "diff": rho_a - rho_b,
            "low": float(np.quantile(diffs, tail)), "high": float(np.quantile(diffs, 1 - tail))}
