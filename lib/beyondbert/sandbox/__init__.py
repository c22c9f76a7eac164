"""Run student code in a sandbox and bring back plain data only.

``plaindata`` encodes values (numbers, strings, arrays, tensors — never pickles); ``worker`` runs
inside the sandbox and executes cells and calls; ``launcher`` starts a sandbox under bubblewrap
with limits on memory (a cgroup where allowed), files (size-limited tmpfs), CPU time and
processes; in it, the ``zygote`` imports torch once and forks a fresh worker per submission and
per restart, killing every other process and emptying the writable folders in between; ``warm``
keeps such sandboxes ready in the grading process; ``session`` drives one submission's worker
from the trusted side, restarts it after a timeout, a crash or a forged reply, and enforces the
submission's time budget; ``executor`` is nbgrader's execute step.
"""
