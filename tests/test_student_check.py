"""What passes locally passes graded (issue 24): one plain-data rule, gradients of losses, hidden
inputs from a course secret, and ``beyondbert check`` with the grader's own path.

The plain-data rule and the gradient helper are tested on their own, in a sandboxed worker and
through the sandboxed executor; the end-to-end tests then run the same answers (ex2's ``Counter``,
ex4's ``np.float64``, a ``.item()`` loss) in a student's kernel, in ``beyondbert check`` and
graded by nbgrader, and compare.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict, defaultdict, namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

from beyondbert.grading.student import (NotPlainData, create_course_secret, gradient,
                                        hidden_rng, hidden_seed, plain)
from beyondbert.sandbox import launcher
from beyondbert.sandbox.executor import SandboxedExecute
from beyondbert.sandbox.session import SandboxError, SandboxSession

needs_sandbox = pytest.mark.skipif(launcher.sandbox_problem() is not None,
                                   reason="bubblewrap cannot start a sandbox here")


# ------------------------------------------------------------------------ the plain-data rule
@pytest.mark.parametrize("value, expected", [
    (Counter({"e s": 9, "l o": 7}), {"e s": 9, "l o": 7}),
    (defaultdict(int, {"e s": 9}), {"e s": 9}),
    (OrderedDict([("b", 1), ("a", 2)]), {"b": 1, "a": 2}),
    ({"nested": Counter({"x": 1})}, {"nested": {"x": 1}}),
    (np.float64(0.25), 0.25),
    (np.float32(0.5), 0.5),
    (np.int64(3), 3),
    (np.bool_(True), True),
    (np.str_("word"), "word"),
    (namedtuple("Pair", "a b")(1, 2), (1, 2)),
    (torch.Size([2, 3]), (2, 3)),
])
def test_dict_subclasses_and_numpy_scalars_become_plain_python(value, expected):
    got = plain(value)
    assert got == expected and type(got) is type(expected)
    if isinstance(got, dict):
        assert all(type(v) is type(expected[k]) for k, v in got.items())


def test_tensors_come_back_detached_and_arrays_keep_their_dtype():
    x = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    got = plain({"t": x * 2, "a": np.arange(4, dtype=np.int16), "s": torch.tensor(1.5)})
    assert type(got["t"]) is torch.Tensor and not got["t"].requires_grad
    assert got["t"].dtype == torch.float64 and torch.equal(got["t"], torch.full((2, 3), 2.0,
                                                                               dtype=torch.float64))
    assert got["a"].dtype == np.int16 and got["s"].shape == ()
    assert plain(plain(got["t"])).equal(got["t"])  # idempotent: the grader's plain data stays


@pytest.mark.parametrize("value, names", [
    ({("e", "s"): 9}, ["tuple", "'e s'"]),
    ({1: "a"}, ["int", "string keys"]),
    ({"a", "b"}, ["set", "sorted"]),
    (1 + 2j, ["complex"]),
    (np.complex128(1j), ["complex"]),
    ((x for x in [1]), ["generator", "list("]),
    (object(), ["object", "return numbers"]),
])
def test_what_cannot_be_converted_names_the_type_and_the_fix(value, names):
    with pytest.raises(NotPlainData) as raised:
        plain(value)
    for name in names:
        assert name in str(raised.value)


# ------------------------------------------------------------------------------ gradients
def triplet(anchor, positive, negative, margin=1.0):
    d_pos = (anchor - positive).norm(dim=-1)
    d_neg = (anchor - negative).norm(dim=-1)
    return torch.relu(d_pos - d_neg + margin).mean()


def triplet_item(anchor, positive, negative, margin=1.0):
    return torch.tensor(triplet(anchor, positive, negative, margin).item())


def triplet_numpy(anchor, positive, negative, margin=1.0):
    a, p, n = (t.detach().numpy() for t in (anchor, positive, negative))
    d = np.linalg.norm(a - p, axis=-1) - np.linalg.norm(a - n, axis=-1) + margin
    return float(np.maximum(d, 0).mean())


def inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(5, 4, generator=g, dtype=dtype) for _ in range(3))


def test_a_correct_loss_s_gradient_equals_autograd():
    a, p, n = inputs()
    leaves = [t.clone().requires_grad_(True) for t in (a, p, n)]
    expected = torch.autograd.grad(triplet(*leaves, margin=2.0), leaves)
    got = gradient(triplet, a, p, n, wrt=(0, 1, 2), margin=2.0)
    assert type(got) is tuple and len(got) == 3
    for g, e in zip(got, expected):
        assert g.shape == e.shape and g.dtype == torch.float64 and torch.allclose(g, e)
    one = gradient(triplet, a, p, n, wrt=0, margin=2.0)
    assert type(one) is torch.Tensor and torch.allclose(one, expected[0])
    assert not a.requires_grad  # the caller's tensor is not touched


@pytest.mark.parametrize("loss", [triplet_item, triplet_numpy])
def test_a_loss_without_gradient_fails_with_a_message_a_student_understands(loss):
    with pytest.raises(AssertionError, match=r"no gradient with respect to argument 0: did you "
                                             r"use \.item\(\), float\(\) or NumPy\?"):
        gradient(loss, *inputs(), wrt=0)


def test_a_satisfied_triplet_has_a_zero_gradient_and_a_detached_part_is_named():
    a, p, n = inputs()
    zero = gradient(triplet, a, a.clone(), a + 100, wrt=(0, 1, 2))  # satisfied: no gradient
    assert all(torch.count_nonzero(g) == 0 for g in zero)
    def half_detached(x, y):
        return (x ** 2).sum() + y.detach().sum()

    def doubled(x):
        return x * 2

    def total(x):
        return x.sum()

    with pytest.raises(AssertionError, match="argument 1"):
        gradient(half_detached, a, p, wrt=(0, 1))
    with pytest.raises(AssertionError, match="single number"):
        gradient(doubled, a)
    with pytest.raises(TypeError, match="floating-point tensor"):
        gradient(total, torch.arange(3))


def loss_and_weights(anchor, positive, negative):
    return triplet(anchor, positive, negative), torch.ones(len(anchor))


def test_output_picks_the_loss_out_of_a_tuple_and_a_lambda_is_refused():
    a, p, n = inputs()
    got = gradient(loss_and_weights, a, p, n, wrt=0, output=0)
    assert torch.allclose(got, gradient(triplet, a, p, n, wrt=0))
    with pytest.raises(TypeError, match="not a lambda"):
        gradient(lambda *args: loss_and_weights(*args)[0], a, p, n)
    with pytest.raises(AssertionError, match=r"holding the loss at \[2\]"):
        gradient(loss_and_weights, a, p, n, output=2)


# ------------------------------------------------------------- the same, in a sandboxed worker
STUDENT_CELL = '''
import numpy as np
import torch
from collections import Counter, defaultdict

def count_pairs(vocab):
    counts = defaultdict(int)
    for word, n in vocab.items():
        symbols = word.split()
        for pair in zip(symbols, symbols[1:]):
            counts[" ".join(pair)] += n
    return counts

def count_pairs_counter(vocab):
    return Counter(count_pairs(vocab))

def score(x):
    return np.float64(x.sum().item())

def triplet(anchor, positive, negative, margin=1.0):
    d_pos = (anchor - positive).norm(dim=-1)
    d_neg = (anchor - negative).norm(dim=-1)
    return torch.relu(d_pos - d_neg + margin).mean()

def triplet_item(anchor, positive, negative, margin=1.0):
    return torch.tensor(triplet(anchor, positive, negative, margin).item())

def loss_and_weights(anchor, positive, negative):
    return triplet(anchor, positive, negative), torch.ones(len(anchor))
'''


@pytest.fixture(scope="module")
def session():
    if launcher.sandbox_problem() is not None:
        pytest.skip("bubblewrap cannot start a sandbox here")
    with SandboxSession(None) as sandboxed:
        sandboxed.run_cell(STUDENT_CELL, timeout=60)
        yield sandboxed


@needs_sandbox
def test_the_sandbox_converts_as_plain_does(session):
    toy = {"l o w </w>": 5, "n e w e s t </w>": 6}
    for name in ("count_pairs", "count_pairs_counter"):
        got = session.call(name, (toy,), {}, timeout=30)
        assert type(got) is dict and got == {"l o": 5, "o w": 5, "w </w>": 5, "n e": 6, "e w": 6,
                                             "w e": 6, "e s": 6, "s t": 6, "t </w>": 6}
    value = session.call("score", (torch.ones(3),), {}, timeout=30)
    assert type(value) is float and value == 3.0


@needs_sandbox
def test_gradients_are_computed_in_the_sandbox(session):
    a, p, n = inputs()
    got = session.gradient("triplet", (a, p, n), {"margin": 2.0}, (0, 2), timeout=30)
    expected = gradient(triplet, a, p, n, wrt=(0, 2), margin=2.0)
    assert all(torch.allclose(g, e) for g, e in zip(got, expected))
    with pytest.raises(SandboxError, match="no gradient with respect to argument 0") as raised:
        session.gradient("triplet_item", (a, p, n), {}, 0, timeout=30)
    assert raised.value.ename == "AssertionError"
    [got] = session.gradient("loss_and_weights", (a, p, n), {}, 0, timeout=30, output=0)
    assert torch.allclose(got, gradient(triplet, a, p, n))


def graded_notebook(cells):
    import nbformat

    nb = nbformat.v4.new_notebook()
    for i, (kind, source) in enumerate(cells):
        cell = nbformat.v4.new_code_cell(source)
        if kind == "test":
            cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                         "grade_id": f"test_{i}", "points": 1,
                                         "schema_version": 3}
        nb.cells.append(cell)
    return nb


GRADIENT_TEST = '''
from beyondbert.grading.student import gradient
a, p, n = (torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
           for i in range(3))
got = gradient({name}, a, p, n, wrt=(0, 1, 2))
leaves = [t.clone().requires_grad_(True) for t in (a, p, n)]
want = torch.autograd.grad(reference(*leaves), leaves)
assert all(torch.allclose(g, w) for g, w in zip(got, want)), "wrong gradient"
'''


WRAPPED = '''
from beyondbert.grading.student import gradient
a, p, n = (torch.randn(5, 4, generator=torch.Generator().manual_seed(i)) for i in range(3))

def wrapper(a, p, n):
    return loss_and_weights(a, p, n)[0]

got = {call}
assert got.shape == (5, 4)
'''


@needs_sandbox
def test_a_graded_test_cell_checks_the_gradient_in_the_sandbox(tmp_path):
    reference = ("from beyondbert.grading.student import plain\n"
                 "def reference(a, p, n):\n"
                 "    return torch.relu((a - p).norm(dim=-1) - (a - n).norm(dim=-1) + 1.0).mean()\n")
    nb = graded_notebook([("student", STUDENT_CELL),
                          ("test", reference + "\n" + GRADIENT_TEST.format(name="triplet")),
                          ("test", GRADIENT_TEST.format(name="triplet_item")),
                          ("test", "assert type(plain(count_pairs({'a b': 2}))) is dict\n"
                                   "assert type(score(torch.ones(2))) is float"),
                          ("test", WRAPPED.format(call="gradient(loss_and_weights, a, p, n, "
                                                       "output=0)")),
                          ("test", WRAPPED.format(call="gradient(wrapper, a, p, n)"))])
    resources = {"metadata": {"path": str(tmp_path)}, "nbgrader": {"assignment": "x"}}
    SandboxedExecute(timeout=30).preprocess(nb, resources)
    assert nb.cells[1].outputs == []
    [error] = nb.cells[2].outputs
    assert error["ename"] == "AssertionError"
    assert error["evalue"].startswith("your loss has no gradient with respect to arguments 0, 1 "
                                      "and 2: did you use .item(), float() or NumPy?")
    assert nb.cells[3].outputs == [] and nb.cells[4].outputs == []
    [error] = nb.cells[5].outputs  # a helper around the student's function: told what to do
    assert error["ename"] == "TypeError" and "pass loss_and_weights itself" in error["evalue"]


# ---------------------------------------------------------------------------- hidden inputs
def test_hidden_inputs_come_from_the_course_secret_else_a_public_seed(tmp_path, monkeypatch):
    monkeypatch.delenv("BEYONDBERT_COURSE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    public = hidden_seed("ex/task")
    assert public == hidden_seed("ex/task") and public != hidden_seed("ex/other")
    course = tmp_path / "course"
    (course / "autograded").mkdir(parents=True)
    secret = create_course_secret(course)
    assert secret.stat().st_mode & 0o777 == 0o600
    assert create_course_secret(course).read_text() == secret.read_text()  # kept, not replaced
    monkeypatch.chdir(course / "autograded")  # nbgrader grades in the course folder
    private = hidden_seed("ex/task")
    assert private != public and private == hidden_seed("ex/task")
    x = torch.randn(3, generator=hidden_rng("ex/task"))
    assert torch.equal(x, torch.randn(3, generator=hidden_rng("ex/task")))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BEYONDBERT_COURSE_DIR", str(course))  # the hub's instructor server
    assert hidden_seed("ex/task") == private
    other = tmp_path / "next-term"
    other.mkdir()
    create_course_secret(other)
    monkeypatch.setenv("BEYONDBERT_COURSE_DIR", str(other))
    assert hidden_seed("ex/task") not in (public, private)  # a new term, new inputs


# ------------------------------------------- the same answer: locally, in `check`, graded
REPO = Path(__file__).resolve().parents[1]


def wrapped(answers: dict[str, str], grade_id: str, name: str, wrap: str,
            imports: str) -> dict[str, str]:
    """``answers`` with the function ``name`` of answer cell ``grade_id`` returning
    ``wrap.format(result)`` around the solution's own result (the solution stays correct)."""
    source = answers[grade_id].replace(f"def {name}(", f"def _solution_{name}(")
    return dict(answers, **{grade_id: f"{imports}\n{source}\n\n"
                                      f"def {name}(*args, **kwargs):\n"
                                      f"    return {wrap.format(f'_solution_{name}(*args, **kwargs)')}\n"})


