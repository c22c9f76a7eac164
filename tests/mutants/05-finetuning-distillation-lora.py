"""Wrong answers to exercise 05 (distillation loss, LoRA layer, parameter counts); each loses points.

MUTANTS: mutant name -> {grade_id of an answer cell: the source that replaces that cell}.
FAILING: mutant name -> the graded test cells that must fail (all others must pass).
tests/test_exercises.py fills the student version with the solution's answers, swaps in a
mutant's cells, autogrades it and checks both.
"""

_LORA_REST = '''
def lora_forward(x, weight, bias, A, B, alpha):
    return x @ weight.T + bias + (alpha / A.shape[0]) * (x @ A.T @ B.T)


def lora_merge(weight, adapters, alpha):
    return [weight + (alpha / A.shape[0]) * (B @ A) for A, B in adapters]


def lora_unmerge(merged_weight, A, B, alpha):
    return merged_weight - (alpha / A.shape[0]) * (B @ A)
'''

_LORA_INIT = '''
def lora_init(in_features, out_features, r):
    if r < 1 or r > min(in_features, out_features):
        raise ValueError(f"bad rank {r}")
    return torch.randn(r, in_features) / in_features ** 0.5, torch.zeros(out_features, r)
'''


def _lora(**replace: str) -> str:
    """The solution's four LoRA functions with some of them replaced."""
    source = _LORA_INIT + _LORA_REST
    for old, new in replace.items():
        source = source.replace(old, new)
    return source


_COUNT = '''
def count_lora_parameters(shapes, target_modules, r, trainable_prefixes):
    trainable = frozen = injected = 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        if any(name.startswith(p) for p in trainable_prefixes):
            trainable += size
        else:
            frozen += size
        module, _, leaf = name.rpartition(".")
        if leaf == "weight" and len(shape) == 2 and MATCH:
            out_features, in_features = shape
            trainable += LORA
            injected += 1
    if injected == 0:
        raise ValueError("no module matches")
    return {"trainable": trainable, "frozen": frozen}
'''
_SUFFIX = 'any(module == t or module.endswith("." + t) for t in target_modules)'
_LORA_SIZE = "r * in_features + out_features * r"


def _count(match: str = _SUFFIX, lora: str = _LORA_SIZE) -> str:
    return _COUNT.replace("MATCH", match).replace("LORA", lora)


