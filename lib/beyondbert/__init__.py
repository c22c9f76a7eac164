"""Beyond BERT: the shared library every chapter and exercise of the course imports.

One idea per module: ``models`` (loading the packaged encoder), ``attention``, ``bert`` (a
from-scratch encoder), ``pooling``, ``seeding``, ``plotting`` and ``grading`` (the instructor's
workflow over nbgrader).
"""

__version__ = "0.1.0"
