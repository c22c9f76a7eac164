"""nbgrader in the instructor's server: the course folder (with the course's own
nbgrader_config.py: the sandboxed grader), the same exchange, and the formgrader."""

import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "beyond-bert"
c.CourseDirectory.root = os.environ["BEYONDBERT_COURSE_DIR"]
c.Exchange.root = os.environ["BEYONDBERT_EXCHANGE"]
c.Exchange.path_includes_course = True
# Submissions are owned by the students' accounts, not the instructor's.
c.CollectApp.check_owner = False
