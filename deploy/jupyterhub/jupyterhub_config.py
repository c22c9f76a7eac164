"""JupyterHub for a Beyond BERT course on one machine (see the book's page "Grading at course scale").

Real local users (PAM log-in, one OS account per person) and LocalProcessSpawner: every user's
server runs as that user. Each server finds the course library, the exercises and nbgrader in the
course's Python environment (``BEYONDBERT_VENV``), and its nbgrader settings in
``config/student`` or ``config/instructor`` (through ``JUPYTER_CONFIG_PATH``): one exchange
folder for the course, the student id taken from the hub's user name, and the formgrader only in
the instructor's server.

Settings come from the environment so that the same file serves a course and the course's tests:

    BEYONDBERT_INSTRUCTOR   the instructor's user name (default: instructor)
    BEYONDBERT_COURSE_DIR   the instructor's nbgrader course folder (default: ~instructor/course)
    BEYONDBERT_EXCHANGE     the course's exchange folder (default: /srv/nbgrader/exchange)
    BEYONDBERT_VENV         the course's virtual environment (default: /opt/beyond-bert/.venv)
"""

import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821 - provided by JupyterHub

HERE = Path(__file__).resolve().parent
INSTRUCTOR = os.environ.get("BEYONDBERT_INSTRUCTOR", "instructor")
COURSE_DIR = os.environ.get("BEYONDBERT_COURSE_DIR", f"/home/{INSTRUCTOR}/course")
EXCHANGE = os.environ.get("BEYONDBERT_EXCHANGE", "/srv/nbgrader/exchange")
VENV = Path(os.environ.get("BEYONDBERT_VENV", "/opt/beyond-bert/.venv"))

c.JupyterHub.bind_url = "http://:8000"
c.JupyterHub.authenticator_class = "pam"           # log in with the machine's accounts
c.JupyterHub.spawner_class = "localprocess"        # each server runs as its own user
c.LocalAuthenticator.create_system_users = False   # add students with useradd (the guide)
c.Authenticator.admin_users = {INSTRUCTOR}
c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    "BEYONDBERT_EXCHANGE": EXCHANGE,
    "BEYONDBERT_COURSE_DIR": COURSE_DIR,
    "BEYONDBERT_INSTRUCTOR": INSTRUCTOR,
    "HF_HUB_OFFLINE": "1",
    "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
}


def per_user_config(spawner) -> None:
    """nbgrader settings by role: the instructor's server alone carries the formgrader."""
    role = "instructor" if spawner.user.name == INSTRUCTOR else "student"
    spawner.environment["JUPYTER_CONFIG_PATH"] = str(HERE / "config" / role)


c.Spawner.pre_spawn_hook = per_user_config

# Python of this process (for `jupyterhub -f` started from the course's environment).
os.environ.setdefault("BEYONDBERT_HUB_PYTHON", sys.executable)
