"""From-scratch BERT (beyondbert.bert) vs transformers.BertModel on all-MiniLM-L6-v2.

Prints a table: time per batch for each, their ratio, and the max absolute difference of the
last hidden state. Not a pass/fail test: run `make benchmark`.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

from beyondbert.bert import BertEncoder  # noqa: E402
from beyondbert.models import default_encoder_path, load_encoder  # noqa: E402
from beyondbert.seeding import seed_everything  # noqa: E402

REPEATS = 20


def _time(fn) -> float:
    """Median seconds of REPEATS calls after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    seed_everything(0)
    tokenizer, hf_eager = load_encoder(attn_implementation="eager")
    _, hf_sdpa = load_encoder(attn_implementation="sdpa")
    ours = BertEncoder.from_pretrained(default_encoder_path())
    sentences = [f"Sentence number {i} talks about river banks and bank accounts." * (1 + i % 3)
                 for i in range(32)]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    rows = []
    with torch.inference_mode():
        reference = hf_eager(**batch).last_hidden_state
        t_ours = _time(lambda: ours(ids, mask, types))
        error = (ours(ids, mask, types).last_hidden_state - reference).abs().max().item()
        for label, model in (("transformers (eager)", hf_eager), ("transformers (sdpa)", hf_sdpa)):
            t_ref = _time(lambda: model(**batch))
            rows.append((label, t_ref, t_ours / t_ref))
    print(f"batch: {ids.shape[0]} sequences x {ids.shape[1]} tokens, {torch.get_num_threads()} threads, "
          f"median of {REPEATS}")
    print(f"{'model':<24}{'ms/batch':>10}{'ours/this':>11}")
    print(f"{'beyondbert.bert':<24}{t_ours * 1e3:>10.1f}{1.0:>11.2f}")
    for label, t_ref, ratio in rows:
        print(f"{label:<24}{t_ref * 1e3:>10.1f}{ratio:>11.2f}")
    print(f"max |ours - transformers| on last_hidden_state: {error:.2e}")


if __name__ == "__main__":
    main()