# ex2: Sennrich et al.'s get_stats uses defaultdict(int); a Counter is as natural.
# ex4: NumPy is allowed, and np.float64 passes isinstance(value, float) in a student's kernel.
# ex3: a triplet loss computed with .item() (no gradient): the same verdict everywhere.
MISMATCHES = {
    "02-roberta-and-modern-encoders": {
        "counter": ("count_pairs", "count_pairs", "Counter({})", "from collections import Counter"),
        "defaultdict": ("count_pairs", "count_pairs", "defaultdict(int, {})",
                        "from collections import defaultdict"),
    },
    "04-search": {
        "np_float64": ("ndcg_at_k", "ndcg_at_k", "np.float64({})", "import numpy as np"),
        "np_float64_recall": ("recall_at_k", "recall_at_k", "np.float64({})", "import numpy as np"),
    },
    "03-sentence-bert": {
        "item_loss": ("triplet_loss", "triplet_loss", "torch.tensor(float({}))", "import torch"),
    },
}


ONE_KERNEL = '''
import contextlib, io, json, sys
import nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
namespace, verdicts = {"__name__": "__main__"}, {}
for cell in nb.cells:
    if cell.cell_type != "code":
        continue
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(cell.source, "<cell>", "exec"), namespace)
        passed = True
    except Exception:
        passed = False
    meta = cell.metadata.get("nbgrader", {})
    if meta.get("grade") and not meta.get("solution"):
        verdicts[meta["grade_id"]] = passed
print(json.dumps(verdicts))
'''


