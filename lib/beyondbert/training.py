"""The small training loop the chapters share: seeded, a text progress bar, time and peak memory.

A task head for fine-tuning, :class:`SentenceClassifier`, sits here too: a sentence encoder
followed by one linear layer (BERT's recipe for sentence classification, Devlin et al., 2019).

``fit(model, loss_fn, batches, optimizer)`` runs ``epochs`` passes over ``batches`` (a list, or
a function ``epoch -> iterable`` for per-epoch shuffling), calling ``loss_fn(model, batch)`` for a
scalar loss, and returns a :class:`TrainReport` with the per-step losses, the wall time and the
peak memory the run added to the process.

Peak memory is measured with the operating system's count of the process's resident memory
(Linux ``VmHWM``, the "high-water mark" in ``/proc/self/status``): the mark is reset just before
training, so ``peak_memory_mib`` = highest resident memory during training − resident memory at
the start. That counts everything PyTorch allocates (gradients, optimizer state, activations saved
for the backward pass); Python's ``tracemalloc`` would miss it, because tensors are not allocated
through Python's allocator. Where the mark cannot be reset (not Linux), ``resource.getrusage``'s
lifetime peak is used and the report says so.
"""

from __future__ import annotations

import ctypes
import resource
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .seeding import seed_everything

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_memory() -> None:
    """Ask glibc to return freed heap memory to the OS, so a start baseline is not inflated."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager: peak resident memory (MiB) added while the block ran.

    ``with PeakMemory() as mem: ...`` then ``mem.peak_mib`` and ``mem.method`` (what was measured).
    """

    def __enter__(self) -> PeakMemory:
        _release_free_memory()
        self.method = "peak RSS (Linux VmHWM, reset at start) minus RSS at start"
        try:
            _CLEAR_REFS.write_text("5")  # "5" resets the peak resident-set counter (Linux >= 4.0)
        except OSError:
            self.method = "lifetime peak RSS (resource.getrusage) minus RSS at start"
        self.start_kib = _status_kib("VmRSS")
        if self.start_kib is None:
            self.start_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mib = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        peak = _status_kib("VmHWM") if self.method.startswith("peak RSS") else None
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mib = max(0.0, (peak - self.start_kib) / 1024)


@dataclass
class TrainReport:
    """What :func:`fit` measured: per-step losses, seconds, peak memory and how it was measured."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    epochs: int = 0
    peak_memory_mib: float = 0.0
    memory_method: str = ""

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / max(self.epochs, 1)


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    batches: Iterable[Any] | Callable[[int], Iterable[Any]],
    optimizer: torch.optim.Optimizer,
    epochs: int = 1,
    seed: int = 0,
    desc: str = "training",
    progress: bool = True,
) -> TrainReport:
    """Train ``model`` for ``epochs`` passes and report losses, time and peak memory.

    ``loss_fn(model, batch)`` returns a scalar tensor; ``batches`` is a re-iterable sequence of
    batches or a function ``epoch -> iterable of batches``. The run is seeded with ``seed``
    (Python, NumPy, PyTorch; 2 threads) and shows a tqdm text bar (``progress=False``: none).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    make_batches = batches if callable(batches) else (lambda epoch: batches)
    seed_everything(seed)
    report = TrainReport(epochs=epochs)
    model.train()
    with PeakMemory() as memory:
        start = time.perf_counter()
        for epoch in range(epochs):
            epoch_batches = list(make_batches(epoch))
            if not epoch_batches:
                raise ValueError("batches is empty: nothing to train on")
            bar = tqdm(epoch_batches, desc=f"{desc} (epoch {epoch + 1}/{epochs})",
                       disable=not progress, ascii=True, ncols=90, mininterval=1.0)
            for batch in bar:
                loss = loss_fn(model, batch)
                if loss.dim() != 0:
                    raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                report.losses.append(loss.item())
                bar.set_postfix(loss=f"{report.losses[-1]:.4f}", refresh=False)
        report.seconds = time.perf_counter() - start
    model.eval()
    report.peak_memory_mib = memory.peak_mib
    report.memory_method = memory.method
    return report


