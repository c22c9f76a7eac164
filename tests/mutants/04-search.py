"""Wrong answers to exercise 04 (NDCG/recall, MaxSim, binary search); each must lose points.

MUTANTS: mutant name -> {grade_id of an answer cell: the source that replaces that cell}.
FAILING: mutant name -> the graded test cells that must fail (all others must pass).
tests/test_exercises.py fills the student version with the solution's answers, swaps in a
mutant's cells, autogrades it and checks both.
"""

MUTANTS = {
    # DCG without dividing by the ideal DCG: not between 0 and 1
    "ndcg_without_ideal_normalisation": {"ndcg_at_k": '''
def ndcg_at_k(ranking, relevance, k):
    gains = relevance.double()[ranking[:k]]
    discounts = 1.0 / torch.log2(torch.arange(2, len(gains) + 2, dtype=torch.float64))
    return float((gains * discounts).sum())
'''},
    # the ideal ranking built from the retrieved documents only, not from every judgement
    "ndcg_ideal_from_retrieved_only": {"ndcg_at_k": '''
def ndcg_at_k(ranking, relevance, k):
    gains = relevance.double()[ranking[:k]]
    discounts = 1.0 / torch.log2(torch.arange(2, len(gains) + 2, dtype=torch.float64))
    ideal = torch.sort(gains, descending=True).values
    idcg = (ideal * discounts).sum()
    return float((gains * discounts).sum() / idcg) if idcg > 0 else 0.0
'''},
    # discounts by log2(i + 2) for rank i = 1, 2, ...: the first result is already discounted
    "ndcg_discount_off_by_one": {"ndcg_at_k": '''
def ndcg_at_k(ranking, relevance, k):
    discounts = 1.0 / torch.log2(torch.arange(3, k + 3, dtype=torch.float64))
    gains = relevance.double()[ranking[:k]]
    ideal = torch.sort(relevance.double(), descending=True).values[:k]
    idcg = (ideal * discounts[: len(ideal)]).sum()
    return float((gains * discounts[: len(gains)]).sum() / idcg) if idcg > 0 else 0.0
'''},
    # no guard for a query without relevant documents: 0 / 0 = NaN
    "ndcg_nan_without_relevant": {"ndcg_at_k": '''
def ndcg_at_k(ranking, relevance, k):
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    gains = relevance.double()[ranking[:k]]
    ideal = torch.sort(relevance.double(), descending=True).values[:k]
    return float((gains * discounts[: len(gains)]).sum() / (ideal * discounts[: len(ideal)]).sum())
'''},
    # divides by k: that is precision@k, not recall@k
    "recall_divides_by_k": {"recall_at_k": '''
def recall_at_k(ranking, relevance, k):
    if not (relevance > 0).any():
        return 0.0
    return float((relevance[ranking[:k]] > 0).sum()) / k
'''},
    # counts every judged document (grade >= 0) as relevant
    "recall_counts_grade_zero": {"recall_at_k": '''
def recall_at_k(ranking, relevance, k):
    relevant = relevance >= 0
    return float(relevant[ranking[:k]].sum()) / int(relevant.sum())
'''},
    # no guard for a query without relevant documents: 0 / 0
    "recall_nan_without_relevant": {"recall_at_k": '''
def recall_at_k(ranking, relevance, k):
    relevant = relevance > 0
    return float(relevant[ranking[:k]].sum() / relevant.sum())
'''},
    # padded document positions can win the max
    "maxsim_counts_document_padding": {"maxsim": '''
def maxsim(query_vecs, query_mask, doc_vecs, doc_mask):
    best = torch.einsum("qid,njd->qnij", query_vecs, doc_vecs).max(dim=-1).values
    return best.masked_fill(~query_mask.bool()[:, None, :], 0.0).sum(dim=-1)
'''},
    # padded query positions add their best match to the sum
    "maxsim_counts_query_padding": {"maxsim": '''
def maxsim(query_vecs, query_mask, doc_vecs, doc_mask):
    sim = torch.einsum("qid,njd->qnij", query_vecs, doc_vecs)
    sim = sim.masked_fill(~doc_mask.bool()[None, :, None, :], float("-inf"))
    return sim.max(dim=-1).values.sum(dim=-1)
'''},
    # averages over the query tokens instead of summing
    "maxsim_mean_over_query_tokens": {"maxsim": '''
def maxsim(query_vecs, query_mask, doc_vecs, doc_mask):
    sim = torch.einsum("qid,njd->qnij", query_vecs, doc_vecs)
    sim = sim.masked_fill(~doc_mask.bool()[None, :, None, :], float("-inf"))
    keep = query_mask.to(query_vecs.dtype)[:, None, :]
    return (sim.max(dim=-1).values * keep).sum(dim=-1) / keep.sum(dim=-1)
'''},
    # the library's implementation: beyondbert.retrieval is hidden from student code when grading
    "maxsim_imports_beyondbert": {"maxsim": '''
from beyondbert.retrieval import maxsim
'''},
    # x >= 0 instead of x > 0: a zero becomes bit 1
    "binary_zero_is_one": {"binary_quantize": '''
def binary_quantize(embeddings):
    bits = (embeddings >= 0).to(torch.uint8).reshape(len(embeddings), -1, 8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
    return (bits * weights).sum(dim=-1).to(torch.uint8)
'''},
    # the first dimension in the least significant bit
    "binary_little_endian": {"binary_quantize": '''
def binary_quantize(embeddings):
    bits = (embeddings > 0).to(torch.uint8).reshape(len(embeddings), -1, 8)
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)
    return (bits * weights).sum(dim=-1).to(torch.uint8)
'''},
    # a wrapper that calls the library: still no credit
    "binary_wraps_beyondbert": {"binary_quantize": '''
import beyondbert.embedding_quantization


def binary_quantize(embeddings):
    return torch.from_numpy(beyondbert.embedding_quantization.quantize_binary(embeddings))
'''},
    # counts differing bytes instead of differing bits
    "hamming_counts_bytes": {"hamming_topk": '''
def hamming_topk(query_bits, doc_bits, k):
    distances = (query_bits[:, None, :] != doc_bits[None, :, :]).sum(dim=-1).to(torch.int64)
    order = torch.sort(distances, dim=1, stable=True).indices[:, :k]
    return distances.gather(1, order), order
'''},
    # treats the packed bytes as numbers: |q - d| summed over bytes is not a bit count
    "hamming_byte_value_difference": {"hamming_topk": '''
def hamming_topk(query_bits, doc_bits, k):
    diff = query_bits[:, None, :].to(torch.int64) - doc_bits[None, :, :].to(torch.int64)
    distances = diff.abs().sum(dim=-1)
    order = torch.sort(distances, dim=1, stable=True).indices[:, :k]
    return distances.gather(1, order), order
'''},
    # the farthest documents instead of the nearest
    "hamming_largest_first": {"hamming_topk": '''
def hamming_topk(query_bits, doc_bits, k):
    xor = query_bits[:, None, :] ^ doc_bits[None, :, :]
    shifts = torch.arange(8, dtype=torch.uint8)
    distances = ((xor[..., None] >> shifts) & 1).sum(dim=(-1, -2)).to(torch.int64)
    order = torch.sort(distances, dim=1, descending=True, stable=True).indices[:, :k]
    return distances.gather(1, order), order
'''},
    # re-scores every document instead of the candidates
    "rescore_ignores_candidates": {"rescore": '''
def rescore(query, doc_bits, candidates, k):
    shifts = torch.arange(7, -1, -1, dtype=torch.uint8)
    bits = ((doc_bits[..., None] >> shifts) & 1).reshape(len(doc_bits), -1)
    scores = query @ (bits.to(query.dtype) * 2 - 1).T
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
'''},
    # keeps the first stage's order: no rescoring at all
    "rescore_keeps_first_stage_order": {"rescore": '''
def rescore(query, doc_bits, candidates, k):
    return candidates[:, :k].clone()
'''},
    # zeroes the padded document vectors but ignores the query mask
    "maxsim_zeroes_doc_padding_only": {"maxsim": '''
def maxsim(query_vecs, query_mask, doc_vecs, doc_mask):
    docs = doc_vecs * doc_mask.to(doc_vecs.dtype)[..., None]
    sim = torch.einsum("qid,njd->qnij", query_vecs, docs)
    return sim.max(dim=-1).values.sum(dim=-1)
'''},
    # a NumPy float instead of a Python float: plain() keeps the type, so the visible tests see it
    "ndcg_returns_tensor": {"ndcg_at_k": '''
def ndcg_at_k(ranking, relevance, k):
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    gains = relevance.double()[ranking[:k]]
    dcg = (gains * discounts[: len(gains)]).sum()
    ideal = torch.sort(relevance.double(), descending=True).values[:k]
    idcg = (ideal * discounts[: len(ideal)]).sum()
    return dcg / idcg if idcg > 0 else torch.tensor(0.0)
'''},
    # ----------------------------------------------------------------------- task 4: Matryoshka
    # normalises the full vector, then truncates: rows shorter than 1
    "matryoshka_normalise_first": {"matryoshka_truncate": '''
def matryoshka_truncate(embeddings, dim):
    return F_normalize(embeddings)[:, :dim]


def F_normalize(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
'''},
    # truncates without normalising again
    "matryoshka_no_renormalisation": {"matryoshka_truncate": '''
def matryoshka_truncate(embeddings, dim):
    return embeddings[:, :dim].clone()
'''},
    # divides by the length without guarding a zero row: NaN
    "matryoshka_nan_on_zero_row": {"matryoshka_truncate": '''
def matryoshka_truncate(embeddings, dim):
    head = embeddings[:, :dim]
    return head / head.norm(dim=1, keepdim=True)
'''},
    # ----------------------------------------------------------------------------- task 5: int8
    # converts without clamping: values beyond the range wrap around
    "int8_no_clamp": {"int8_calibrated": '''
def int8_calibrated(embeddings, calibration):
    low, high = calibration.min(dim=0).values, calibration.max(dim=0).values
    step = torch.where(high > low, (high - low) / 255, torch.ones_like(low))
    return (torch.round((embeddings - low) / step) - 128).to(torch.int8)
'''},
    # takes the ranges from the embeddings being quantized, not from the calibration set
    "int8_ranges_from_embeddings": {"int8_calibrated": '''
def int8_calibrated(embeddings, calibration):
    low, high = embeddings.min(dim=0).values, embeddings.max(dim=0).values
    step = torch.where(high > low, (high - low) / 255, torch.ones_like(low))
    return (torch.round((embeddings - low) / step) - 128).clamp(-128, 127).to(torch.int8)
'''},
    # truncates instead of rounding (NumPy's astype, as sentence-transformers does)
    "int8_truncates": {"int8_calibrated": '''
def int8_calibrated(embeddings, calibration):
    low, high = calibration.min(dim=0).values, calibration.max(dim=0).values
    step = torch.where(high > low, (high - low) / 255, torch.ones_like(low))
    return (torch.floor((embeddings - low) / step) - 128).clamp(-128, 127).to(torch.int8)
'''},
}

