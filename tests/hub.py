"""A real JupyterHub for the course's tests: deploy/jupyterhub's configuration on loopback ports.

:class:`Hub` starts ``jupyterhub`` with the course's hub configuration (``deploy/jupyterhub``)
and what a test machine needs on top: free 127.0.0.1 ports, a private folder for the hub's
database, the users' homes and the exchange, all users on the test's own OS account
(``SimpleLocalProcessSpawner``; the course's own setting is real accounts), and an admin service
token. Every process the hub starts carries a marker in its environment, so :meth:`Hub.stop`
can find and end each one by process id, and report any that outlived the hub.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy" / "jupyterhub"
PROXY = DEPLOY / "node_modules" / ".bin" / "configurable-http-proxy"
ADMIN_SCOPES = ["admin:users", "admin:servers", "tokens", "list:users", "read:users",
                "access:servers"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    body: str

    def json(self):
        return json.loads(self.body)


@dataclass
class Hub:
    folder: Path
    course_dir: Path
    instructor: str = "instructor"
    marker: str = field(default_factory=lambda: secrets.token_hex(8))
    admin_token: str = field(default_factory=lambda: secrets.token_hex(24))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def exchange(self) -> Path:
        return self.folder / "exchange"

    def home(self, user: str) -> Path:
        return self.folder / "home" / user

    def write_config(self) -> Path:
        venv_bin = Path(sys.executable).parent
        config = self.folder / "jupyterhub_test_config.py"
        root_args = ["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []
        config.write_text(f'''
c = get_config()  # noqa: F821
load_subconfig({str(DEPLOY / "jupyterhub_config.py")!r})  # noqa: F821 - the course's hub
c.JupyterHub.bind_url = "http://127.0.0.1:{self.port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.JupyterHub.db_url = "sqlite:///{self.folder / 'hub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(self.folder / 'cookie_secret')!r}
c.JupyterHub.pid_file = {str(self.folder / 'hub.pid')!r}
# The test's own account for everyone (the course runs "localprocess" with real accounts).
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(self.folder / 'home' / '{username}')!r}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.Spawner.cmd = [{str(venv_bin / "jupyterhub-singleuser")!r}]
c.Spawner.args = {root_args!r}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment.update({{
    "BEYONDBERT_HUB_TEST": {self.marker!r},
    "BEYONDBERT_ONE_ACCOUNT": "1",  # everyone is this account: collect cannot check owners
    "PATH": {f"{venv_bin}:{os.environ.get('PATH', '')}"!r},
}})
c.JupyterHub.services = [{{"name": "course-test", "api_token": {self.admin_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "course-test", "scopes": {ADMIN_SCOPES!r},
                            "services": ["course-test"]}}]
''')
        return config

    def start(self, timeout: float = 90) -> None:
        if not PROXY.exists():
            raise RuntimeError(f"{PROXY} is missing: run `make setup` (it runs npm ci in "
                               f"{DEPLOY.relative_to(REPO)})")
        self.exchange.mkdir(parents=True, exist_ok=True)
        self.exchange.chmod(0o1777)
        env = dict(os.environ, BEYONDBERT_HUB_TEST=self.marker,
                   BEYONDBERT_INSTRUCTOR=self.instructor,
                   BEYONDBERT_COURSE_DIR=str(self.course_dir),
                   BEYONDBERT_EXCHANGE=str(self.exchange),
                   BEYONDBERT_VENV=str(Path(sys.executable).parent.parent))
        log = open(self.folder / "hub.log", "w")
        self.process = subprocess.Popen(
            [Path(sys.executable).parent / "jupyterhub", "-f", self.write_config()],
            cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                if self.request("GET", "/hub/api/", token=self.admin_token).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the hub did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        path = self.folder / "hub.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def request(self, method: str, path: str, token: str | None = None,
                data: dict | None = None, form: dict | None = None,
                timeout: float = 300) -> Response:
        """One HTTP request to the hub's public address; never raises for an HTTP status."""
        headers = {"Authorization": f"token {token}"} if token else {}
        body = None
        if data is not None:
            body, headers["Content-Type"] = json.dumps(data).encode(), "application/json"
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return Response(answer.status, answer.read().decode())
        except urllib.error.HTTPError as err:
            return Response(err.code, err.read().decode(errors="replace"))

    def add_user(self, name: str, wait: bool = True) -> str:
        """Create ``name``, start their server (``wait``: until it is ready), return a token of
        their own."""
        created = self.request("POST", f"/hub/api/users/{name}", token=self.admin_token)
        assert created.status in (201, 409), created
        token = self.request("POST", f"/hub/api/users/{name}/tokens", token=self.admin_token,
                             data={"note": "course test", "expires_in": 3600})
        assert token.status in (200, 201), token
        self.tokens[name] = token.json()["token"]
        self.home(name).mkdir(parents=True, exist_ok=True)
        started = self.request("POST", f"/hub/api/users/{name}/server", token=self.admin_token)
        assert started.status in (201, 202), f"{started}\n{self.log_tail()}"
        if wait:
            self.wait_until_ready([name])
        return self.tokens[name]

    def wait_until_ready(self, names: list[str], timeout: float = 300) -> None:
        """Wait until every named user's server is ready."""
        waiting, deadline = set(names), time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            users = self.request("GET", "/hub/api/users", token=self.admin_token).json()
            users = users["items"] if isinstance(users, dict) else users
            ready = {u["name"] for u in users
                     if ((u.get("servers") or {}).get("") or {}).get("ready")}
            waiting -= ready
            time.sleep(0.5)
        if waiting:
            raise RuntimeError(f"servers not ready after {timeout:.0f} s: {sorted(waiting)}\n"
                               f"{self.log_tail()}")

    def as_user(self, user: str, method: str, path: str, **kwargs) -> Response:
        """A request to ``/user/<user>/<path>`` with ``user``'s own token."""
        return self.request(method, f"/user/{user}/{path}", token=self.tokens[user], **kwargs)

    def processes(self) -> list[int]:
        """Process ids whose environment carries this hub's marker."""
        found, needle = [], f"BEYONDBERT_HUB_TEST={self.marker}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self) -> list[int]:
        """Stop the hub (it stops its proxy and servers), then end anything left by process id.

        Returns the ids of processes that outlived a clean stop (a test fails on any).
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = self.processes()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left
