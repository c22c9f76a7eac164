"""nbgrader configuration of the Beyond BERT course.

This repository is not itself an nbgrader course folder: `beyondbert release EXERCISE --course DIR`
copies this file into an instructor's course folder, and the grading commands and tests copy it
into the temporary course folders they build (see lib/beyondbert/grading/course.py).
"""

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern,
                                    LimitOutput)

from beyondbert.grading.autogrades import SaveAutoGradesAtOnce
from beyondbert.sandbox.executor import SandboxedExecute

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "beyond-bert"

# Notebooks import torch: nbgrader's default 30 s per cell is tight on a busy 2-core machine, and
# a cell that times out silently scores 0.
c.Execute.timeout = 120
c.Execute.startup_timeout = 120

# Autograding runs student code in a bubblewrap sandbox and the test cells in the grader (see
# lib/beyondbert/sandbox/): nbgrader's own steps, with its Execute replaced by SandboxedExecute,
# and its SaveAutoGrades by one that commits each submission's scores at once (not per cell).
c.Autograde.autograde_preprocessors = [
    SandboxedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGradesAtOnce,
    AssignLatePenalties, CheckCellMetadata,
]
c.SandboxedExecute.timeout = 60  # seconds per cell or per call of a student function
# The library modules each exercise asks students to write themselves: hidden from student code,
# so importing the course's own implementation earns no credit (the exercises say so). Entries
# outside beyondbert are library functions an exercise forbids, by exact name: the sandbox's worker
# replaces each with one that raises ForbiddenFunction (beyondbert.sandbox.forbidden), and the
# exercise's set-up cell refuses the same names, so a student's own run shows the same message.
FORBIDDEN_NAMES = {  # the same lists as the exercises' set-up cells (tests/test_exercises.py checks)
    "03-sentence-bert": ["torch.nn.functional.triplet_margin_loss", "torch.triplet_margin_loss",
                         "torch.nn.TripletMarginLoss"],
    "06-quantization": ["torch.quantize_per_tensor", "torch.quantize_per_channel",
                        "torch.fake_quantize_per_tensor_affine",
                        "torch.fake_quantize_per_channel_affine",
                        "torch._fake_quantize_learnable_per_tensor_affine",
                        "torch._fake_quantize_learnable_per_channel_affine",
                        "torch.fused_moving_avg_obs_fake_quant"],
}
c.SandboxedExecute.forbidden_modules = {
    "01-encoders-and-bert": ["beyondbert.attention", "beyondbert.pooling", "beyondbert.bert"],
    "02-roberta-and-modern-encoders": ["beyondbert.mlm", "beyondbert.tokenization", "beyondbert.modern"],
    "03-sentence-bert": ["beyondbert.losses", "beyondbert.sbert", "beyondbert.pooling",
                         "beyondbert.retrieval", "beyondbert.embedding_quantization",
                         *FORBIDDEN_NAMES["03-sentence-bert"]],
    "04-search": ["beyondbert.retrieval", "beyondbert.embedding_quantization"],
    "05-finetuning-distillation-lora": ["beyondbert.distillation", "beyondbert.lora"],
    "06-quantization": ["beyondbert.quantization", *FORBIDDEN_NAMES["06-quantization"]],
    "07-decoders-and-rlhf": ["beyondbert.gpt", "beyondbert.rlhf"],
}

# What replaces the code between ### BEGIN SOLUTION / ### END SOLUTION in student versions.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Collecting from the exchange: only regular files of folders owned by the student they name,
# stamped with the time of collection (see lib/beyondbert/grading/exchange.py).
c.ExchangeFactory.collect = "beyondbert.grading.exchange.SafeCollect"

# A JupyterHub course sets its exchange folder here (or passes --exchange to `beyondbert release`);
# without one, `beyondbert release` only writes the student version to release/.
# c.Exchange.root = "/srv/nbgrader/exchange"
