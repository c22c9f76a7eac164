"""Lessons: a page's qualitative claims about its own numbers, checked while the page executes.

A page writes each claim beside the sentence that makes it::

    lesson("LoRA is within 2 points of full fine-tuning", holds=abs(full - lora) <= 0.02,
           lora=lora, full=full)

In the book the call shows "✓ Checked on this build: …" with the evidence, and raises
:class:`LessonFailed` when ``holds`` is false, so the strict build fails instead of printing a
sentence its own numbers deny. When ``BEYONDBERT_PAGE_SEED`` is set (``make lessons`` re-runs every
page with other seeds) a failed lesson is recorded and printed instead of raised, so one run
reports every lesson of the page. Every call is appended to ``lessons.jsonl`` in the results folder.
"""

from __future__ import annotations

import json
import math
import numbers

from .results import results_dir
from .seeding import page_seed, seed_sweep_active

LESSONS_FILE = "lessons.jsonl"


class LessonFailed(AssertionError):
    """A page's claim about its measured numbers does not hold on this build."""


def _as_bool(holds: object) -> bool:
    if isinstance(holds, bool):
        return holds
    # A comparison of NumPy or torch figures gives a NumPy bool or a 0-d boolean tensor/array.
    dtype, ndim = str(getattr(holds, "dtype", "")), getattr(holds, "ndim", None)
    if dtype in {"bool", "torch.bool"} and ndim == 0:
        return bool(holds)
    raise TypeError(f"holds must be a bool (the claim's condition), got {type(holds).__name__}: "
                    f"{holds!r}")


def _format(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def evidence_text(evidence: dict[str, object]) -> str:
    """``a = 0.8612, b = 0.85`` from the named figures behind a lesson."""
    return ", ".join(f"{name} = {_format(value)}" for name, value in evidence.items())


def lesson(claim: str, holds: object, **evidence: object) -> bool:
    """Check ``claim`` about this build's numbers; show it as checked; fail when it does not hold.

    ``holds`` is the claim's condition (a bool); ``evidence`` names the figures it rests on
    (numbers or short strings), shown to the reader and kept for ``make lessons``.
    """
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError("claim must be the sentence being checked, a non-empty string")
    if not evidence:
        raise ValueError(f"lesson {claim!r}: name the figures it rests on, e.g. lora=0.86, full=0.87")
    held = _as_bool(holds)
    for name, value in evidence.items():
        if not isinstance(value, (numbers.Real, str)):
            raise TypeError(f"lesson {claim!r}: evidence {name} must be a number or a string, "
                            f"got {type(value).__name__}")
    row = {"claim": claim, "held": held, "seed": page_seed(),
           "evidence": {k: (v if isinstance(v, str) else float(v)) for k, v in evidence.items()}}
    folder = results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LESSONS_FILE, "a") as log:
        log.write(json.dumps(row) + "\n")
    _show(claim, held, evidence)
    if not held and not seed_sweep_active():
        raise LessonFailed(f"this build's numbers do not support the sentence {claim!r} "
                           f"({evidence_text(evidence)}): change the experiment, not the sentence")
    return held


def _show(claim: str, held: bool, evidence: dict[str, object]) -> None:
    if seed_sweep_active():
        print(f"LESSON {'HELD' if held else 'FAILED'} (seed {page_seed()}): {claim} | "
              f"{evidence_text(evidence)}")
        return
    from IPython.display import Markdown, display

    mark = "✓ **Checked on this build:**" if held else "✗ **Does not hold on this build:**"
    display(Markdown(f"{mark} {claim} ({evidence_text(evidence)})"))
