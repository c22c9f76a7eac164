"""Wrong answers to exercise 03 (cosine-similarity matrix, mean-pooled similarity, triplet and
in-batch-negatives losses, top-k search); each must lose points.

MUTANTS: mutant name -> {grade_id of an answer cell: the source that replaces that cell}.
FAILING: mutant name -> the graded test cells that must fail (all others must pass).
tests/test_exercises.py fills the student version with the solution's answers, swaps in a
mutant's cells, autogrades it and checks both.
"""

COSINE = {"test_cosine_basic", "test_cosine_lengths", "test_cosine_zero_row", "test_cosine_float64"}
POOLED = {"test_sentence_similarity_basic", "test_sentence_similarity_padding",
          "test_sentence_similarity_reference"}
TRIPLET = {"test_triplet_basic", "test_triplet_margin_met", "test_triplet_per_triplet_hinge",
           "test_triplet_reference"}
IN_BATCH = {"test_in_batch_basic", "test_in_batch_orthogonal", "test_in_batch_scale",
            "test_in_batch_reference"}
SEARCH = {"test_search_basic", "test_search_ties_and_all", "test_search_reference"}
RELATED = {"test_related_basic", "test_related_duplicates"}

MUTANTS = {
    # -------------------------------------------------------- task 1: cosine_similarity_matrix
    # similarity without normalisation: the dot product
    "cosine_without_normalisation": {"cosine_similarity_matrix": '''
def cosine_similarity_matrix(a, b):
    return a @ b.T
'''},
    # divides by the norms without guarding zero rows: 0 / 0 = NaN
    "cosine_nan_on_zero_rows": {"cosine_similarity_matrix": '''
def cosine_similarity_matrix(a, b):
    return (a @ b.T) / (a.norm(dim=1, keepdim=True) * b.norm(dim=1))
'''},
    # normalises the columns (dim=0) instead of the rows
    "cosine_normalises_columns": {"cosine_similarity_matrix": '''
def cosine_similarity_matrix(a, b):
    return F.normalize(a, dim=0) @ F.normalize(b, dim=0).T
'''},
    # the course's implementation instead of the student's own: hidden by the grader's sandbox
    "cosine_imports_beyondbert": {"cosine_similarity_matrix": '''
from beyondbert.losses import cosine_similarity_matrix
'''},
    # --------------------------------------------------------------- task 2: sentence_similarity
    # averages the padding tokens too
    "pooled_ignores_mask": {"sentence_similarity": '''
def sentence_similarity(hidden_a, mask_a, hidden_b, mask_b):
    u, v = hidden_a.mean(dim=1), hidden_b.mean(dim=1)
    return F.normalize(u, dim=1) @ F.normalize(v, dim=1).T
'''},
    # the first token's vector ([CLS]) instead of the mean
    "pooled_first_token": {"sentence_similarity": '''
def sentence_similarity(hidden_a, mask_a, hidden_b, mask_b):
    u, v = hidden_a[:, 0], hidden_b[:, 0]
    return F.normalize(u, dim=1) @ F.normalize(v, dim=1).T
'''},
    # masks the padding but divides by the padded length (right direction only without padding)
    "pooled_divides_by_seq_len_no_cosine": {"sentence_similarity": '''
def sentence_similarity(hidden_a, mask_a, hidden_b, mask_b):
    u = (hidden_a * mask_a.unsqueeze(-1)).sum(dim=1) / hidden_a.shape[1]
    v = (hidden_b * mask_b.unsqueeze(-1)).sum(dim=1) / hidden_b.shape[1]
    return u @ v.T
'''},
    # ------------------------------------------------------------------- task 3: triplet_loss
    # forgets the margin
    "triplet_without_margin": {"triplet_loss": '''
def triplet_loss(anchor, positive, negative, margin):
    d_pos = (anchor - positive).norm(dim=1)
    d_neg = (anchor - negative).norm(dim=1)
    return torch.relu(d_pos - d_neg).mean()
'''},
    # the hinge of the mean distances instead of the mean of per-triplet hinges
    "triplet_hinge_of_mean": {"triplet_loss": '''
def triplet_loss(anchor, positive, negative, margin):
    d_pos = (anchor - positive).norm(dim=1).mean()
    d_neg = (anchor - negative).norm(dim=1).mean()
    return torch.relu(d_pos - d_neg + margin)
'''},
    # squared distances
    "triplet_squared_distances": {"triplet_loss": '''
def triplet_loss(anchor, positive, negative, margin):
    d_pos = (anchor - positive).pow(2).sum(dim=1)
    d_neg = (anchor - negative).pow(2).sum(dim=1)
    return torch.relu(d_pos - d_neg + margin).mean()
'''},
    # no hinge: a negative already far away still pulls (and the loss can be negative)
    "triplet_without_hinge": {"triplet_loss": '''
def triplet_loss(anchor, positive, negative, margin):
    d_pos = (anchor - positive).norm(dim=1)
    d_neg = (anchor - negative).norm(dim=1)
    return (d_pos - d_neg + margin).mean()
'''},
    # ------------------------------------------------------- task 4: in_batch_negatives_loss
    # PyTorch's own triplet loss: refused by name in the sandbox and in the set-up cell
    "triplet_uses_torch": {"triplet_loss": '''
def triplet_loss(anchor, positive, negative, margin):
    return F.triplet_margin_loss(anchor, positive, negative, margin=margin, eps=0.0)
'''},
    # the right number through .item(): no gradient to train with
    "triplet_loss_item": {"triplet_loss": '''
def triplet_loss(anchor, positive, negative, margin):
    d_pos = (anchor - positive).norm(dim=1)
    d_neg = (anchor - negative).norm(dim=1)
    return torch.tensor(torch.relu(d_pos - d_neg + margin).mean().item())
'''},
    # the right number, detached from the anchors: no gradient to train with
    "in_batch_detached": {"in_batch_negatives_loss": '''
def in_batch_negatives_loss(anchors, positives, scale):
    logits = scale * F.normalize(anchors, dim=1).detach() @ F.normalize(positives, dim=1).T
    return F.cross_entropy(logits, torch.arange(anchors.shape[0]))
'''},
    # forgets the scale
    "in_batch_without_scale": {"in_batch_negatives_loss": '''
def in_batch_negatives_loss(anchors, positives, scale):
    logits = F.normalize(anchors, dim=1) @ F.normalize(positives, dim=1).T
    return F.cross_entropy(logits, torch.arange(anchors.shape[0]))
'''},
    # dot products of unnormalised vectors
    "in_batch_without_normalisation": {"in_batch_negatives_loss": '''
def in_batch_negatives_loss(anchors, positives, scale):
    logits = scale * anchors @ positives.T
    return F.cross_entropy(logits, torch.arange(anchors.shape[0]))
'''},
    # the softmax runs over the anchors (columns) instead of over the candidates (rows)
    "in_batch_softmax_over_anchors": {"in_batch_negatives_loss": '''
def in_batch_negatives_loss(anchors, positives, scale):
    logits = scale * F.normalize(anchors, dim=1) @ F.normalize(positives, dim=1).T
    return F.cross_entropy(logits.T, torch.arange(anchors.shape[0]))
'''},
    # the course's implementation: hidden by the sandbox
    "in_batch_imports_beyondbert": {"in_batch_negatives_loss": '''
from beyondbert.losses import in_batch_negatives_loss as _library_loss

def in_batch_negatives_loss(anchors, positives, scale):
    return _library_loss(anchors, positives, scale=scale)
'''},
    # ------------------------------------------------------------------- task 5: top_k_search
    # worst first
    "search_ascending": {"top_k_search": '''
def top_k_search(queries, corpus, k):
    return torch.sort(queries @ corpus.T, dim=1, stable=True).indices[:, :k]
'''},
    # Euclidean distance as if it were a similarity: the farthest documents first
    "search_largest_distance": {"top_k_search": '''
def top_k_search(queries, corpus, k):
    distances = torch.cdist(queries, corpus)
    return torch.sort(distances, dim=1, descending=True, stable=True).indices[:, :k]
'''},
    # unstable sort: ties come in whatever order the sort leaves them
    "search_ties_reversed": {"top_k_search": '''
def top_k_search(queries, corpus, k):
    scores = queries @ corpus.T
    flipped = torch.sort(scores.flip(1), dim=1, descending=True, stable=True).indices[:, :k]
    return corpus.shape[0] - 1 - flipped
'''},
    # ----------------------------------------------------------- task 6: nearest_other_documents
    # returns the query itself (searches the collection with itself and keeps every hit)
    "related_returns_itself": {"nearest_other_documents": '''
def nearest_other_documents(vectors, k):
    return torch.sort(vectors @ vectors.T, dim=1, descending=True, stable=True).indices[:, :k]
'''},
    # drops the first hit, assuming it is the document itself: wrong when a duplicate comes first
    "related_drops_first_hit": {"nearest_other_documents": '''
def nearest_other_documents(vectors, k):
    ranked = torch.sort(vectors @ vectors.T, dim=1, descending=True, stable=True).indices
    return ranked[:, 1:k + 1]
'''},
}