def run_in_one_kernel(notebook: Path) -> dict[str, bool]:
    """A student's own run: every code cell in one fresh Python process, in order, as a kernel
    runs them (a set-up cell may patch torch: not in the test process); ``{grade_id: passed}``."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", ONE_KERNEL, str(notebook)], capture_output=True,
                          text=True, cwd=notebook.parent, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_everywhere(exercise: str, folder: Path) -> dict:
    from beyondbert.grading import grade_submissions
    from beyondbert.grading.check import check_notebook
    from notebooks import solution_answers, write_answers

    student_version = REPO / "exercises" / f"{exercise}.ipynb"
    answers = solution_answers(REPO / "solutions" / f"{exercise}.ipynb")
    notebooks = {}
    for case, (grade_id, name, wrap, imports) in MISMATCHES[exercise].items():
        (folder / case).mkdir()
        notebooks[case] = write_answers(student_version, wrapped(answers, grade_id, name, wrap,
                                                                 imports),
                                        folder / case / f"{exercise}.ipynb")
    graded = grade_submissions(exercise, notebooks, REPO)
    out = {}
    for case, notebook in notebooks.items():
        checked = check_notebook(notebook, REPO, exercise)
        out[case] = {
            "local": run_in_one_kernel(notebook),
            "check": {c.grade_id: c.status for c in checked.cells},
            "graded": {t.name: t.passed for t in graded[case].tests},
            "messages": {t.name: t.message for t in graded[case].tests if not t.passed},
            "score": [graded[case].score, graded[case].max_score],
        }
    return out


@needs_sandbox
@pytest.mark.parametrize("exercise", sorted(MISMATCHES))
def test_the_same_answer_scores_the_same_locally_in_check_and_graded(exercise, run_once):
    results = run_once(f"same-everywhere-{exercise}",
                       lambda folder: same_everywhere(exercise, folder))
    for case, result in results.items():
        visible = [g for g, status in result["check"].items() if status != "hidden"]
        assert visible, f"{case}: no visible test ran"
        for grade_id in visible:
            local, graded = result["local"][grade_id], result["graded"][grade_id]
            checked = result["check"][grade_id] == "passed"
            assert local == checked == graded, (
                f"{exercise} {case} {grade_id}: locally {local}, check {checked}, graded {graded}"
                f" ({result['messages'].get(grade_id, '')})")
        if case == "item_loss":  # a loss without a gradient loses points where one is checked
            released = (REPO / "exercises" / f"{exercise}.ipynb").read_text()
            if "gradient(triplet_loss" in released:
                assert result["score"][0] < result["score"][1]
                assert not all(result["graded"][g] for g in visible)  # seen before handing in
            continue
        # the converted answers are right answers: full marks, hidden tests included
        assert result["score"][0] == result["score"][1], (case, result["messages"])


# ------------------------------------------------------------ nbgrader's Validate button
TOY_ANSWER = '''
from collections import Counter

def count_pairs(vocab):
    counts = Counter()
    for word, n in vocab.items():
        symbols = word.split()
        for pair in zip(symbols, symbols[1:]):
            counts[" ".join(pair)] += n
    return counts

def count_pairs_as_tuples(vocab):
    return {tuple(pair.split()): n for pair, n in count_pairs(vocab).items()}
'''
TOY_TESTS = [
    "got = count_pairs({'a b c': 2})\nassert got == {'a b': 2, 'b c': 2}, got",
    "got = count_pairs_as_tuples({'a b c': 2})\nassert len(got) == 2",
]


@needs_sandbox
def test_the_validate_button_gives_the_check_s_verdict(tmp_path):
    import nbformat
    from nbgrader.validator import Validator

    from beyondbert.grading.check import check_notebook, use_course_check_in_validator

    nb = graded_notebook([("student", TOY_ANSWER)] + [("test", t) for t in TOY_TESTS])
    folder = tmp_path / "toy"
    folder.mkdir()
    nbformat.write(nb, folder / "toy.ipynb")
    checked = check_notebook(folder / "toy.ipynb", REPO, exercise="toy")
    assert [c.status for c in checked.cells] == ["passed", "failed"]
    assert "dict keys must be strings, got a key of type tuple" in checked.cells[1].message
    default = Validator.class_traits()["preprocessors"].default_value
    try:
        use_course_check_in_validator()
        result = Validator().validate(str(folder / "toy.ipynb"))
    finally:
        Validator.class_traits()["preprocessors"].default_value = default
    [failed] = result["failed"]
    assert failed["source"] == TOY_TESTS[1] and "NotPlainData" in failed["raw_error"]
    assert list(folder.iterdir()) == [folder / "toy.ipynb"]  # nothing written beside it


HIDDEN_INPUTS_TEST = '''
from beyondbert.grading.student import hidden_rng
assert double(torch.ones(2)).tolist() == [2.0, 2.0]
### BEGIN HIDDEN TESTS
x = torch.randn(4, generator=hidden_rng("toy/double"))
assert torch.equal(double(x), 2 * x), "wrong on the hidden inputs"
assert x.tolist() == {expected}, "not the course's hidden inputs"
### END HIDDEN TESTS
'''
DOUBLE = '''
import torch

inputs_seen = []

def double(x):
    inputs_seen.append(x.tolist())
    return 2 * x

def derived_seed():
    from beyondbert.grading.student import hidden_seed
    return hidden_seed("toy/double")
'''


@needs_sandbox
def test_hidden_inputs_are_the_course_s_and_student_code_cannot_derive_them(tmp_path,
                                                                            monkeypatch):
    monkeypatch.delenv("BEYONDBERT_COURSE_DIR", raising=False)
    course = tmp_path / "course"
    submission = course / "autograded" / "alice" / "toy"
    submission.mkdir(parents=True)
    create_course_secret(course)
    monkeypatch.chdir(course)  # where nbgrader grades
    private = hidden_seed("toy/double")
    hidden = torch.randn(4, generator=hidden_rng("toy/double")).tolist()
    for _ in range(2):  # a re-grade draws the same hidden inputs
        nb = graded_notebook([("student", DOUBLE),
                              ("test", HIDDEN_INPUTS_TEST.format(expected=hidden))])
        SandboxedExecute(timeout=30).preprocess(
            nb, {"metadata": {"path": str(submission)}, "nbgrader": {"assignment": "toy"}})
        assert nb.cells[1].outputs == []
    monkeypatch.chdir(tmp_path)
    public = hidden_seed("toy/double")
    assert private != public
    assert hidden != torch.randn(4, generator=hidden_rng("toy/double")).tolist()
    # the student's own code, in the sandbox, finds no secret: it derives only the public seed
    with SandboxSession(submission) as session:
        session.run_cell(DOUBLE, timeout=60)
        assert session.call("derived_seed", (), {}, timeout=30) == public


@needs_sandbox
def test_the_check_command_prints_the_verdict_per_task_and_fails_on_a_failed_test(tmp_path):
    import subprocess
    import sys

    import nbformat

    nb = graded_notebook([("student", TOY_ANSWER)] + [("test", t) for t in TOY_TESTS])
    nb.cells.insert(0, nbformat.v4.new_markdown_cell("## Task 1: count the pairs (2 points)"))
    nb.cells.append(nbformat.v4.new_code_cell("# 1 point (hidden test)."))
    nb.cells[-1].metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                         "grade_id": "hidden_only", "points": 1,
                                         "schema_version": 3}
    nbformat.write(nb, tmp_path / "toy.ipynb")
    script = Path(sys.executable).parent / "beyondbert"
    done = subprocess.run([str(script), "check", str(tmp_path / "toy.ipynb"), "--exercise", "toy",
                           "--repo", str(REPO)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("toy: the visible tests give 1 of 2 points; 1 more point is decided by "
                        "hidden tests when graded")
    assert "Task 1: count the pairs (2 points)  [1/2 visible points]" in lines
    assert any(line.split()[:3] == ["FAILED", "test_2", "0/1"] and "NotPlainData" in line
               for line in lines)
    assert any(line.split()[:2] == ["hidden", "hidden_only"] for line in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.ipynb"]


def test_check_restores_released_test_cells_and_names_missing_ones(tmp_path, monkeypatch):
    import nbformat

    from beyondbert.grading import check

    exercise = "02-roberta-and-modern-encoders"
    nb = nbformat.read(REPO / "exercises" / f"{exercise}.ipynb", as_version=4)
    tests = [c for c in nb.cells if check.is_test_cell(c)]
    tests[0].source = "pass  # the student 'fixed' the test"
    nb.cells.remove(tests[1])
    nbformat.write(nb, tmp_path / f"{exercise}.ipynb")
    ran = []

    def as_graded(nb, folder, exercise, repo, unsafe_no_sandbox=None):
        ran.append(nb)
        return nb, [], True

    monkeypatch.setattr(check, "run_as_graded", as_graded)
    result = check.check_notebook(tmp_path / f"{exercise}.ipynb", REPO)
    assert result.exercise == exercise and result.restored
    [executed] = ran
    first = next(c for c in executed.cells if check.is_test_cell(c))
    assert first.source == next(c for c in nbformat.read(
        REPO / "exercises" / f"{exercise}.ipynb", as_version=4).cells
        if check.is_test_cell(c)).source  # the released test, not the student's edit
    missing = [c for c in result.cells if "missing from your notebook" in c.message]
    assert [c.grade_id for c in missing] == [tests[1].metadata.nbgrader["grade_id"]]
    assert missing[0].status == "failed" and missing[0].task.startswith("Task 1")
    assert not result.ok
