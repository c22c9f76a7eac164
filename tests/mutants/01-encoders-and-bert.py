"""Wrong answers to exercise 01 (attention masks and mean pooling); each must lose points.

MUTANTS: mutant name -> {grade_id of an answer cell: the source that replaces that cell}.
FAILING: mutant name -> the graded test cells that must fail (all others must pass).
tests/test_exercises.py fills the student version with the solution's answers, swaps in a
mutant's cells, autogrades it and checks both.
"""

MUTANTS = {
    # softmax(Q K^T) V: forgets to divide the scores by sqrt(d)
    "attention_without_sqrt_scale": {"masked_attention": '''
def masked_attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1)
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
    return weights @ v, weights
'''},
    # zeroes masked weights after the softmax: rows no longer sum to 1
    "attention_mask_after_softmax": {"masked_attention": '''
def masked_attention(q, k, v, mask):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights
'''},
    # -inf then softmax, but a row with every key masked stays 0/0 = NaN
    "attention_nan_on_fully_masked_rows": {"masked_attention": '''
def masked_attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights @ v, weights
'''},
    # the library's implementation instead of the student's own: the grader's sandbox hides
    # beyondbert.attention, so the import fails and every test using masked_attention fails
    "attention_imports_beyondbert": {"masked_attention": '''
from beyondbert.attention import scaled_dot_product_attention as masked_attention
'''},
    # lets every token see the future instead of the past
    "causal_mask_upper_triangular": {"causal_mask": '''
def causal_mask(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool))
'''},
    # averages padding tokens too
    "pool_ignores_mask": {"mean_pool": '''
def mean_pool(hidden, attention_mask):
    return hidden.mean(dim=1)
'''},
    # divides by the token count without guarding all-padding rows: 0/0 = NaN
    "pool_nan_on_all_padding": {"mean_pool": '''
def mean_pool(hidden, attention_mask):
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / keep.sum(dim=1)
'''},
    # a wrapper written in the notebook that calls the library: still no credit for task 3
    "pool_wraps_beyondbert": {"mean_pool": '''
import beyondbert.pooling


def mean_pool(hidden, attention_mask):
    return beyondbert.pooling.mean_pool(hidden, attention_mask)
'''},
}

FAILING = {
    "attention_without_sqrt_scale": {"test_attention_values"},
    "attention_mask_after_softmax": {"test_attention_shapes", "test_attention_masking",
                                     "test_attention_values", "test_causal_attention"},
    "attention_nan_on_fully_masked_rows": {"test_attention_masking"},
    "attention_imports_beyondbert": {"test_attention_shapes", "test_attention_masking",
                                     "test_attention_values", "test_causal_attention"},
    "causal_mask_upper_triangular": {"test_causal_mask", "test_causal_attention"},
    "pool_ignores_mask": {"test_mean_pool", "test_mean_pool_edge_cases"},
    "pool_nan_on_all_padding": {"test_mean_pool_edge_cases"},
    "pool_wraps_beyondbert": {"test_mean_pool", "test_mean_pool_edge_cases"},
}
