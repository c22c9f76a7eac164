"""Wrong answers to exercise 01 (attention masks, mean pooling, BERT's input embeddings); each must
lose points.

MUTANTS: mutant name -> {grade_id of an answer cell: the source that replaces that cell}.
FAILING: mutant name -> the graded test cells that must fail (all others must pass).
tests/test_exercises.py fills the student version with the solution's answers, swaps in a
mutant's cells, autogrades it and checks both.
"""

MUTANTS = {
    # ------------------------------------------------------------------ task 1: masked_attention
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
    # an additive -1e9 mask where -inf is asked: no NaN, but a fully masked row gets uniform weights
    "attention_additive_minus_1e9": {"masked_attention": '''
def masked_attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores + (~mask).to(scores.dtype) * -1e9
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
'''},
    # "attention without attention" (security review, issue 17): never computes scores; returns v
    # with a (1, 1, 1) weights tensor for a causal mask, uniform weights over allowed keys otherwise.
    # It earned 6 of 17 points when a test compared with allclose (which broadcasts) and never
    # checked the weights' shape; now it keeps 1 of task 1's 10 (shapes and dtype).
    "attention_without_scores": {"masked_attention": '''
def masked_attention(q, k, v, mask):
    if mask.dim() == 2 and mask.shape[0] == mask.shape[1] and torch.equal(mask, mask.tril()):
        return v, torch.ones(1, 1, 1, dtype=q.dtype)
    allowed = mask.expand(*q.shape[:-1], k.shape[-2]).to(q.dtype)
    weights = allowed / allowed.sum(dim=-1, keepdim=True).clamp(min=1)
    return weights @ v, weights
'''},
    # the library's implementation instead of the student's own: the grader's sandbox hides
    # beyondbert.attention, so the import fails and every test using masked_attention fails
    "attention_imports_beyondbert": {"masked_attention": '''
from beyondbert.attention import scaled_dot_product_attention as masked_attention
'''},
    # ------------------------------------------------------------------------ task 2: causal_mask
    # lets every token see the future instead of the past
    "causal_mask_upper_triangular": {"causal_mask": '''
def causal_mask(n):
    return torch.triu(torch.ones(n, n, dtype=torch.bool))
'''},
    # strictly below the diagonal: a token may not even see itself
    "causal_mask_without_diagonal": {"causal_mask": '''
def causal_mask(n):
    return torch.tril(torch.ones(n, n, dtype=torch.bool), diagonal=-1)
'''},
    # the right pattern as a float matrix of 0/1 instead of bool
    "causal_mask_float": {"causal_mask": '''
def causal_mask(n):
    return torch.tril(torch.ones(n, n))
'''},
    # --------------------------------------------------------------------------- task 3: mean_pool
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
    # sums the real tokens but divides by the padded length
    "pool_divides_by_seq_len": {"mean_pool": '''
def mean_pool(hidden, attention_mask):
    keep = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * keep).sum(dim=1) / hidden.shape[1]
'''},
    # a wrapper written in the notebook that calls the library: still no credit for task 3
    "pool_wraps_beyondbert": {"mean_pool": '''
import beyondbert.pooling


def mean_pool(hidden, attention_mask):
    return beyondbert.pooling.mean_pool(hidden, attention_mask)
'''},
    # ---------------------------------------------------------------------- task 4: bert_embeddings
    # forgets the position embeddings: a bag of words
    "embeddings_without_positions": {"bert_embeddings": '''
def bert_embeddings(input_ids, token_type_ids, word_table, position_table, segment_table, gamma, beta, eps):
    summed = word_table[input_ids] + segment_table[token_type_ids]
    return torch.nn.functional.layer_norm(summed, (word_table.shape[-1],), gamma, beta, eps)
'''},
    # always adds segment row 0 (sentence A), whatever token_type_ids say
    "embeddings_ignore_segments": {"bert_embeddings": '''
def bert_embeddings(input_ids, token_type_ids, word_table, position_table, segment_table, gamma, beta, eps):
    positions = torch.arange(input_ids.shape[1])
    summed = word_table[input_ids] + position_table[positions] + segment_table[0]
    return torch.nn.functional.layer_norm(summed, (word_table.shape[-1],), gamma, beta, eps)
'''},
    # normalises without gamma and beta (the LayerNorm's learned scale and shift)
    "embeddings_norm_without_affine": {"bert_embeddings": '''
def bert_embeddings(input_ids, token_type_ids, word_table, position_table, segment_table, gamma, beta, eps):
    positions = torch.arange(input_ids.shape[1])
    summed = word_table[input_ids] + position_table[positions] + segment_table[token_type_ids]
    return torch.nn.functional.layer_norm(summed, (word_table.shape[-1],), eps=eps)
'''},
    # the course's own embedding layer with the tables loaded: beyondbert.bert is hidden when graded
    "embeddings_imports_beyondbert": {"bert_embeddings": '''
from beyondbert.bert import BertConfig, BertEmbeddings


def bert_embeddings(input_ids, token_type_ids, word_table, position_table, segment_table, gamma, beta, eps):
    config = BertConfig(vocab_size=word_table.shape[0], hidden_size=word_table.shape[1],
                        max_position_embeddings=position_table.shape[0], layer_norm_eps=eps)
    layer = BertEmbeddings(config).to(word_table.dtype)
    layer.load_state_dict({"token.weight": word_table, "position.weight": position_table,
                           "segment.weight": segment_table, "norm.weight": gamma,
                           "norm.bias": beta})
    with torch.no_grad():
        return layer(input_ids, token_type_ids)
'''},
}

