"""Binary / int8 embeddings: parity with sentence-transformers' quantize_embeddings and FAISS's
binary index, Hamming top-k against brute force, rescoring, bad inputs."""

import numpy as np
import pytest
import torch

from beyondbert.embedding_quantization import (dequantize_int8, hamming_distances, hamming_topk,
                                               index_bytes, int8_ranges, quantize_binary,
                                               quantize_int8, rescore, search, unpack_binary)

RNG = np.random.default_rng(0)
EMB = RNG.standard_normal((40, 24)).astype(np.float32)
QUERIES = RNG.standard_normal((5, 24)).astype(np.float32)


def test_binary_matches_sentence_transformers_ubinary():
    from sentence_transformers import quantize_embeddings

    ref = quantize_embeddings(EMB, precision="ubinary")
    assert np.array_equal(quantize_binary(EMB), ref)  # exact: both are packbits(x > 0)
    assert np.array_equal(quantize_binary(torch.from_numpy(EMB)), ref)  # tensors accepted


def test_binary_pads_odd_dimensions_and_unpacks_to_signs():
    x = np.array([[0.5, -1.0, 2.0, 0.0, -3.0, 1.0, 1.0, -1.0, 4.0, -2.0]], dtype=np.float32)
    packed = quantize_binary(x)
    assert packed.shape == (1, 2) and packed.dtype == np.uint8
    assert packed[0, 0] == 0b10100110 and packed[0, 1] == 0b10000000  # 0.0 is not > 0
    assert np.array_equal(unpack_binary(packed, 10)[0], np.where(x[0] > 0, 1.0, -1.0))


def test_int8_matches_sentence_transformers_with_calibration():
    from sentence_transformers import quantize_embeddings

    calibration = RNG.standard_normal((200, 24)).astype(np.float32)
    ref = quantize_embeddings(EMB, precision="int8", calibration_embeddings=calibration)
    ours = quantize_int8(EMB, int8_ranges(calibration))
    assert ours.dtype == np.int8 and np.array_equal(ours, ref)  # exact integer codes


def test_int8_dequantize_error_is_at_most_half_a_step():
    ranges = int8_ranges(EMB)
    back = dequantize_int8(quantize_int8(EMB, ranges), ranges)
    step = (ranges[1] - ranges[0]) / 255
    # inside the calibration range every value lands within half a bin of its code's centre,
    # except the maximum, which is clipped into the last bin (error up to one step)
    assert np.all(np.abs(back - EMB) <= step * 1.0001)
    assert np.mean(np.abs(back - EMB) <= step / 2 + 1e-6) > 0.95


def test_hamming_matches_brute_force_and_faiss():
    import faiss

    q, d = quantize_binary(QUERIES), quantize_binary(EMB)
    bits_q, bits_d = np.unpackbits(q, axis=1), np.unpackbits(d, axis=1)
    brute = (bits_q[:, None, :] != bits_d[None, :, :]).sum(-1)
    assert np.array_equal(hamming_distances(q, d), brute)
    index = faiss.IndexBinaryFlat(8 * d.shape[1])
    index.add(d)
    faiss_dist, _ = index.search(q, 7)
    ours_dist, ours_idx = hamming_topk(q, d, 7)
    assert np.array_equal(ours_dist, faiss_dist)  # distances equal; ties may be ordered differently
    assert np.array_equal(np.take_along_axis(brute, ours_idx, 1), ours_dist)


def test_hamming_topk_breaks_ties_by_lower_index():
    d = np.array([[0b1111_0000], [0b0000_0000], [0b1111_0000], [0b1000_0000]], dtype=np.uint8)
    dist, idx = hamming_topk(np.array([[0b1111_0000]], dtype=np.uint8), d, 3)
    assert idx.tolist() == [[0, 2, 3]] and dist.tolist() == [[0, 0, 3]]


def test_rescore_reorders_candidates_by_float_query():
    docs = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    scores, idx = rescore(np.array([[0.0, 1.0]]), docs, np.array([[0, 2, 1]]), k=2)
    assert idx.tolist() == [[1, 2]] and np.allclose(scores, [[1.0, 0.8]])


def test_search_float32_is_exact_and_rescoring_recovers_it():
    seed = np.random.default_rng(1)
    docs = seed.standard_normal((500, 64)).astype(np.float32)
    queries = docs[:20] + 0.6 * seed.standard_normal((20, 64)).astype(np.float32)
    exact = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :10]
    assert np.array_equal(search(queries, docs, 10)[1], exact)
    overlap = {}
    for precision in ("int8", "binary"):
        for m in (None, 4):
            idx = search(queries, docs, 10, precision, rescore_multiplier=m)[1]
            overlap[precision, m] = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, exact)])
    assert overlap["int8", None] > overlap["binary", None]  # 8 bits per dimension beat 1
    assert overlap["int8", 4] > 0.95  # int8 codes re-scored with the float query: nearly exact
    assert overlap["binary", 4] > overlap["binary", None]  # rescoring helps binary search


def test_index_bytes_ratios():
    assert index_bytes(1000, 384, "float32") == 32 * index_bytes(1000, 384, "binary")
    assert index_bytes(1000, 384, "float32") == 4 * index_bytes(1000, 384, "int8")


def test_bad_inputs():
    with pytest.raises(ValueError, match="positive int"):
        hamming_topk(quantize_binary(QUERIES), quantize_binary(EMB), 0)
    with pytest.raises(ValueError, match="empty"):
        search(QUERIES, np.zeros((0, 24), dtype=np.float32), 3)
    with pytest.raises(ValueError, match="precision must be one of"):
        search(QUERIES, EMB, 3, precision="int4")
    with pytest.raises(TypeError, match="floats"):
        quantize_binary(quantize_int8(EMB, int8_ranges(EMB)))
    with pytest.raises(ValueError, match=r"shape \(2, dim\)"):
        quantize_int8(EMB, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="bytes per vector"):
        hamming_distances(quantize_binary(QUERIES), quantize_binary(EMB[:, :16]))
    with pytest.raises(ValueError, match="rescore_multiplier"):
        search(QUERIES, EMB, 3, "binary", rescore_multiplier=0)
