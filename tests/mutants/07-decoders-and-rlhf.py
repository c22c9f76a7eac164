"""Wrong answers to exercise 07 (sampling filters, Bradley-Terry, DPO, PPO); each must lose points.

MUTANTS: mutant name -> {grade_id of an answer cell: the source that replaces that cell}.
FAILING: mutant name -> the graded test cells that must fail (all others must pass).
"""

MUTANTS = {
    # multiplies by the temperature instead of dividing
    "temperature_multiplies": {"apply_temperature": '''
def apply_temperature(logits, temperature):
    return logits * temperature
'''},
    # the library's version: beyondbert.gpt is hidden from student code when grading
    "temperature_imports_beyondbert": {"apply_temperature": '''
from beyondbert.gpt import filter_logits


def apply_temperature(logits, temperature):
    return filter_logits(logits, temperature)
'''},
    # keeps one token too many (the k+1 largest)
    "top_k_keeps_k_plus_one": {"top_k_filter": '''
def top_k_filter(logits, k):
    kth = logits.topk(min(k + 1, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))
'''},
    # sets the dropped logits to 0 instead of -inf: they keep probability after the softmax
    "top_k_zero_instead_of_minus_inf": {"top_k_filter": '''
def top_k_filter(logits, k):
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, 0.0)
'''},
    # keeps one token too few: drops the token whose probability makes the sum reach p
    "top_p_one_token_too_few": {"top_p_filter": '''
def top_p_filter(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative > p
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))
'''},
    # returns the kept logits in sorted order instead of the vocabulary's order
    "top_p_sorted_order": {"top_p_filter": '''
def top_p_filter(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    drop = (probs.cumsum(dim=-1) - probs) >= p
    return sorted_logits.masked_fill(drop, float("-inf"))
'''},
    # the reward difference with the wrong sign: learns to prefer the rejected texts
    "bradley_terry_wrong_sign": {"bradley_terry_loss": '''
def bradley_terry_loss(reward_chosen, reward_rejected):
    return -F.logsigmoid(reward_rejected - reward_chosen).mean()
'''},
    # log(sigmoid(.)) in two steps: sigmoid underflows to 0 and the loss becomes inf
    "bradley_terry_log_of_sigmoid": {"bradley_terry_loss": '''
def bradley_terry_loss(reward_chosen, reward_rejected):
    return -torch.log(torch.sigmoid(reward_chosen - reward_rejected)).mean()
'''},
    # forgets the reference model: the margin of the policy alone
    "dpo_without_reference": {"dpo_loss": '''
def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
    return -F.logsigmoid(beta * (policy_chosen - policy_rejected)).mean()
'''},
    # forgets beta
    "dpo_without_beta": {"dpo_loss": '''
def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(margin).mean()
'''},
    # clips the ratio but does not take the minimum with the unclipped term
    "ppo_clip_without_min": {"ppo_clipped_objective": '''
def ppo_clipped_objective(logp_new, logp_old, advantages, clip):
    ratio = torch.exp(logp_new - logp_old)
    return (ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
'''},
    # no clipping at all: the plain policy-gradient surrogate
    "ppo_without_clipping": {"ppo_clipped_objective": '''
def ppo_clipped_objective(logp_new, logp_old, advantages, clip):
    return (torch.exp(logp_new - logp_old) * advantages).mean()
'''},
    # the ratio of log-probabilities instead of the ratio of probabilities
    "ppo_ratio_of_logprobs": {"ppo_clipped_objective": '''
def ppo_clipped_objective(logp_new, logp_old, advantages, clip):
    ratio = logp_new / logp_old
    return torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
'''},
}

FAILING = {
    "temperature_multiplies": {"test_temperature", "test_temperature_hidden"},
    "temperature_imports_beyondbert": {"test_temperature", "test_temperature_hidden"},
    "top_k_keeps_k_plus_one": {"test_top_k", "test_top_k_hidden"},
    "top_k_zero_instead_of_minus_inf": {"test_top_k", "test_top_k_hidden"},
    "top_p_one_token_too_few": {"test_top_p", "test_top_p_hidden"},
    "top_p_sorted_order": {"test_top_p", "test_top_p_hidden"},
    "bradley_terry_wrong_sign": {"test_bradley_terry", "test_bradley_terry_hidden"},
    "bradley_terry_log_of_sigmoid": {"test_bradley_terry_hidden"},
    "dpo_without_reference": {"test_dpo_hidden"},
    "dpo_without_beta": {"test_dpo", "test_dpo_hidden"},
    "ppo_clip_without_min": {"test_ppo_hidden"},
    "ppo_without_clipping": {"test_ppo_hidden"},
    "ppo_ratio_of_logprobs": {"test_ppo", "test_ppo_hidden"},
}