FAILING = {
    'ndcg_without_ideal_normalisation': {
        'test_ndcg_basic',
        'test_ndcg_edge_cases',
        'test_ndcg_ideal'},
    'ndcg_ideal_from_retrieved_only': {
        'test_ndcg_basic',
        'test_ndcg_edge_cases',
        'test_ndcg_ideal'},
    'ndcg_discount_off_by_one': {'test_ndcg_basic', 'test_ndcg_edge_cases', 'test_ndcg_ideal'},
    'ndcg_nan_without_relevant': {'test_ndcg_edge_cases'},
    'recall_divides_by_k': {'test_recall_basic', 'test_recall_edge_cases'},
    'recall_counts_grade_zero': {'test_recall_basic', 'test_recall_edge_cases'},
    'recall_nan_without_relevant': {'test_recall_edge_cases'},
    'maxsim_counts_document_padding': {
        'test_maxsim_basic',
        'test_maxsim_padding',
        'test_maxsim_query_padding'},
    'maxsim_counts_query_padding': {'test_maxsim_padding', 'test_maxsim_query_padding'},
    'maxsim_mean_over_query_tokens': {
        'test_maxsim_basic',
        'test_maxsim_float64',
        'test_maxsim_padding'},
    'maxsim_imports_beyondbert': {
        'test_maxsim_basic',
        'test_maxsim_float64',
        'test_maxsim_padding',
        'test_maxsim_query_padding'},
    'binary_zero_is_one': {'test_binary_quantize', 'test_binary_quantize_random'},
    'binary_little_endian': {'test_binary_quantize', 'test_binary_quantize_random'},
    'binary_wraps_beyondbert': {'test_binary_quantize', 'test_binary_quantize_random'},
    'hamming_counts_bytes': {'test_hamming_topk_basic', 'test_hamming_topk_many'},
    'hamming_byte_value_difference': {'test_hamming_topk_basic', 'test_hamming_topk_many'},
    'hamming_largest_first': {'test_hamming_topk_basic', 'test_hamming_topk_many'},
    'rescore_ignores_candidates': {'test_rescore', 'test_rescore_random'},
    'rescore_keeps_first_stage_order': {'test_rescore', 'test_rescore_random'},
    'maxsim_zeroes_doc_padding_only': {'test_maxsim_padding', 'test_maxsim_query_padding'},
    'ndcg_returns_tensor': {'test_ndcg_basic'},
    'matryoshka_normalise_first': {'test_matryoshka', 'test_matryoshka_hidden'},
    'matryoshka_no_renormalisation': {'test_matryoshka', 'test_matryoshka_hidden'},
    'matryoshka_nan_on_zero_row': {'test_matryoshka_hidden'},
    'int8_no_clamp': {'test_int8', 'test_int8_hidden'},
    'int8_ranges_from_embeddings': {'test_int8', 'test_int8_calibration_set', 'test_int8_hidden'},
    'int8_truncates': {'test_int8', 'test_int8_calibration_set', 'test_int8_hidden'},
}
