"""The sandbox's errors, in a module of their own: ``session`` and ``warm`` both raise them, and
neither needs to import the other for that (``session`` uses ``warm``; ``warm`` never imports
``session``)."""

from __future__ import annotations


class SandboxError(RuntimeError):
    """The student code failed in the sandbox (error, time-out, crash); ``ename`` names how."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue = ename, evalue


class NoSandbox(RuntimeError):
    """No sandbox can be started and unsafe grading was not asked for."""


class SandboxBroken(RuntimeError):
    """The worker could not even start: a fault of the grading machine, not of the student.

    It is not caught per cell: grading that submission fails, the grader tries it again, and a
    submission that still cannot get a sandbox is flagged as not graded (never scored).
    """


class WarmSandboxFailed(RuntimeError):
    """The zygote did not answer as it must (gone, stopped, or a reset it could not finish)."""
