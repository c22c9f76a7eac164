"""Masked-language-model pre-training: BERT's recipe and RoBERTa's (Devlin et al., 2019; Liu et al., 2019).

* :func:`mask_tokens` — pick 15% of the tokens (never a special or padding token); of those, 80%
  become ``[MASK]``, 10% a random token, 10% stay; labels are ``-100`` everywhere else.
* static masking (masks drawn once, when the data is prepared: BERT) vs dynamic masking (fresh
  masks every time a sequence is used: RoBERTa) — :class:`MaskedBatches`.
* next-sentence-prediction pairs (:func:`nsp_pairs`, BERT) vs FULL-SENTENCES blocks
  (:func:`full_sentences`, RoBERTa).
* :class:`MaskedLM` (an encoder plus BERT's MLM head, optionally the NSP head) and a small
  pre-training loop :func:`pretrain` with a text progress bar.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from ._checks import check_tensor
from .seeding import torch_threads

IGNORE_INDEX = -100  # label of positions the loss skips (PyTorch's cross_entropy default)
IS_NEXT, NOT_NEXT = 0, 1  # next_sentence_label values, as in Hugging Face's BertForPreTraining


def _check_probability(p: float, name: str) -> None:
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 < p < 1:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {p!r}")


def mask_tokens(
    input_ids: torch.Tensor,
    special_ids: Sequence[int],
    mask_token_id: int,
    vocab_size: int,
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: returns ``(inputs, labels)``, both ``(batch, seq)`` int64.

    Each token that is not in ``special_ids`` ([CLS], [SEP], [PAD], ...) is selected with
    probability ``mlm_probability``. A selected token becomes ``mask_token_id`` with probability
    0.8, a uniformly random id in ``[0, vocab_size)`` with probability 0.1, and stays itself
    otherwise. ``labels`` hold the original id at selected positions and ``-100`` elsewhere.
    """
    check_tensor(input_ids, "input_ids")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}")
    _check_probability(mlm_probability, "mlm_probability")
    if not 0 <= mask_token_id < vocab_size:
        raise ValueError(f"mask_token_id must be in [0, {vocab_size}), got {mask_token_id}")
    input_ids = input_ids.long()
    special = torch.isin(input_ids, torch.tensor(list(special_ids), dtype=torch.long))
    draw = lambda: torch.rand(input_ids.shape, generator=generator)  # noqa: E731
    selected = (draw() < mlm_probability) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    to_mask = selected & (draw() < 0.8)
    to_random = selected & ~to_mask & (draw() < 0.5)  # half of the remaining 20%
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    inputs = torch.where(to_random, random_ids, inputs)
    return inputs, labels


