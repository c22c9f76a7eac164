"""nbgrader in a student's server: fetch and submit through the course's exchange."""

import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "beyond-bert"
c.Exchange.root = os.environ["BEYONDBERT_EXCHANGE"]
c.Exchange.path_includes_course = True
# Every submission is named after the hub user that made it (also where all users share one
# OS account, as in the course's tests).
c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]

# The Validate button runs the visible tests the way grading does (`beyondbert check`): answers in
# the sandbox, returned values converted to plain data, the released test cells.
from beyondbert.grading.check import use_course_check_in_validator  # noqa: E402

use_course_check_in_validator()
