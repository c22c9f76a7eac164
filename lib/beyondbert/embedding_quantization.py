"""Binary and int8 embeddings: quantize, search by Hamming distance or int8 dot product, rescore.

The recipe of Hugging Face's embedding-quantization post (Shakir, Aarsen & Lee, 2024), written out:

- **binary**: keep one bit per dimension, ``x > 0`` (32x smaller than float32); bits are packed
  8 to a byte (``numpy.packbits``) and compared with the Hamming distance, the number of differing
  bits (an XOR and a popcount);
- **int8**: map each dimension's calibration range ``[min, max]`` onto 256 levels (4x smaller);
- **rescoring**: fetch ``k * multiplier`` candidates with the cheap codes, then re-score just those
  with the float32 query against the documents' quantized vectors, and keep the best ``k``.

Arrays are NumPy (FAISS's currency); torch tensors are accepted and converted. Model-weight
quantization lives elsewhere (``beyondbert.quantization``); this module is about stored vectors.
"""

from __future__ import annotations

import numpy as np

PRECISIONS = ("float32", "int8", "binary")


def _as_float_matrix(x, name: str) -> np.ndarray:
    """A float (n, dim) NumPy matrix from an array or tensor, or a clear error."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (n, dim) with dim > 0, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} must hold floats (embeddings before quantization), got {x.dtype}")
    return x.astype(np.float32, copy=False)


def _check_codes(x, name: str, dtype) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype != dtype or x.ndim != 2:
        got = f"{type(x).__name__} {getattr(x, 'dtype', '')} {getattr(x, 'shape', '')}"
        raise TypeError(f"{name} must be a 2-d numpy {np.dtype(dtype).name} array, got {got}")
    return x


def _check_k(k: int, n: int) -> int:
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or k <= 0:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if n == 0:
        raise ValueError("the corpus is empty: nothing to search")
    return min(int(k), n)


def quantize_binary(embeddings) -> np.ndarray:
    """Sign bits packed 8 per byte: (n, dim) floats -> (n, ceil(dim / 8)) uint8.

    Bit = 1 where the value is > 0 (``quantize_embeddings(..., "ubinary")`` in
    sentence-transformers). A dimension not divisible by 8 is padded with zero bits.
    """
    x = _as_float_matrix(embeddings, "embeddings")
    return np.packbits(x > 0, axis=-1)


def unpack_binary(packed: np.ndarray, dim: int) -> np.ndarray:
    """Packed bits (n, ceil(dim / 8)) uint8 -> (n, dim) float32 of +1 / -1 (bit 1 / bit 0)."""
    _check_codes(packed, "packed", np.uint8)
    if not 0 < dim <= 8 * packed.shape[1]:
        raise ValueError(f"dim must be in 1..{8 * packed.shape[1]}, got {dim}")
    bits = np.unpackbits(packed, axis=-1)[:, :dim]
    return bits.astype(np.float32) * 2 - 1


def int8_ranges(calibration) -> np.ndarray:
    """Per-dimension ``[min, max]`` of a calibration set: (n, dim) -> (2, dim) float32."""
    x = _as_float_matrix(calibration, "calibration")
    if x.shape[0] == 0:
        raise ValueError("calibration needs at least one embedding")
    return np.stack([x.min(axis=0), x.max(axis=0)])


def _steps(ranges: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape != (2, dim):
        raise ValueError(f"ranges must have shape (2, dim) = (2, {dim}), got {ranges.shape}")
    steps = (ranges[1] - ranges[0]) / 255
    return ranges[0], np.where(steps == 0, 1, steps)


def quantize_int8(embeddings, ranges: np.ndarray) -> np.ndarray:
    """Scalar (affine) quantization to int8: (n, dim) floats -> (n, dim) int8.

    Each dimension's calibration range ``ranges[:, j] = (min, max)`` is cut into 256 equal bins;
    a value gets its bin's index ``floor((x - min) / step)``, clipped to 0..255, minus 128
    (``quantize_embeddings(..., "int8", ranges=...)`` in sentence-transformers).
    """
    x = _as_float_matrix(embeddings, "embeddings")
    starts, steps = _steps(ranges, x.shape[1])
    levels = np.clip(np.floor((x - starts) / steps), 0, 255)
    return (levels - 128).astype(np.int8)


def dequantize_int8(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Back to float32, each code at the centre of its bin: (n, dim) int8 -> (n, dim) float32."""
    _check_codes(codes, "codes", np.int8)
    starts, steps = _steps(ranges, codes.shape[1])
    return starts + (codes.astype(np.float32) + 128 + 0.5) * steps


