"""nbgrader in the instructor's server: the course folder (with the course's own
nbgrader_config.py: the sandboxed grader), the same exchange, and the formgrader."""

import os

c = get_config()  # noqa: F821 - provided by nbgrader

c.CourseDirectory.course_id = "beyond-bert"
c.CourseDirectory.root = os.environ["BEYONDBERT_COURSE_DIR"]
c.Exchange.root = os.environ["BEYONDBERT_EXCHANGE"]
c.Exchange.path_includes_course = True
# Each inbound folder must be owned by the account of the student it names (the course's hub runs
# "localprocess" with one account per person), so one student cannot hand in as another. A hub
# that runs everyone as one account (the tests' "simple" spawner) sets BEYONDBERT_ONE_ACCOUNT=1:
# there no folder can be told apart by its owner.
c.ExchangeCollect.check_owner = os.environ.get("BEYONDBERT_ONE_ACCOUNT") != "1"
