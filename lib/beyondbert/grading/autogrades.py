"""nbgrader's ``SaveAutoGrades`` with one database commit per notebook instead of one per cell.

nbgrader commits after every graded and solution cell: some 40 commits per submission of
exercise 1, each an ``fsync`` of a SQLite gradebook (about 10 ms on a plain disk), and each a
moment the other grading job waits for the database lock. ``SaveAutoGradesAtOnce`` saves the
same scores and comments in one transaction per notebook: all of a submission's scores are
saved, or none. The course's ``nbgrader_config.py`` puts it in nbgrader's autograde steps.
"""

from __future__ import annotations

from nbgrader.api import Gradebook
from nbgrader.preprocessors import SaveAutoGrades


class _CommitAtEnd:
    """Stands for the gradebook's session while cells are saved: ``commit()`` only flushes."""

    def __init__(self, session) -> None:
        self._session = session

    def commit(self) -> None:
        self._session.flush()

    def __getattr__(self, name: str):
        return getattr(self._session, name)


class SaveAutoGradesAtOnce(SaveAutoGrades):
    """Save the autograder's scores and comments into the gradebook, in one transaction."""

    def preprocess(self, nb, resources):
        self.notebook_id = resources["nbgrader"]["notebook"]
        self.assignment_id = resources["nbgrader"]["assignment"]
        self.student_id = resources["nbgrader"]["student"]
        self.db_url = resources["nbgrader"]["db_url"]
        self.gradebook = Gradebook(self.db_url)
        with self.gradebook:
            session = self.gradebook.db
            self.gradebook.db = _CommitAtEnd(session)
            try:
                nb, resources = super(SaveAutoGrades, self).preprocess(nb, resources)  # per cell
            finally:
                self.gradebook.db = session
            session.commit()
        return nb, resources
