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
    # stops one token too early: drops the token that makes the mass reach p
    "top_p_one_token_too_few": {"top_p_probs": '''
def top_p_probs(logits, p):
    probs = logits.softmax(dim=-1)
    ranked, order = probs.sort(dim=-1, descending=True)
    keep_ranked = (ranked.cumsum(dim=-1) <= p).to(probs.dtype)
    keep_ranked[..., 0] = 1
    keep = torch.zeros_like(probs).scatter(-1, order, keep_ranked)
    nucleus = probs * keep
    return nucleus / nucleus.sum(dim=-1, keepdim=True)
'''},
    # zeroes the tokens outside the nucleus but forgets to renormalise
    "top_p_not_renormalised": {"top_p_probs": '''
def top_p_probs(logits, p):
    probs = logits.softmax(dim=-1)
    ranked, order = probs.sort(dim=-1, descending=True)
    keep_ranked = ((ranked.cumsum(dim=-1) - ranked) < p).to(probs.dtype)
    return probs * torch.zeros_like(probs).scatter(-1, order, keep_ranked)
'''},
    # returns the nucleus in sorted order instead of the vocabulary's order
    "top_p_sorted_order": {"top_p_probs": '''
def top_p_probs(logits, p):
    ranked = logits.softmax(dim=-1).sort(dim=-1, descending=True).values
    nucleus = ranked * ((ranked.cumsum(dim=-1) - ranked) < p).to(ranked.dtype)
    return nucleus / nucleus.sum(dim=-1, keepdim=True)
'''},
    # the reward difference with the wrong sign: learns to prefer the rejected texts
    "bradley_terry_wrong_sign": {"bradley_terry_loss": '''
def bradley_terry_loss(reward_chosen, reward_rejected, margin):
    return -F.logsigmoid(reward_rejected - reward_chosen - margin).mean()
'''},
    # the margin added instead of subtracted: pairs with a clear preference are asked for less
    "bradley_terry_margin_sign": {"bradley_terry_loss": '''
def bradley_terry_loss(reward_chosen, reward_rejected, margin):
    return -F.logsigmoid(reward_chosen - reward_rejected + margin).mean()
'''},
    # log(sigmoid(.)) in two steps: sigmoid underflows to 0 and the loss becomes inf
    "bradley_terry_log_of_sigmoid": {"bradley_terry_loss": '''
def bradley_terry_loss(reward_chosen, reward_rejected, margin):
    return -torch.log(torch.sigmoid(reward_chosen - reward_rejected - margin)).mean()
'''},
    # forgets the reference model: the margin of the policy alone
    "dpo_without_reference": {"dpo_loss": '''
def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
    return -F.logsigmoid(beta * (policy_chosen - policy_rejected)).mean()
''' + '\n\ndef dpo_weights(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):\n    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)\n    return torch.sigmoid(-beta * margin)\n'},
    # forgets beta in the loss
    "dpo_without_beta": {"dpo_loss": '''
def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return -F.logsigmoid(margin).mean()
''' + '\n\ndef dpo_weights(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):\n    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)\n    return torch.sigmoid(-beta * margin)\n'},
    # the weight of a pair the policy already gets right should be small: sigmoid(+beta m) is not
    "dpo_weights_wrong_sign": {"dpo_loss": '\ndef dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):\n    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)\n    return -F.logsigmoid(beta * margin).mean()\n' + '''

def dpo_weights(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return torch.sigmoid(beta * margin)
'''},
    # the loss through .item(): the right number, but no gradient to train with
    "dpo_loss_item": {"dpo_loss": '''
def dpo_loss(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    return torch.tensor(-F.logsigmoid(beta * margin).mean().item(), dtype=margin.dtype)
''' + '\n\ndef dpo_weights(policy_chosen, policy_rejected, reference_chosen, reference_rejected, beta):\n    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)\n    return torch.sigmoid(-beta * margin)\n'},
    # clips the ratio but does not take the minimum with the unclipped term
    "ppo_clip_without_min": {"ppo_clipped_objective": '''
def ppo_clipped_objective(logp_new, logp_old, advantages, clip):
    ratio = torch.exp(logp_new - logp_old)
    return (ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
''' + '\n\ndef ppo_clip_fraction(logp_new, logp_old, clip):\n    ratio = torch.exp(logp_new - logp_old)\n    return float(((ratio - 1).abs() > clip).double().mean())\n'},
    # no clipping at all: the plain policy-gradient surrogate
    "ppo_without_clipping": {"ppo_clipped_objective": '''
def ppo_clipped_objective(logp_new, logp_old, advantages, clip):
    return (torch.exp(logp_new - logp_old) * advantages).mean()
''' + '\n\ndef ppo_clip_fraction(logp_new, logp_old, clip):\n    ratio = torch.exp(logp_new - logp_old)\n    return float(((ratio - 1).abs() > clip).double().mean())\n'},
    # the ratio of log-probabilities instead of the ratio of probabilities
    "ppo_ratio_of_logprobs": {"ppo_clipped_objective": '''
def ppo_clipped_objective(logp_new, logp_old, advantages, clip):
    ratio = logp_new / logp_old
    return torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
''' + '\n\ndef ppo_clip_fraction(logp_new, logp_old, clip):\n    ratio = torch.exp(logp_new - logp_old)\n    return float(((ratio - 1).abs() > clip).double().mean())\n'},
    # the clipped fraction as a count of entries, not a share
    "ppo_clip_fraction_count": {"ppo_clipped_objective": '\ndef ppo_clipped_objective(logp_new, logp_old, advantages, clip):\n    ratio = torch.exp(logp_new - logp_old)\n    return torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()\n' + '''

def ppo_clip_fraction(logp_new, logp_old, clip):
    ratio = torch.exp(logp_new - logp_old)
    return float(((ratio - 1).abs() > clip).sum())
'''},
    # --------------------------------------------------------------- task 5: kl_penalised_rewards
    # pays the score at the last column, whatever the mask says
    "kl_rewards_score_at_last_column": {"kl_penalised_rewards": '''
def kl_penalised_rewards(logp_policy, logp_reference, scores, mask, beta):
    real = mask.to(logp_policy.dtype)
    rewards = -beta * (logp_policy - logp_reference) * real
    rewards[:, -1] += scores
    return rewards
'''},
    # the penalty with the wrong sign: rewards drifting away from the reference
    "kl_rewards_penalty_sign": {"kl_penalised_rewards": '''
def kl_penalised_rewards(logp_policy, logp_reference, scores, mask, beta):
    real = mask.to(logp_policy.dtype)
    rewards = beta * (logp_policy - logp_reference) * real
    last = real.sum(dim=1).long() - 1
    rewards[torch.arange(rewards.shape[0]), last] += scores
    return rewards
'''},
    # the chapter's per-sequence penalty: the summed KL paid once at the last token
    "kl_rewards_per_sequence": {"kl_penalised_rewards": '''
def kl_penalised_rewards(logp_policy, logp_reference, scores, mask, beta):
    real = mask.to(logp_policy.dtype)
    kl = ((logp_policy - logp_reference) * real).sum(dim=1)
    rewards = torch.zeros_like(logp_policy)
    last = real.sum(dim=1).long() - 1
    rewards[torch.arange(rewards.shape[0]), last] = scores - beta * kl
    return rewards
'''},
    # padding tokens pay the penalty too
    "kl_rewards_penalise_padding": {"kl_penalised_rewards": '''
def kl_penalised_rewards(logp_policy, logp_reference, scores, mask, beta):
    real = mask.to(logp_policy.dtype)
    rewards = -beta * (logp_policy - logp_reference)
    last = real.sum(dim=1).long() - 1
    rewards[torch.arange(rewards.shape[0]), last] += scores
    return rewards
'''},
}