def split_sentences(text: str) -> list[str]:
    """Split news text into sentences at ``.``, ``!`` or ``?`` followed by a space and a capital."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text) if s.strip()]


def nsp_pairs(
    documents: Sequence[Sequence[Sequence[int]]], max_tokens: int, rng: random.Random
) -> list[tuple[list[int], list[int], int]]:
    """BERT's SEGMENT-PAIR inputs with next-sentence labels (after ``create_pretraining_data.py``).

    ``documents``: per document, per sentence, token ids. Contiguous sentences are gathered up to
    ``max_tokens - 3`` tokens (room for ``[CLS] A [SEP] B [SEP]``) and cut at a random sentence
    boundary into A and B. With probability 1/2, B is replaced by text from a random *other*
    document (label ``NOT_NEXT`` = 1), else it is the real continuation (``IS_NEXT`` = 0).
    Returns ``(a_ids, b_ids, label)`` triples.
    """
    if len(documents) < 2:
        raise ValueError(f"need at least 2 documents to draw random 'next' segments, got {len(documents)}")
    target = max_tokens - 3
    if target < 2:
        raise ValueError(f"max_tokens must be >= 5, got {max_tokens}")
    pairs = []
    for doc_index, doc in enumerate(documents):
        chunk, length, i = [], 0, 0
        while i < len(doc):
            chunk.append(list(doc[i]))
            length += len(doc[i])
            if i == len(doc) - 1 or length >= target:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                a = [t for s in chunk[:a_end] for t in s]
                if len(chunk) == 1 or rng.random() < 0.5:
                    label, b = NOT_NEXT, []
                    other = rng.choice([j for j in range(len(documents)) if j != doc_index])
                    start = rng.randrange(len(documents[other]))
                    for sentence in documents[other][start:]:
                        b.extend(sentence)
                        if len(b) >= target - len(a):
                            break
                    i -= len(chunk) - a_end  # the unused sentences are used again later
                else:
                    label, b = IS_NEXT, [t for s in chunk[a_end:] for t in s]
                while len(a) + len(b) > target:  # trim the longer segment at its end
                    (a if len(a) > len(b) else b).pop()
                if a and b:
                    pairs.append((a, b, label))
                chunk, length = [], 0
            i += 1
    return pairs


def full_sentences(
    documents: Sequence[Sequence[Sequence[int]]], max_tokens: int, doc_sep_id: int
) -> list[list[int]]:
    """RoBERTa's FULL-SENTENCES inputs: whole sentences packed contiguously, across documents.

    Blocks hold at most ``max_tokens - 2`` ids (room for ``[CLS] ... [SEP]``); a ``doc_sep_id``
    token marks each document boundary inside a block; a sentence longer than a block is cut.
    """
    limit = max_tokens - 2
    if limit < 1:
        raise ValueError(f"max_tokens must be >= 3, got {max_tokens}")
    blocks, block = [], []
    for doc in documents:
        if block and len(block) < limit:
            block.append(doc_sep_id)
        for sentence in doc:
            sentence = list(sentence)[:limit]
            if len(block) + len(sentence) > limit:
                blocks.append(block)
                block = []
            block.extend(sentence)
    if block:
        blocks.append(block)
    return [b for b in blocks if b and b != [doc_sep_id]]


def encode_segments(
    segments: Sequence[tuple[Sequence[int], ...]], max_len: int, cls_id: int, sep_id: int, pad_id: int
) -> dict[str, torch.Tensor]:
    """``[CLS] A [SEP] (B [SEP])`` padded to ``max_len``: ``input_ids``, ``token_type_ids``, ``attention_mask`` ``(n, max_len)``.

    ``segments`` are 1-tuples ``(a,)`` or pairs ``(a, b)`` of id lists.
    """
    ids = torch.full((len(segments), max_len), pad_id, dtype=torch.long)
    types = torch.zeros_like(ids)
    for row, parts in enumerate(segments):
        seq, seg = [cls_id], [0]
        for part_index, part in enumerate(parts):
            seq += list(part) + [sep_id]
            seg += [part_index] * (len(part) + 1)
        if len(seq) > max_len:
            raise ValueError(f"row {row} has {len(seq)} tokens with specials, more than max_len={max_len}")
        ids[row, :len(seq)] = torch.tensor(seq)
        types[row, :len(seg)] = torch.tensor(seg)
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": (ids != pad_id).long()}


class MaskedBatches:
    """Training batches with BERT's masking, drawn once (``"static"``) or at every use (``"dynamic"``).

    ``data``: tensors with a first dimension of ``n`` sequences (``input_ids`` required; also
    ``attention_mask``, ``token_type_ids``, ``next_sentence_label`` when present). Static masking
    draws ``dupe_factor`` masked copies of each sequence when it is built (BERT duplicated its data
    10 times); dynamic masking draws a new mask each time a sequence is put in a batch (RoBERTa).
    Calling the object returns the next batch: a dict with ``labels`` added.
    """

    def __init__(self, data: dict[str, torch.Tensor], batch_size: int, special_ids: Sequence[int],
                 mask_token_id: int, vocab_size: int, masking: str = "dynamic", dupe_factor: int = 1,
                 mlm_probability: float = 0.15, seed: int = 0) -> None:
        if masking not in ("static", "dynamic"):
            raise ValueError(f"masking must be 'static' or 'dynamic', got {masking!r}")
        if dupe_factor < 1:
            raise ValueError(f"dupe_factor must be >= 1, got {dupe_factor}")
        self.masking, self.batch_size = masking, batch_size
        self._mask = lambda ids: mask_tokens(ids, special_ids, mask_token_id, vocab_size,
                                             mlm_probability, self._generator)
        self._generator = torch.Generator().manual_seed(seed)
        if masking == "static":
            copies = [dict(data) for _ in range(dupe_factor)]
            for copy in copies:
                copy["input_ids"], copy["labels"] = self._mask(data["input_ids"])
            data = {k: torch.cat([c[k] for c in copies]) for k in copies[0]}
        self.data = data
        self._order = torch.empty(0, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.data["input_ids"])

    def __call__(self) -> dict[str, torch.Tensor]:
        if len(self._order) < self.batch_size:  # a new epoch, in a fresh random order
            self._order = torch.cat([self._order, torch.randperm(len(self), generator=self._generator)])
        index, self._order = self._order[:self.batch_size], self._order[self.batch_size:]
        batch = {k: v[index] for k, v in self.data.items()}
        if self.masking == "dynamic":
            batch["input_ids"], batch["labels"] = self._mask(batch["input_ids"])
        return batch


class MaskedLM(nn.Module):
    """An encoder plus BERT's pre-training heads (Devlin et al., 2019).

    MLM head: dense -> GELU -> LayerNorm -> logits over the vocabulary, the output matrix tied to the
    token embedding table. NSP head (``nsp=True``): the pooler (dense + tanh on ``[CLS]``) and a
    2-way classifier. The encoder returns an object with ``last_hidden_state`` ``(batch, seq, dim)``
    and has its token table at ``encoder.embeddings.token`` (BertEncoder) or ``encoder.token``.
    """

    def __init__(self, encoder: nn.Module, dim: int, nsp: bool = False, layer_norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.encoder = encoder
        table = encoder.embeddings.token if hasattr(encoder, "embeddings") else encoder.token
        self.transform = nn.Linear(dim, dim)
        self.transform_norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.decoder_bias = nn.Parameter(torch.zeros(table.num_embeddings))
        self._table = [table]  # a list, so the tied table is not registered twice
        if nsp:
            self.pooler = nn.Linear(dim, dim)
            self.nsp_head = nn.Linear(dim, 2)
        self.nsp = nsp

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states ``(batch, seq, dim)``; pass them to :meth:`mlm_logits` / :meth:`nsp_logits`."""
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.encoder(input_ids, attention_mask, **kwargs).last_hidden_state

    def mlm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` hidden states -> ``(..., vocab)`` logits."""
        h = self.transform_norm(nn.functional.gelu(self.transform(hidden)))
        return h @ self._table[0].weight.T + self.decoder_bias

    def nsp_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(batch, seq, dim)`` -> ``(batch, 2)`` (is next, not next) from the ``[CLS]`` vector."""
        if not self.nsp:
            raise ValueError("this model was built without the NSP head (nsp=False)")
        return self.nsp_head(torch.tanh(self.pooler(hidden[:, 0])))


def init_weights(model: nn.Module, std: float = 0.02) -> nn.Module:
    """BERT's initialisation: normal(0, std) weights, zero biases, LayerNorm/RMSNorm gains of 1.

    PyTorch's defaults (N(0, 1) embeddings) make tied output logits far too large at the start.
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def pretraining_loss(model: MaskedLM, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """MLM cross-entropy on the labelled positions (+ NSP cross-entropy when the batch has labels).

    Logits are computed only at the masked positions (~15%), which saves most of the output layer.
    Returns ``(loss, {"mlm_loss", "mlm_accuracy"[, "nsp_loss", "nsp_accuracy"]})``.
    """
    hidden = model(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"))
    selected = batch["labels"] != IGNORE_INDEX
    logits = model.mlm_logits(hidden[selected])
    targets = batch["labels"][selected]
    loss = nn.functional.cross_entropy(logits, targets)
    parts = {"mlm_loss": loss.item(), "mlm_accuracy": (logits.argmax(-1) == targets).float().mean().item()}
    if "next_sentence_label" in batch and model.nsp:
        nsp_logits = model.nsp_logits(hidden)
        nsp_loss = nn.functional.cross_entropy(nsp_logits, batch["next_sentence_label"])
        loss = loss + nsp_loss
        parts["nsp_loss"] = nsp_loss.item()
        parts["nsp_accuracy"] = (nsp_logits.argmax(-1) == batch["next_sentence_label"]).float().mean().item()
    return loss, parts


@torch.no_grad()
def evaluate_mlm(model: MaskedLM, batches: Sequence[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Masked-token accuracy and loss over pre-masked batches (each with ``labels``)."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    for batch in batches:
        hidden = model(batch["input_ids"], batch.get("attention_mask"), batch.get("token_type_ids"))
        selected = batch["labels"] != IGNORE_INDEX
        logits = model.mlm_logits(hidden[selected])
        targets = batch["labels"][selected]
        loss_sum += nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        correct += (logits.argmax(-1) == targets).sum().item()
        total += targets.numel()
    model.train(was_training)
    return {"accuracy": correct / total, "loss": loss_sum / total, "masked_tokens": total}


def pretrain(
    model: MaskedLM,
    next_batch: Callable[[], dict[str, torch.Tensor]],
    steps: int,
    lr: float = 1e-3,
    warmup: float = 0.1,
    weight_decay: float = 0.01,
    evaluate: Callable[[MaskedLM], dict[str, float]] | None = None,
    eval_every: int = 0,
    desc: str = "pre-training",
    threads: int | None = 1,
) -> dict[str, list]:
    """AdamW with linear warm-up and decay for ``steps`` batches from ``next_batch()``.

    ``threads``: PyTorch threads while training (restored afterwards). Tiny models are dominated
    by per-operation overhead, so one thread is as fast as two, and much faster on a busy machine;
    ``None`` keeps the current setting.

    Returns a history: per step the loss parts of :func:`pretraining_loss`; ``eval`` a list of
    ``(step, evaluate(model))`` every ``eval_every`` steps and at the end; ``seconds`` of training
    (evaluation excluded) and ``steps_per_second``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warm = max(1, int(warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm))))
    history: dict[str, list] = {"eval": []}
    seconds = 0.0
    model.train()
    with torch_threads(threads):
        for step in tqdm(range(1, steps + 1), desc=desc, ascii=True, mininterval=10.0):
            start = time.perf_counter()
            loss, parts = pretraining_loss(model, next_batch())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            seconds += time.perf_counter() - start
            for key, value in parts.items():
                history.setdefault(key, []).append(value)
            if evaluate is not None and ((eval_every and step % eval_every == 0) or step == steps):
                history["eval"].append((step, evaluate(model)))
                model.train()
    model.eval()
    history["seconds"] = [seconds]
    history["steps_per_second"] = [steps / seconds if seconds > 0 else math.inf]
    return history


def tokenize_documents(tokenizer, texts: Sequence[str]) -> list[list[list[int]]]:
    """Per document, per sentence (:func:`split_sentences`), the token ids (no special tokens).

    ``tokenizer`` is a ``tokenizers.Tokenizer``.
    """
    docs = []
    for text in texts:
        sentences = split_sentences(text)
        docs.append([e.ids for e in tokenizer.encode_batch(sentences, add_special_tokens=False)])
    return docs


def count_baselines(train_docs: Sequence[Sequence[Sequence[int]]], inputs: torch.Tensor, labels: torch.Tensor,
                    vocab_size: int) -> dict[str, float]:
    """What counting alone reaches on masked targets: the trivial baselines every MLM must beat.

    ``train_docs``: per document, per sentence, the training token ids. ``inputs``/``labels``
    ``(n, seq)``: the masked test sequences and their labels (``-100`` where not a target).

    * ``unigram_accuracy``: always predict the most frequent training token;
    * ``unigram_loss``: cross-entropy (nats) of the training unigram distribution (add-one smoothed);
    * ``bigram_accuracy``: predict the most frequent successor, in the training text, of the left
      neighbour *as the model sees it* (the masked input: a ``[MASK]`` or an unseen left neighbour
      falls back to the most frequent token).
    """
    check_tensor(inputs, "inputs")
    if inputs.shape != labels.shape:
        raise ValueError(f"inputs and labels must have the same shape, got {tuple(inputs.shape)} and "
                         f"{tuple(labels.shape)}")
    unigram: Counter[int] = Counter()
    successors: dict[int, Counter[int]] = {}
    for doc in train_docs:
        flat = [t for sentence in doc for t in sentence]
        unigram.update(flat)
        for a, b in zip(flat, flat[1:]):
            successors.setdefault(a, Counter())[b] += 1
    if not unigram:
        raise ValueError("train_docs holds no tokens")
    top = unigram.most_common(1)[0][0]
    best_next = {a: c.most_common(1)[0][0] for a, c in successors.items()}
    rows, cols = (labels != IGNORE_INDEX).nonzero(as_tuple=True)
    if len(rows) == 0:
        raise ValueError("labels hold no target (every label is -100)")
    targets = labels[rows, cols]
    left = inputs[rows, (cols - 1).clamp(min=0)].tolist()
    bigram = torch.tensor([best_next.get(a, top) for a in left])
    total = sum(unigram.values())
    log_p = torch.tensor([math.log((unigram[t] + 1) / (total + vocab_size)) for t in targets.tolist()])
    return {"unigram_accuracy": (targets == top).float().mean().item(), "unigram_loss": -log_p.mean().item(),
            "bigram_accuracy": (bigram == targets).float().mean().item(), "targets": len(targets)}


RECIPES = {  # Devlin et al. (2019) vs Liu et al. (2019): inputs, masking, NSP
    "bert": {"inputs": "segment-pair", "masking": "static", "nsp": True},
    "roberta": {"inputs": "full-sentences", "masking": "dynamic", "nsp": False},
}


def lee_pretraining(recipe: str, tokenizer_json: str, *, encoder: str = "original", inputs: str | None = None,
                    masking: str | None = None, dupe_factor: int = 1, nsp: bool | None = None, dim: int = 64,
                    layers: int = 2, heads: int = 4, max_len: int = 64, batch_size: int = 32,
                    steps: int = 400, lr: float = 3e-3, warmup: float = 0.1, n_train: int = 270,
                    eval_every: int = 50, seed: int = 0, memorisation: int = 0) -> dict:
    """Pre-train a tiny encoder on gensim's news articles with BERT's or RoBERTa's recipe, or one factor changed.

    ``recipe="bert"``: static masking, SEGMENT-PAIR inputs with next-sentence prediction, two
    segment embeddings. ``recipe="roberta"``: dynamic masking, FULL-SENTENCES inputs, no NSP, one
    segment embedding. ``inputs`` (``"segment-pair"``/``"full-sentences"``), ``masking``
    (``"static"``/``"dynamic"``), ``dupe_factor`` (static masks per sequence; BERT used 10) and
    ``nsp`` override the recipe's choice, one factor at a time. ``encoder="original"`` is the
    post-norm BERT encoder (:mod:`beyondbert.bert`), ``"modern"`` the Transformer++ encoder
    (:mod:`beyondbert.modern`). The first ``n_train`` articles train; the rest are cut into
    FULL-SENTENCES blocks whose masks are drawn once (seed ``1234 + seed``), the same held-out test
    for every run of a seed.

    ``memorisation``: if > 0, the model is also evaluated on that many training sequences, with the
    masks it was trained on (for static masking, its first copy) and with fresh masks of the same
    sequences: a model that memorised its masks does better on the first.

    Returns ``{"history", "state_dict", "n_parameters", "train_sequences", "eval_masked_tokens",
    "settings"}`` (+ ``"memorisation": {"training_masks", "fresh_masks"}``).
    """
    from tokenizers import Tokenizer

    from .bert import BertConfig, BertEncoder
    from .modern import ModernEncoder, count_parameters
    from .seeding import seed_everything
    from .tokenization import news_corpus

    if recipe not in RECIPES:
        raise ValueError(f"recipe must be 'bert' or 'roberta', got {recipe!r}")
    settings = {**RECIPES[recipe], **{k: v for k, v in (("inputs", inputs), ("masking", masking), ("nsp", nsp))
                                       if v is not None}}
    if settings["inputs"] not in ("segment-pair", "full-sentences"):
        raise ValueError(f"inputs must be 'segment-pair' or 'full-sentences', got {settings['inputs']!r}")
    if settings["nsp"] and settings["inputs"] != "segment-pair":
        raise ValueError("next-sentence prediction needs segment-pair inputs")
    if encoder not in ("original", "modern"):
        raise ValueError(f"encoder must be 'original' or 'modern', got {encoder!r}")
    pairs_input = settings["inputs"] == "segment-pair"
    if encoder == "modern" and pairs_input:
        raise ValueError("the modern encoder has no segment embeddings: use full-sentences inputs")
    tok = Tokenizer.from_str(tokenizer_json)
    cls, sep, pad, mask = (tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]"))
    vocab, special = tok.get_vocab_size(), [pad, cls, sep]
    texts = news_corpus()
    train_docs, test_docs = tokenize_documents(tok, texts[:n_train]), tokenize_documents(tok, texts[n_train:])

    seed_everything(seed, threads=None)
    if pairs_input:
        pairs = nsp_pairs(train_docs, max_len, random.Random(seed))
        data = encode_segments([(a, b) for a, b, _ in pairs], max_len, cls, sep, pad)
        if settings["nsp"]:
            data["next_sentence_label"] = torch.tensor([label for _, _, label in pairs])
    else:
        blocks = full_sentences(train_docs, max_len, sep)
        data = encode_segments([(b,) for b in blocks], max_len, cls, sep, pad)
        del data["token_type_ids"]
    batches = MaskedBatches(data, batch_size, special, mask, vocab, masking=settings["masking"],
                            dupe_factor=dupe_factor if settings["masking"] == "static" else 1, seed=seed)

    test = encode_segments([(b,) for b in full_sentences(test_docs, max_len, sep)], max_len, cls, sep, pad)
    del test["token_type_ids"]
    test["input_ids"], test["labels"] = mask_tokens(test["input_ids"], special, mask, vocab,
                                                    generator=torch.Generator().manual_seed(1234 + seed))
    test_batches = [{k: v[i:i + 64] for k, v in test.items()} for i in range(0, len(test["input_ids"]), 64)]

    if encoder == "original":
        cfg = BertConfig(vocab_size=vocab, hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=4 * dim, max_position_embeddings=max_len,
                         type_vocab_size=2 if pairs_input else 1, pad_token_id=pad)
        body = BertEncoder(cfg)
    else:
        body = ModernEncoder(vocab, dim, layers, heads, max_len, pad_token_id=pad)
    model = init_weights(MaskedLM(body, dim, nsp=bool(settings["nsp"])))
    label = f"{settings['inputs']}, {settings['masking']}" + (f" x{dupe_factor}" if settings["masking"] == "static" else "")
    history = pretrain(model, batches, steps, lr=lr, warmup=warmup, evaluate=lambda m: evaluate_mlm(m, test_batches),
                       eval_every=eval_every, desc=f"{label}{', NSP' if settings['nsp'] else ''}, {encoder}")
    result = {"history": history, "state_dict": model.state_dict(), "n_parameters": count_parameters(model),
              "train_sequences": len(batches), "eval_masked_tokens": history["eval"][-1][1]["masked_tokens"],
              "settings": {**settings, "dupe_factor": dupe_factor, "encoder": encoder}}
    if memorisation:
        n = min(memorisation, len(data["input_ids"]))
        seen = {k: v[:n] for k, v in batches.data.items()}  # static: the first copy, as trained
        if settings["masking"] == "dynamic":  # no mask is ever reused: any draw is as fresh as another
            seen["input_ids"], seen["labels"] = mask_tokens(data["input_ids"][:n], special, mask, vocab,
                                                            generator=torch.Generator().manual_seed(seed))
        fresh = {k: v[:n] for k, v in data.items()}
        fresh["input_ids"], fresh["labels"] = mask_tokens(fresh["input_ids"], special, mask, vocab,
                                                          generator=torch.Generator().manual_seed(4321 + seed))
        split = lambda d: [{k: v[i:i + 64] for k, v in d.items() if k != "next_sentence_label"}  # noqa: E731
                           for i in range(0, n, 64)]
        with torch_threads(1):
            result["memorisation"] = {"training_masks": evaluate_mlm(model, split(seen)),
                                      "fresh_masks": evaluate_mlm(model, split(fresh))}
    return result