FAILING = {
    'attention_without_sqrt_scale': {
        'test_attention_batch_dims',
        'test_attention_float64',
        'test_attention_padding',
        'test_attention_reference',
        'test_attention_values'},
    'attention_mask_after_softmax': {
        'test_attention_batch_dims',
        'test_attention_causal',
        'test_attention_float64',
        'test_attention_padding',
        'test_attention_reference'},
    'attention_nan_on_fully_masked_rows': {'test_attention_fully_masked'},
    'attention_additive_minus_1e9': {'test_attention_fully_masked'},
    'attention_without_scores': {
        'test_attention_batch_dims',
        'test_attention_causal',
        'test_attention_float64',
        'test_attention_padding',
        'test_attention_reference',
        'test_attention_single_key',
        'test_attention_values'},
    'attention_imports_beyondbert': {
        'test_attention_batch_dims',
        'test_attention_causal',
        'test_attention_float64',
        'test_attention_fully_masked',
        'test_attention_padding',
        'test_attention_reference',
        'test_attention_shapes',
        'test_attention_single_key',
        'test_attention_values'},
    'causal_mask_upper_triangular': {
        'test_causal_mask',
        'test_causal_mask_blocks_future',
        'test_causal_mask_sizes'},
    'causal_mask_without_diagonal': {
        'test_causal_mask',
        'test_causal_mask_blocks_future',
        'test_causal_mask_sizes'},
    'causal_mask_float': {
        'test_causal_mask',
        'test_causal_mask_blocks_future',
        'test_causal_mask_sizes'},
    'pool_ignores_mask': {
        'test_mean_pool',
        'test_mean_pool_all_padding',
        'test_mean_pool_bool_mask',
        'test_mean_pool_float64',
        'test_mean_pool_padding',
        'test_mean_pool_reference'},
    'pool_nan_on_all_padding': {'test_mean_pool_all_padding'},
    'pool_divides_by_seq_len': {
        'test_mean_pool',
        'test_mean_pool_bool_mask',
        'test_mean_pool_float64',
        'test_mean_pool_padding',
        'test_mean_pool_reference'},
    'pool_wraps_beyondbert': {
        'test_mean_pool',
        'test_mean_pool_all_padding',
        'test_mean_pool_bool_mask',
        'test_mean_pool_float64',
        'test_mean_pool_one_token',
        'test_mean_pool_padding',
        'test_mean_pool_reference'},
    'embeddings_without_positions': {
        'test_embeddings_reference',
        'test_embeddings_segments',
        'test_embeddings_values'},
    'embeddings_ignore_segments': {'test_embeddings_reference', 'test_embeddings_segments'},
    'embeddings_norm_without_affine': {
        'test_embeddings_reference',
        'test_embeddings_segments',
        'test_embeddings_values'},
    'embeddings_imports_beyondbert': {
        'test_embeddings_reference',
        'test_embeddings_segments',
        'test_embeddings_shape',
        'test_embeddings_values'},
}
