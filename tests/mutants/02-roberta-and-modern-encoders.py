"""Wrong answers to exercise 02 (dynamic masking, a BPE merge, RMSNorm and RoPE); each must lose points.

MUTANTS: mutant name -> {grade_id of an answer cell: the source that replaces that cell}.
FAILING: mutant name -> the graded test cells that must fail (all others must pass).
tests/test_exercises.py fills the student version with the solution's answers, swaps in a
mutant's cells, autogrades it and checks both.
"""

MUTANTS = {
    # forgets special_ids: [CLS], [SEP] and [PAD] can be masked and get labels
    "mask_selects_special_tokens": {"mask_tokens": '''
def mask_tokens(input_ids, special_ids, mask_token_id, vocab_size, mlm_probability, seed):
    g = torch.Generator().manual_seed(seed)
    selected = torch.rand(input_ids.shape, generator=g) < mlm_probability
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    to_mask = selected & (torch.rand(input_ids.shape, generator=g) < 0.8)
    to_random = selected & ~to_mask & (torch.rand(input_ids.shape, generator=g) < 0.5)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=g)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    return torch.where(to_random, random_ids, inputs), labels
'''},
    # labels on every position (the original ids), not -100 on unselected ones
    "mask_labels_everywhere": {"mask_tokens": '''
def mask_tokens(input_ids, special_ids, mask_token_id, vocab_size, mlm_probability, seed):
    g = torch.Generator().manual_seed(seed)
    special = torch.isin(input_ids, torch.tensor(list(special_ids)))
    selected = (torch.rand(input_ids.shape, generator=g) < mlm_probability) & ~special
    to_mask = selected & (torch.rand(input_ids.shape, generator=g) < 0.8)
    to_random = selected & ~to_mask & (torch.rand(input_ids.shape, generator=g) < 0.5)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=g)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    return torch.where(to_random, random_ids, inputs), input_ids.clone()
'''},
    # every selected token becomes [MASK]: no 10% random, no 10% unchanged
    "mask_always_mask_token": {"mask_tokens": '''
def mask_tokens(input_ids, special_ids, mask_token_id, vocab_size, mlm_probability, seed):
    g = torch.Generator().manual_seed(seed)
    special = torch.isin(input_ids, torch.tensor(list(special_ids)))
    selected = (torch.rand(input_ids.shape, generator=g) < mlm_probability) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    return torch.where(selected, torch.full_like(input_ids, mask_token_id), input_ids), labels
'''},
    # draws from the global random state: the seed is ignored, results cannot be reproduced
    "mask_ignores_seed": {"mask_tokens": '''
def mask_tokens(input_ids, special_ids, mask_token_id, vocab_size, mlm_probability, seed):
    special = torch.isin(input_ids, torch.tensor(list(special_ids)))
    selected = (torch.rand(input_ids.shape) < mlm_probability) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    to_mask = selected & (torch.rand(input_ids.shape) < 0.8)
    to_random = selected & ~to_mask & (torch.rand(input_ids.shape) < 0.5)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    return torch.where(to_random, torch.randint(vocab_size, input_ids.shape), inputs), labels
'''},
    # BERT's 15% hard-coded instead of mlm_probability
    "mask_fixed_15_percent": {"mask_tokens": '''
def mask_tokens(input_ids, special_ids, mask_token_id, vocab_size, mlm_probability, seed):
    g = torch.Generator().manual_seed(seed)
    special = torch.isin(input_ids, torch.tensor(list(special_ids)))
    selected = (torch.rand(input_ids.shape, generator=g) < 0.15) & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    to_mask = selected & (torch.rand(input_ids.shape, generator=g) < 0.8)
    to_random = selected & ~to_mask & (torch.rand(input_ids.shape, generator=g) < 0.5)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=g)
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_token_id), input_ids)
    return torch.where(to_random, random_ids, inputs), labels
'''},
    # the library's masking wrapped in the notebook: beyondbert.mlm is hidden when grading
    "mask_imports_beyondbert": {"mask_tokens": '''
from beyondbert.mlm import mask_tokens as library_mask_tokens


def mask_tokens(input_ids, special_ids, mask_token_id, vocab_size, mlm_probability, seed):
    g = torch.Generator().manual_seed(seed)
    return library_mask_tokens(input_ids, special_ids, mask_token_id, vocab_size, mlm_probability, g)
'''},
    # one per word instead of the word's count
    "count_pairs_ignores_counts": {"count_pairs": '''
def count_pairs(vocab):
    counts = {}
    for word in vocab:
        symbols = word.split(" ")
        for a, b in zip(symbols, symbols[1:]):
            counts[f"{a} {b}"] = counts.get(f"{a} {b}", 0) + 1
    return counts
'''},
    # a pair repeated inside a word is counted once
    "count_pairs_once_per_word": {"count_pairs": '''
def count_pairs(vocab):
    counts = {}
    for word, n in vocab.items():
        symbols = word.split(" ")
        for a, b in set(zip(symbols, symbols[1:])):
            counts[f"{a} {b}"] = counts.get(f"{a} {b}", 0) + n
    return counts
'''},
    # a tie goes to the first pair seen (max with a key), not to the smallest string
    "best_pair_first_seen": {"best_pair": '''
def best_pair(counts):
    return max(counts, key=counts.get)
'''},
    # a tie goes to the last pair seen
    "best_pair_last_seen": {"best_pair": '''
def best_pair(counts):
    best = None
    for pair, n in counts.items():
        if best is None or n >= counts[best]:
            best = pair
    return best
'''},
    # str.replace matches inside symbols: "ne w" with "e w" becomes "new"
    "merge_with_str_replace": {"merge_pair": '''
def merge_pair(vocab, pair):
    a, b = pair.split(" ")
    return {word.replace(pair, a + b): n for word, n in vocab.items()}
'''},
    # merges only the first occurrence in each word
    "merge_first_occurrence_only": {"merge_pair": '''
def merge_pair(vocab, pair):
    a, b = pair.split(" ")
    merged = {}
    for word, n in vocab.items():
        symbols = word.split(" ")
        for i in range(len(symbols) - 1):
            if symbols[i] == a and symbols[i + 1] == b:
                symbols[i:i + 2] = [a + b]
                break
        merged[" ".join(symbols)] = n
    return merged
'''},
    # LayerNorm without bias: subtracts the mean
    "rms_norm_subtracts_mean": {"rms_norm": '''
def rms_norm(x, weight, eps):
    centred = x - x.mean(dim=-1, keepdim=True)
    return centred / torch.sqrt(centred.pow(2).mean(dim=-1, keepdim=True) + eps) * weight
'''},
    # eps added after the square root
    "rms_norm_eps_outside_sqrt": {"rms_norm": '''
def rms_norm(x, weight, eps):
    return x / (torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True)) + eps) * weight
'''},
    # pairs neighbours (2i, 2i+1) as in the paper, not (i, i + d/2) as the task states
    "rope_interleaved_pairs": {"apply_rope": '''
def apply_rope(x, base):
    seq, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * theta
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).flatten(-2)
'''},
    # turns the other way (clockwise): still relative, but not RoPE's values
    "rope_clockwise": {"apply_rope": '''
def apply_rope(x, base):
    seq, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * theta
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)
'''},
    # frequencies base**(-i/d) instead of base**(-2i/d)
    "rope_wrong_frequencies": {"apply_rope": '''
def apply_rope(x, base):
    seq, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d // 2, dtype=torch.float64) / d)
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * theta
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
'''},
    # adds the original Transformer's sinusoidal position vector instead of rotating
    "rope_adds_sinusoids": {"apply_rope": '''
def apply_rope(x, base):
    seq, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(seq, dtype=torch.float64)[:, None] * theta
    return x + torch.cat([angles.sin(), angles.cos()], dim=-1).to(x.dtype)
'''},
}

