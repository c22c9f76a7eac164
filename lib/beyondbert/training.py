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
import math
import resource
import sys
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
    frozen_eval: bool = True,
    threads: int | None = 2,
) -> TrainReport:
    """Train ``model`` for ``epochs`` passes and report losses, time and peak memory.

    ``loss_fn(model, batch)`` returns a scalar tensor; ``batches`` is a re-iterable sequence of
    batches or a function ``epoch -> iterable of batches``. The run is seeded with ``seed``
    (Python, NumPy, PyTorch; ``threads`` threads, ``None``: left alone) and shows a tqdm text bar
    (``progress=False``: none). With ``frozen_eval`` (the default) every sub-module whose
    parameters are all frozen runs in eval mode (no dropout): a frozen encoder under a trained
    head computes the same vectors at every step, as it does at test time (see
    :func:`train_mode`).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    make_batches = batches if callable(batches) else (lambda epoch: batches)
    seed_everything(seed, threads=threads)
    report = TrainReport(epochs=epochs)
    train_mode(model, frozen_eval=frozen_eval)
    with PeakMemory() as memory:
        start = time.perf_counter()
        for epoch in range(epochs):
            epoch_batches = list(make_batches(epoch))
            if not epoch_batches:
                raise ValueError("batches is empty: nothing to train on")
            bar = tqdm(epoch_batches, desc=f"{desc} (epoch {epoch + 1}/{epochs})", file=sys.stdout,
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


def train_mode(model: torch.nn.Module, frozen_eval: bool = True) -> torch.nn.Module:
    """``model.train()``, except that sub-modules whose parameters are all frozen go to eval mode.

    A frozen encoder under a trained head must not apply dropout while the head trains: its
    vectors would differ from the ones it gives at test time (and from vectors stored once for
    head-only training). A sub-module that holds trainable parameters somewhere inside (a LoRA
    layer in a frozen encoder) stays in training mode, and so do parameter-free modules such as
    dropout inside it. ``frozen_eval=False``: plain ``model.train()``. Returns ``model``.
    """
    model.train()
    if not frozen_eval:
        return model

    def visit(module: torch.nn.Module) -> None:
        for child in module.children():
            params = list(child.parameters())
            if params and not any(p.requires_grad for p in params):
                child.eval()
            else:
                visit(child)

    visit(model)
    return model


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
                     seed: int = 0, desc: str = "fine-tuning", progress: bool = True,
                     threads: int | None = 2) -> dict:
    """Fine-tune ``model`` with cross-entropy on ``train_idx``; accuracy on ``test_idx``.

    ``features``: the tokenised texts (dict of ``(n, seq)`` tensors), ``labels`` ``(n,)`` int64.
    Only parameters with ``requires_grad`` are trained (AdamW; the head at ``head_lr``, the rest
    at ``lr``); frozen sub-modules run in eval mode (:func:`train_mode`). Returns plain data:
    accuracy, the test predictions, trainable parameters, seconds per epoch, peak memory (MiB)
    and how it was measured, and the per-step losses.
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
                 epochs=epochs, seed=seed, desc=desc, progress=progress, threads=threads)
    test = {k: v[test_idx] for k, v in features.items()}
    model.eval()
    with torch.no_grad():
        predicted = model(test).argmax(dim=-1)
    return {"accuracy": (predicted == labels[test_idx]).float().mean().item(),
            "predictions": predicted.tolist(),
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


def cross_validation_folds(n: int, k: int = 5, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """``k`` (train, test) index lists over ``range(n)``: a seeded permutation cut into ``k``
    folds; every item is tested exactly once, by a model that never saw it."""
    if not isinstance(n, int) or not isinstance(k, int) or k < 2 or n < k:
        raise ValueError(f"need ints with 2 <= k <= n, got n={n!r}, k={k!r}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    folds = [order[i::k] for i in range(k)]
    return [(sorted(j for f in folds[:i] + folds[i + 1:] for j in f), sorted(folds[i]))
            for i in range(k)]


def train_linear_probe(vectors: torch.Tensor, labels: torch.Tensor, train_idx: Any,
                       n_classes: int = 2, epochs: int = 100, lr: float = 1e-2,
                       batch_size: int = 32, seed: int = 0) -> torch.nn.Linear:
    """A linear head trained on stored sentence vectors ``(n, dim)`` (a frozen encoder's output).

    AdamW with cross-entropy, ``epochs`` seeded passes over ``train_idx``; returns the head in
    eval mode. With a frozen encoder in eval mode this is exactly head-only training, at a
    fraction of the cost (the encoder runs once per sentence, not once per step).
    """
    check = torch.as_tensor(train_idx)
    if vectors.dim() != 2 or labels.shape != vectors.shape[:1]:
        raise ValueError(f"vectors must be (n, dim) and labels (n,), got {tuple(vectors.shape)} "
                         f"and {tuple(labels.shape)}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = torch.nn.Linear(vectors.shape[1], n_classes)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr)
    x, y = vectors[check].detach(), labels[check]

    def loss_fn(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(x[batch]), y[batch])

    fit(head, loss_fn, shuffled_batches(len(check), batch_size, seed), optimizer, epochs=epochs,
        seed=seed, progress=False, threads=None)
    return head.eval()


def mcnemar(correct_a: Any, correct_b: Any) -> dict[str, float]:
    """McNemar's exact test for two classifiers scored on the same items (McNemar, 1947).

    ``correct_a``, ``correct_b``: booleans ``(n,)``, whether each method got item ``i`` right.
    Only the discordant items count: ``a_only`` (A right, B wrong) and ``b_only``; under "same
    accuracy" each discordant item is a fair coin, so the two-sided p-value is the binomial
    probability of a split at least this uneven. Returns ``a_only``, ``b_only``, ``p_value``.
    """
    a = torch.as_tensor(correct_a, dtype=torch.bool)
    b = torch.as_tensor(correct_b, dtype=torch.bool)
    if a.shape != b.shape or a.dim() != 1:
        raise ValueError(f"correct_a and correct_b must be (n,) of the same length, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n, low = a_only + b_only, min(a_only, b_only)
    if n == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0}
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2.0 ** n
    return {"a_only": a_only, "b_only": b_only, "p_value": min(1.0, 2 * tail)}


# ---------------------------------------------------------------------------------------------
# Chapter 5's polarity experiment, shared by the fine-tuning and LoRA pages through the build
# cache: 5-fold cross-validation over the 200 Pang & Lee sentences; a linear probe on stored
# MiniLM vectors, then LP-FT (Kumar et al., 2022): full fine-tuning or LoRA starting from the
# probe's head.
# ---------------------------------------------------------------------------------------------

POLARITY = {"data": "pang-lee-polarity", "max_len": 32, "folds": 4, "probe_epochs": 40,
            "probe_lr": 1e-2, "batch_size": 8}
LPFT = {
    # full fine-tuning: a low learning rate for everything, the head already trained
    "full": {"epochs": 1, "lr": 2e-5, "head_lr": 2e-5},
    # LoRA r=8, alpha=16 on query and value: fresh matrices need a higher learning rate
    "lora": {"epochs": 1, "lr": 5e-4, "head_lr": 2e-5, "r": 8, "alpha": 16,
             "targets": ["query", "value"]},
}


def polarity_vectors(seed: int, random_encoder: bool = False) -> torch.Tensor:
    """MiniLM's sentence vectors ``(200, 384)`` of the polarity sentences, from the build cache.

    ``random_encoder=True``: the same architecture with random weights (seeded by ``seed``),
    for measuring what pre-training is worth.
    """
    from .cache import cached
    from .data import pang_lee_polarity
    from .sbert import load_sentence_encoder

    def build() -> torch.Tensor:
        texts, _ = pang_lee_polarity()
        encoder = load_sentence_encoder(max_seq_length=POLARITY["max_len"])
        if random_encoder:
            from transformers import BertModel

            with torch.random.fork_rng():
                torch.manual_seed(seed)
                encoder.model = BertModel(encoder.model.config)
        encoder.eval()
        return encoder.encode(texts)

    config = dict(POLARITY, seed=seed, random_encoder=random_encoder)
    return cached("polarity-vectors", config, build)


def polarity_probe_cv(seed: int, random_encoder: bool = False) -> dict:
    """A linear probe per fold on :func:`polarity_vectors`; plain data from the build cache.

    Returns ``folds`` (train, test index lists), ``heads`` (one state dict per fold),
    ``predictions`` (each sentence predicted once, by the fold that held it out) and
    ``majority_predictions`` (each fold's training-majority class: the trivial baseline).
    """
    from .cache import cached
    from .data import pang_lee_polarity

    def build() -> dict:
        _, labels = pang_lee_polarity()
        labels = torch.as_tensor(labels)
        vectors = polarity_vectors(seed, random_encoder)
        folds = cross_validation_folds(len(labels), POLARITY["folds"], seed)
        predictions, majority, heads = [0] * len(labels), [0] * len(labels), []
        for k, (train, test) in enumerate(folds):
            head = train_linear_probe(vectors, labels, train, epochs=POLARITY["probe_epochs"],
                                      lr=POLARITY["probe_lr"], seed=seed * 100 + k)
            heads.append({n: t.detach().clone() for n, t in head.state_dict().items()})
            with torch.no_grad():
                for i, p in zip(test, head(vectors[test]).argmax(-1).tolist()):
                    predictions[i] = p
            common = int(labels[train].float().mean() > 0.5)
            for i in test:
                majority[i] = common
        return {"folds": folds, "heads": heads, "predictions": predictions,
                "majority_predictions": majority}

    config = dict(POLARITY, seed=seed, random_encoder=random_encoder)
    return cached("polarity-probe-cv", config, build)


def polarity_lpft_cv(method: str, seed: int, progress: bool = True) -> dict:
    """LP-FT on every fold: MiniLM + the fold's probe head, then ``method`` ("full" or "lora")
    with the settings in ``LPFT``, on one thread. Plain data from the build cache: per-fold
    ``accuracy``, ``losses``, ``seconds``; ``predictions`` over all sentences; ``trainable`` and
    ``total`` parameters."""
    from .cache import cached
    from .data import pang_lee_polarity
    from .lora import count_parameters, inject_lora
    from .sbert import load_sentence_encoder

    if method not in LPFT:
        raise ValueError(f"method must be one of {list(LPFT)}, got {method!r}")
    settings = LPFT[method]

    def build() -> dict:
        texts, labels = pang_lee_polarity()
        labels = torch.as_tensor(labels)
        probe = polarity_probe_cv(seed)
        features = load_sentence_encoder(max_seq_length=POLARITY["max_len"]).tokenize(texts)
        out = {"predictions": [0] * len(labels), "accuracy": [], "losses": [], "seconds": []}
        folds = probe["folds"]
        bar = tqdm(range(len(folds)), desc=f"LP-FT {method}, folds", ascii=True, ncols=90,
                   disable=not progress, file=sys.stdout)
        for k in bar:
            train, test = folds[k]
            clf = SentenceClassifier(load_sentence_encoder(max_seq_length=POLARITY["max_len"]), 2)
            clf.head.load_state_dict(probe["heads"][k])
            if method == "lora":
                with torch.random.fork_rng():
                    torch.manual_seed(seed * 100 + k)
                    inject_lora(clf.encoder.model, settings["targets"], r=settings["r"],
                                alpha=settings["alpha"])
            counts = count_parameters(clf)
            run = train_classifier(clf, features, labels, train, test, epochs=settings["epochs"],
                                   lr=settings["lr"], head_lr=settings["head_lr"],
                                   batch_size=POLARITY["batch_size"], seed=seed * 100 + k,
                                   progress=False, threads=1)
            for i, p in zip(test, run["predictions"]):
                out["predictions"][i] = p
            out["accuracy"].append(run["accuracy"])
            out["losses"].append(run["losses"])
            out["seconds"].append(run["seconds"])
        out["trainable"], out["total"] = counts["trainable"], counts["total"]
        return out

    config = dict(POLARITY, **settings, method=method, seed=seed)
    return cached("polarity-lpft-cv", config, build)