MUTANTS = {
    # forgets the T^2 factor: right at T = 1, too small at every other temperature
    "kd_without_t_squared": {"distillation_loss": '''
def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    soft = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
'''},
    # passes probabilities where F.kl_div expects log-probabilities
    "kd_softmax_instead_of_log_softmax": {"distillation_loss": '''
def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
    q = F.softmax(student_logits / temperature, dim=-1)
    p = F.softmax(teacher_logits / temperature, dim=-1)
    soft = F.kl_div(q, p, reduction="batchmean") * temperature ** 2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
'''},
    # KL(student || teacher): the divergence the wrong way round
    "kd_reversed_kl": {"distillation_loss": '''
def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    soft = (log_q.exp() * (log_q - log_p)).sum(-1).mean() * temperature ** 2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
'''},
    # alpha weighs the hard loss instead of the soft one
    "kd_alpha_swapped": {"distillation_loss": '''
def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    soft = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * temperature ** 2
    return (1 - alpha) * soft + alpha * F.cross_entropy(student_logits, labels)
'''},
    # log(softmax(...)): log(0) = -inf for large logits, and the loss becomes nan
    "kd_log_of_softmax": {"distillation_loss": '''
def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
    p = torch.softmax(teacher_logits / temperature, dim=-1)
    log_q = torch.log(torch.softmax(student_logits / temperature, dim=-1))
    soft = (p * (torch.log(p) - log_q)).sum(-1).mean() * temperature ** 2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
'''},
    # sums the KL over the batch instead of averaging it (reduction="sum")
    "kd_sum_over_batch": {"distillation_loss": '''
def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    soft = F.kl_div(log_q, log_p, reduction="sum", log_target=True) * temperature ** 2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
'''},
    # the right value through .item(): no gradient to train with
    "kd_loss_item": {"distillation_loss": '''
def distillation_loss(student_logits, teacher_logits, labels, temperature, alpha):
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    soft = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True) * temperature ** 2
    total = alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
    return torch.tensor(total.item(), dtype=student_logits.dtype)
'''},
    # B initialised randomly: the adapter changes the pretrained model before any training
    "lora_random_b": {"lora": _lora(**{"torch.zeros(out_features, r)":
                                       "torch.randn(out_features, r)"})},
    # the same A on every call (a fixed seed inside the function)
    "lora_fixed_a": {"lora": _lora(**{"return torch.randn(r, in_features)":
                                      "torch.manual_seed(0)\n    return torch.randn(r, in_features)"})},
    # no check of the rank
    "lora_no_rank_check": {"lora": _lora(**{
        "    if r < 1 or r > min(in_features, out_features):\n        raise ValueError(f\"bad rank {r}\")\n": ""})},
    # checks r < 1 only: a rank above min(in, out) is accepted
    "lora_rank_check_low_only": {"lora": _lora(**{
        "if r < 1 or r > min(in_features, out_features):": "if r < 1:"})},
    # the scale upside down: r / alpha
    "lora_forward_scale_inverted": {"lora": _lora(**{
        "bias + (alpha / A.shape[0]) * (x @ A.T @ B.T)": "bias + (A.shape[0] / alpha) * (x @ A.T @ B.T)"})},
    # scales by alpha, not alpha / r: right whenever r = 1
    "lora_forward_scale_alpha_only": {"lora": _lora(**{
        "bias + (alpha / A.shape[0]) * (x @ A.T @ B.T)": "bias + alpha * (x @ A.T @ B.T)"})},
    # merge without the alpha / r scale
    "lora_merge_without_scale": {"lora": _lora(**{
        "[weight + (alpha / A.shape[0]) * (B @ A) for A, B in adapters]": "[weight + B @ A for A, B in adapters]"})},
    # scales by alpha but forgets to divide by the rank
    "lora_merge_scale_alpha_only": {"lora": _lora(**{
        "[weight + (alpha / A.shape[0]) * (B @ A) for A, B in adapters]": "[weight + alpha * (B @ A) for A, B in adapters]"})},
    # merges into the base weight in place: the second adapter's weight carries the first's update
    "lora_merge_in_place": {"lora": _lora(**{
        "    return [weight + (alpha / A.shape[0]) * (B @ A) for A, B in adapters]":
        "    merged = []\n    for A, B in adapters:\n        weight += (alpha / A.shape[0]) * (B @ A)\n"
        "        merged.append(weight.clone())\n    return merged"})},
    # unmerge adds the update a second time
    "lora_unmerge_adds": {"lora": _lora(**{
        "return merged_weight - (alpha / A.shape[0])": "return merged_weight + (alpha / A.shape[0])"})},
    # counts a full (out, in) update instead of A and B
    "count_full_delta": {"count_lora_parameters": _count(lora="out_features * in_features")},
    # a substring test: "query" also matches "query_proj"
    "count_substring_match": {"count_lora_parameters": _count(
        match="any(t in module for t in target_modules)")},
    # the head stays frozen: trainable_prefixes ignored
    "count_ignores_head": {"count_lora_parameters": _count().replace(
        "any(name.startswith(p) for p in trainable_prefixes)", "False")},
    # injects into any matching name, 1-D weights too: "norm" gets an adapter instead of an error
    "count_injects_1d": {"count_lora_parameters": _count(lora="r * in_features + out_features * r").replace(
        'if leaf == "weight" and len(shape) == 2 and', 'if leaf == "weight" and').replace(
        "out_features, in_features = shape", "out_features, in_features = (shape + shape)[:2]")},
    # a target that matches nothing gives zero trainable parameters instead of an error
    "count_no_error": {"count_lora_parameters": _count().replace(
        '        raise ValueError("no module matches")\n', "        pass\n")},
}

FAILING = {
    'kd_without_t_squared': {'test_kd_gradient', 'test_kd_reference', 'test_kd_temperature'},
    'kd_softmax_instead_of_log_softmax': {
        'test_kd_basics',
        'test_kd_direction',
        'test_kd_gradient',
        'test_kd_reference',
        'test_kd_temperature'},
    'kd_reversed_kl': {
        'test_kd_direction',
        'test_kd_gradient',
        'test_kd_reference',
        'test_kd_temperature'},
    'kd_alpha_swapped': {
        'test_kd_basics',
        'test_kd_direction',
        'test_kd_gradient',
        'test_kd_mix',
        'test_kd_reference',
        'test_kd_temperature'},
    'kd_log_of_softmax': {'test_kd_large_logits'},
    'kd_sum_over_batch': {'test_kd_basics', 'test_kd_gradient', 'test_kd_reference'},
    'kd_loss_item': {'test_kd_gradient'},
    'lora_random_b': {'test_lora_init', 'test_lora_init_rank_hidden'},
    'lora_fixed_a': {'test_lora_init_random'},
    'lora_no_rank_check': {'test_lora_init_rank', 'test_lora_init_rank_hidden'},
    'lora_rank_check_low_only': {'test_lora_init_rank'},
    'lora_forward_scale_inverted': {'test_lora_forward', 'test_lora_forward_batch'},
    'lora_forward_scale_alpha_only': {'test_lora_forward_batch', 'test_lora_forward_rank'},
    'lora_merge_without_scale': {'test_lora_merge', 'test_lora_merge_float64'},
    'lora_merge_scale_alpha_only': {'test_lora_merge', 'test_lora_merge_float64'},
    'lora_merge_in_place': {'test_lora_merge', 'test_lora_merge_float64'},
    'lora_unmerge_adds': {'test_lora_unmerge', 'test_lora_unmerge_float64'},
    'count_full_delta': {
        'test_count_heads_hidden',
        'test_count_minilm',
        'test_count_one_layer',
        'test_count_several_layers'},
    'count_substring_match': {'test_count_minilm', 'test_count_several_layers'},
    'count_ignores_head': {'test_count_heads_hidden', 'test_count_trainable_head'},
    'count_injects_1d': {'test_count_no_match'},
    'count_no_error': {'test_count_no_match'},
}