FAILING = {
    'mask_selects_special_tokens': {
        'test_mask_only_special',
        'test_mask_probability',
        'test_mask_special'},
    'mask_labels_everywhere': {
        'test_mask_80_10_10',
        'test_mask_labels',
        'test_mask_only_special',
        'test_mask_probability',
        'test_mask_rate',
        'test_mask_seed',
        'test_mask_special'},
    'mask_always_mask_token': {'test_mask_80_10_10', 'test_mask_random_ids'},
    'mask_ignores_seed': {'test_mask_seed'},
    'mask_fixed_15_percent': {'test_mask_probability', 'test_mask_random_ids'},
    'mask_imports_beyondbert': {
        'test_mask_80_10_10',
        'test_mask_labels',
        'test_mask_only_special',
        'test_mask_probability',
        'test_mask_random_ids',
        'test_mask_rate',
        'test_mask_seed',
        'test_mask_shapes',
        'test_mask_special'},
    'count_pairs_ignores_counts': {
        'test_count_pairs',
        'test_count_pairs_repeated',
        'test_count_pairs_single_symbols'},
    'count_pairs_once_per_word': {'test_count_pairs_repeated'},
    'best_pair_first_seen': {'test_best_pair_tie', 'test_best_pair_tie_hidden'},
    'best_pair_last_seen': {'test_best_pair_tie'},
    'merge_with_str_replace': {'test_merge_whole_symbols'},
    'merge_first_occurrence_only': {'test_merge_overlaps'},
    'rms_norm_subtracts_mean': {'test_rms_norm_reference', 'test_rms_norm_values'},
    'rms_norm_eps_outside_sqrt': {'test_rms_norm_eps'},
    'rope_interleaved_pairs': {'test_rope_4d', 'test_rope_base', 'test_rope_values'},
    'rope_clockwise': {'test_rope_4d', 'test_rope_base', 'test_rope_values'},
    'rope_wrong_frequencies': {'test_rope_4d', 'test_rope_base', 'test_rope_values'},
    'rope_adds_sinusoids': {
        'test_rope_4d',
        'test_rope_base',
        'test_rope_relative',
        'test_rope_rotation',
        'test_rope_values'},
}
