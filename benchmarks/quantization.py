"""Quantization benchmark: fp32 vs dynamic-int8 MiniLM, and per-tensor vs per-channel error.

Prints, in one run:
1. all-MiniLM-L6-v2 in fp32 and with dynamic int8 Linear layers (PyTorch's kernels, per-channel
   and per-tensor weight scales): sentences per second, model bytes, and similarity quality
   (Spearman x 100 on SimLex-999 and on the 50 Lee documents; mean cosine to the fp32 vectors);
2. the relative reconstruction error of MiniLM's Linear weights, symmetric per-tensor vs
   per-channel, at 8, 4 and 2 bits.

Usage: python benchmarks/quantization.py [--threads 2] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import platform

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from beyondbert.data import lee_documents, lee_similarities, pang_lee_polarity, simlex999  # noqa: E402
from beyondbert.quantization import (dequantize, model_size_bytes, quantize_tensor,  # noqa: E402
                                     torch_dynamic_int8)
from beyondbert.sbert import evaluate_sts, load_sentence_encoder  # noqa: E402
from beyondbert.seeding import seed_everything  # noqa: E402
from beyondbert.timing import compare_speed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7,
                        help="interleaved timing rounds after one warm-up (the median ratio is reported)")
    args = parser.parse_args()
    seed_everything(0, threads=args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, engine "
          f"{torch.backends.quantized.engine}, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}\n")

    encoder = load_sentence_encoder()
    models = {
        "fp32": encoder,
        "int8 dynamic per-channel": torch_dynamic_int8(encoder, per_channel=True),
        "int8 dynamic per-tensor": torch_dynamic_int8(encoder, per_channel=False),
    }
    sentences, _ = pang_lee_polarity()
    speed = compare_speed({name: (lambda m=model: m.encode(sentences, batch_size=64))
                           for name, model in models.items()}, rounds=args.rounds, warmup=1)
    vectors = {name: model.encode(sentences, batch_size=64) for name, model in models.items()}
    docs, human = lee_documents(), lee_similarities()
    upper = np.triu_indices(len(docs), k=1)
    simlex = simlex999()

    header = (f"{'model':<26}{'sentences/s':>12}{'speed-up':>10}{'MB':>8}{'SimLex rho':>12}"
              f"{'Lee rho':>9}{'cos to fp32':>13}")
    print(header)
    print("-" * len(header))
    for name, model in models.items():
        rate = len(sentences) / speed.median(name)
        doc_vectors = model.encode(docs, batch_size=16)
        lee = 100 * spearmanr((doc_vectors @ doc_vectors.T).numpy()[upper], human[upper]).statistic
        cosine = float((vectors[name] * vectors["fp32"]).sum(dim=1).mean())
        print(f"{name:<26}{rate:>12.0f}{speed.ratio('fp32', name):>10.2f}{model_size_bytes(model) / 1e6:>8.1f}"
              f"{evaluate_sts(simlex, model):>12.1f}{lee:>9.1f}{cosine:>13.4f}")
    print(f"\n(encoding {len(sentences)} sentences in batches of 64; speed-up = median over "
          f"{args.rounds} interleaved rounds of fp32 time / model time)\n")

    linears = [m for name, m in encoder.model.named_modules()
               if isinstance(m, torch.nn.Linear) and name.startswith("encoder.")]
    print("MiniLM Linear weights (36 matrices), symmetric quantization, relative error ||W - W_hat|| / ||W||")
    print(f"{'bits':>4}{'per-tensor':>12}{'per-channel':>13}{'ratio':>8}")
    for bits in (8, 4, 2):
        squared = {None: 0.0, 0: 0.0}
        total = 0.0
        for layer in linears:
            w = layer.weight.detach()
            total += float(w.pow(2).sum())
            for axis in squared:
                q, scale, zero_point = quantize_tensor(w, bits, symmetric=True, axis=axis)
                squared[axis] += float((dequantize(q, scale, zero_point, axis) - w).pow(2).sum())
        per_tensor, per_channel = (100 * (squared[a] / total) ** 0.5 for a in (None, 0))
        print(f"{bits:>4}{per_tensor:>11.2f}%{per_channel:>12.2f}%{per_tensor / per_channel:>8.1f}")


if __name__ == "__main__":
    main()
