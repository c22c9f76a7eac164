"""The errors the grading workflow reports to the instructor (never a bare traceback)."""

from __future__ import annotations


class GradingError(Exception):
    """Bad input: unknown exercise, missing file, not a course folder. Nothing was changed."""


class NbgraderFailed(GradingError):
    """An ``nbgrader`` step exited with an error; its log tail is in the message."""