class SentenceClassifier(torch.nn.Module):
    """A task head on a sentence encoder: ``features -> encoder -> (batch, dim) -> (batch, classes)``.

    ``encoder`` maps the dict of token tensors its ``tokenize`` gives to sentence vectors
    ``(batch, dim)`` (a :class:`beyondbert.sbert.SentenceEncoder`); the head is a fresh
    ``nn.Linear(dim, n_classes)``.
    """

    def __init__(self, encoder: torch.nn.Module, n_classes: int, dim: int | None = None) -> None:
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        dim = dim if dim is not None else getattr(encoder, "dim", None)
        if not isinstance(dim, int):
            raise ValueError("the encoder has no .dim: pass dim= (the sentence vector size)")
        self.encoder = encoder
        self.head = torch.nn.Linear(dim, n_classes)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self.encoder(features))


@torch.no_grad()
def accuracy(model: torch.nn.Module, inputs: Any, labels: torch.Tensor) -> float:
    """Share of ``labels`` ``(n,)`` that ``model(inputs)``'s arg-max logits get right (eval mode)."""
    was_training = model.training
    model.eval()
    try:
        predicted = model(inputs).argmax(dim=-1)
    finally:
        model.train(was_training)
    if predicted.shape != labels.shape:
        raise ValueError(f"model gave {tuple(predicted.shape)} predictions for "
                         f"{tuple(labels.shape)} labels")
    return (predicted == labels).float().mean().item()


def train_classifier(model: SentenceClassifier, features: dict[str, torch.Tensor],
                     labels: torch.Tensor, train_idx: Any, test_idx: Any, epochs: int = 2,
                     lr: float = 1e-4, head_lr: float = 1e-3, batch_size: int = 16,
                     seed: int = 0, desc: str = "fine-tuning", progress: bool = True) -> dict:
    """Fine-tune ``model`` with cross-entropy on ``train_idx``; accuracy on ``test_idx``.

    ``features``: the tokenised texts (dict of ``(n, seq)`` tensors), ``labels`` ``(n,)`` int64.
    Only parameters with ``requires_grad`` are trained (AdamW; the head at ``head_lr``, the rest
    at ``lr``). Returns plain data: accuracy, trainable parameters, seconds per epoch, peak
    memory (MiB) and how it was measured, and the per-step losses.
    """
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    head = [p for p in model.head.parameters() if p.requires_grad]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    groups = [{"params": head, "lr": head_lr}] + ([{"params": rest, "lr": lr}] if rest else [])
    optimizer = torch.optim.AdamW(groups)

    def loss_fn(m: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        rows = train_idx[batch]
        logits = m({k: v[rows] for k, v in features.items()})
        return torch.nn.functional.cross_entropy(logits, labels[rows])

    report = fit(model, loss_fn, shuffled_batches(len(train_idx), batch_size, seed), optimizer,
                 epochs=epochs, seed=seed, desc=desc, progress=progress)
    test = {k: v[test_idx] for k, v in features.items()}
    return {"accuracy": accuracy(model, test, labels[test_idx]),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "seconds_per_epoch": report.seconds_per_epoch, "seconds": report.seconds,
            "peak_memory_mib": report.peak_memory_mib, "memory_method": report.memory_method,
            "losses": report.losses}


def shuffled_batches(n: int, batch_size: int, seed: int = 0) -> Callable[[int], list[torch.Tensor]]:
    """``epoch -> list of index tensors``: a fresh seeded permutation of ``range(n)`` each epoch."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1, got n={n}, batch_size={batch_size}")

    def batches(epoch: int) -> list[torch.Tensor]:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        return list(order.split(batch_size))

    return batches