FAILING = {
    'temperature_multiplies': {'test_temperature', 'test_temperature_hidden'},
    'temperature_imports_beyondbert': {'test_temperature', 'test_temperature_hidden'},
    'top_k_keeps_k_plus_one': {'test_top_k', 'test_top_k_hidden'},
    'top_k_zero_instead_of_minus_inf': {'test_top_k', 'test_top_k_hidden'},
    'top_p_one_token_too_few': {'test_top_p', 'test_top_p_hidden'},
    'top_p_not_renormalised': {'test_top_p', 'test_top_p_hidden'},
    'top_p_sorted_order': {'test_top_p', 'test_top_p_hidden'},
    'bradley_terry_wrong_sign': {
        'test_bradley_terry',
        'test_bradley_terry_gradient',
        'test_bradley_terry_hidden',
        'test_bradley_terry_large'},
    'bradley_terry_margin_sign': {
        'test_bradley_terry',
        'test_bradley_terry_gradient',
        'test_bradley_terry_hidden'},
    'bradley_terry_log_of_sigmoid': {'test_bradley_terry_large'},
    'dpo_without_reference': {'test_dpo_gradient', 'test_dpo_hidden', 'test_dpo_reference'},
    'dpo_without_beta': {'test_dpo', 'test_dpo_gradient', 'test_dpo_hidden'},
    'dpo_weights_wrong_sign': {'test_dpo_hidden', 'test_dpo_weights'},
    'dpo_loss_item': {'test_dpo_gradient'},
    'ppo_clip_without_min': {'test_ppo_clipped', 'test_ppo_gradient', 'test_ppo_hidden'},
    'ppo_without_clipping': {'test_ppo_clipped', 'test_ppo_gradient', 'test_ppo_hidden'},
    'ppo_ratio_of_logprobs': {
        'test_ppo',
        'test_ppo_clipped',
        'test_ppo_gradient',
        'test_ppo_hidden'},
    'ppo_clip_fraction_count': {'test_ppo_clip_fraction', 'test_ppo_hidden'},
    'kl_rewards_score_at_last_column': {'test_kl_rewards_hidden', 'test_kl_rewards_padding'},
    'kl_rewards_penalty_sign': {
        'test_kl_rewards',
        'test_kl_rewards_hidden',
        'test_kl_rewards_padding'},
    'kl_rewards_per_sequence': {
        'test_kl_rewards',
        'test_kl_rewards_hidden',
        'test_kl_rewards_padding'},
    'kl_rewards_penalise_padding': {'test_kl_rewards_hidden', 'test_kl_rewards_padding'},
}