FAILING = {
    'cosine_without_normalisation': {
        'test_cosine_basic',
        'test_cosine_float64',
        'test_cosine_lengths',
        'test_cosine_zero_row'},
    'cosine_nan_on_zero_rows': {'test_cosine_zero_row'},
    'cosine_normalises_columns': {
        'test_cosine_basic',
        'test_cosine_float64',
        'test_cosine_lengths',
        'test_cosine_zero_row'},
    'cosine_imports_beyondbert': {
        'test_cosine_basic',
        'test_cosine_float64',
        'test_cosine_lengths',
        'test_cosine_zero_row'},
    'pooled_ignores_mask': {
        'test_sentence_similarity_padding',
        'test_sentence_similarity_reference'},
    'pooled_first_token': {
        'test_sentence_similarity_basic',
        'test_sentence_similarity_padding',
        'test_sentence_similarity_reference'},
    'pooled_divides_by_seq_len_no_cosine': {
        'test_sentence_similarity_basic',
        'test_sentence_similarity_padding',
        'test_sentence_similarity_reference'},
    'triplet_without_margin': {
        'test_triplet_basic',
        'test_triplet_margin_met',
        'test_triplet_per_triplet_hinge',
        'test_triplet_reference'},
    'triplet_hinge_of_mean': {
        'test_triplet_gradient',
        'test_triplet_per_triplet_hinge',
        'test_triplet_reference'},
    'triplet_squared_distances': {
        'test_triplet_basic',
        'test_triplet_gradient',
        'test_triplet_per_triplet_hinge',
        'test_triplet_reference'},
    'triplet_without_hinge': {
        'test_triplet_gradient',
        'test_triplet_margin_met',
        'test_triplet_per_triplet_hinge',
        'test_triplet_reference'},
    'triplet_uses_torch': {
        'test_triplet_basic',
        'test_triplet_gradient',
        'test_triplet_margin_met',
        'test_triplet_per_triplet_hinge',
        'test_triplet_reference'},
    'triplet_loss_item': {'test_triplet_gradient'},
    'in_batch_detached': {'test_in_batch_gradient'},
    'in_batch_without_scale': {
        'test_in_batch_orthogonal',
        'test_in_batch_reference',
        'test_in_batch_scale'},
    'in_batch_without_normalisation': {
        'test_in_batch_basic',
        'test_in_batch_orthogonal',
        'test_in_batch_reference',
        'test_in_batch_scale'},
    'in_batch_softmax_over_anchors': {'test_in_batch_reference', 'test_in_batch_scale'},
    'in_batch_imports_beyondbert': {
        'test_in_batch_basic',
        'test_in_batch_gradient',
        'test_in_batch_orthogonal',
        'test_in_batch_reference',
        'test_in_batch_scale'},
    'search_ascending': {'test_search_basic', 'test_search_reference', 'test_search_ties_and_all'},
    'search_largest_distance': {
        'test_search_basic',
        'test_search_reference',
        'test_search_ties_and_all'},
    'search_ties_reversed': {'test_search_ties_and_all'},
    'related_returns_itself': {'test_related_basic', 'test_related_duplicates'},
    'related_drops_first_hit': {'test_related_duplicates'},
}