def hamming_distances(query_bits: np.ndarray, doc_bits: np.ndarray) -> np.ndarray:
    """Number of differing bits, XOR then popcount: (n_q, B) and (n_d, B) uint8 -> (n_q, n_d) int."""
    _check_codes(query_bits, "query_bits", np.uint8)
    _check_codes(doc_bits, "doc_bits", np.uint8)
    if query_bits.shape[1] != doc_bits.shape[1]:
        raise ValueError(f"queries have {query_bits.shape[1]} bytes per vector, documents "
                         f"{doc_bits.shape[1]}: they must match")
    out = np.empty((len(query_bits), len(doc_bits)), dtype=np.int32)
    step = max(1, 2**25 // max(1, doc_bits.size))  # queries per block: the XOR block stays ~32 MB
    for start in range(0, len(query_bits), step):
        xor = query_bits[start:start + step, None, :] ^ doc_bits[None, :, :]
        out[start:start + step] = np.bitwise_count(xor).sum(axis=-1)
    return out


def _top_k(scores: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` per row, ties broken by the lower document index (a stable sort)."""
    order = np.argsort(-scores if largest else scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def hamming_topk(query_bits: np.ndarray, doc_bits: np.ndarray, k: int):
    """The ``k`` nearest documents by Hamming distance -> (distances, indices), each (n_q, k).

    Ties go to the lower document index.
    """
    k = _check_k(k, len(doc_bits))
    return _top_k(hamming_distances(query_bits, doc_bits), k, largest=False)


def rescore(query_embeddings, doc_vectors: np.ndarray, candidates: np.ndarray, k: int):
    """Re-rank each query's candidates by float32 query · document vector; keep the best ``k``.

    ``query_embeddings`` (n_q, dim) float; ``doc_vectors`` (n_d, dim) float32, e.g.
    :func:`unpack_binary` or :func:`dequantize_int8` of the stored codes; ``candidates``
    (n_q, c) document indices. Returns (scores, indices), each (n_q, min(k, c)).
    """
    q = _as_float_matrix(query_embeddings, "query_embeddings")
    candidates = np.asarray(candidates)
    if candidates.ndim != 2 or len(candidates) != len(q):
        raise ValueError(f"candidates must have shape (n_queries={len(q)}, c), got "
                         f"{candidates.shape}")
    k = _check_k(k, candidates.shape[1])
    scores = np.einsum("qd,qcd->qc", q, doc_vectors[candidates])
    best_scores, order = _top_k(scores, k, largest=True)
    return best_scores, np.take_along_axis(candidates, order, axis=1)


def index_bytes(n: int, dim: int, precision: str) -> int:
    """Bytes the stored vectors of an exhaustive index take (no overhead counted)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    per_vector = {"float32": 4 * dim, "int8": dim, "binary": (dim + 7) // 8}[precision]
    return n * per_vector


def search(query_embeddings, doc_embeddings, k: int, precision: str = "float32",
           rescore_multiplier: int | None = None, ranges: np.ndarray | None = None):
    """Exhaustive top-``k`` search with float32, int8 or binary document vectors.

    float32: dot product (cosine for normalised vectors). int8: the query is quantized with the
    same ranges (``ranges`` or the documents' own) and scored by the int8 dot product. binary:
    Hamming distance of the sign bits (scores are ``-distance``). With ``rescore_multiplier`` m,
    the top ``k * m`` candidates are re-scored with the float32 query (:func:`rescore`).
    Returns (scores (n_q, k) float32, indices (n_q, k) int64).
    """
    q = _as_float_matrix(query_embeddings, "query_embeddings")
    d = _as_float_matrix(doc_embeddings, "doc_embeddings")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"queries are {q.shape[1]}-d but documents {d.shape[1]}-d")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    k = _check_k(k, len(d))
    if rescore_multiplier is not None and (not isinstance(rescore_multiplier, int)
                                           or rescore_multiplier < 1):
        raise ValueError(f"rescore_multiplier must be a positive int or None, got "
                         f"{rescore_multiplier!r}")
    depth = min(len(d), k * (rescore_multiplier or 1))
    if precision == "float32":
        scores, idx = _top_k(q @ d.T, depth, largest=True)
        doc_vectors = d
    elif precision == "int8":
        ranges = int8_ranges(d) if ranges is None else ranges
        codes = quantize_int8(d, ranges)
        scores = quantize_int8(q, ranges).astype(np.int32) @ codes.astype(np.int32).T
        scores, idx = _top_k(scores, depth, largest=True)
        doc_vectors = dequantize_int8(codes, ranges) if rescore_multiplier else None
    else:
        bits = quantize_binary(d)
        distances, idx = hamming_topk(quantize_binary(q), bits, depth)
        scores = -distances
        doc_vectors = unpack_binary(bits, d.shape[1]) if rescore_multiplier else None
    if rescore_multiplier and precision != "float32":
        return rescore(q, doc_vectors, idx, k)
    return scores[:, :k].astype(np.float32), idx[:, :k].astype(np.int64)
