"""Start the sandbox's warm zygote under bubblewrap (``bwrap``), with resource limits.

The sandbox sees: the system's ``/usr``, the Python installation and the course venv (read-only),
a filtered copy of ``beyondbert`` without the modules an exercise asks students to write, the
files handed in (read-only, at ``/srv/submission``), and two writable folders, both size-limited
tmpfs: ``/tmp`` and the home folder (into which each worker copies the files handed in).
Everything else, the sandbox's own root and ``/dev`` included, is read-only. It has no network
(its own empty network namespace), no view of other processes, and no access to the course
folder: solutions, hidden tests, other submissions and the gradebook are not mounted at all.
When the grader runs as root, student code runs as an unprivileged uid.

Memory: the address space is capped (``RLIMIT_AS``), which does not count files in a tmpfs; the
two tmpfs sizes bound those. Where the grader may create a memory cgroup (v1 ``memory``
controller or a delegated v2 subtree: :func:`memory_confinement` says which), each sandbox also
gets one whose limit covers its processes' memory *and* the files they write, together. A sandbox
serves one submission at a time (see ``zygote``), so its limits are that submission's.

Processes: ``RLIMIT_NPROC`` counts every process of a *user*, and all sandboxes run as one uid,
so one submission forking until refused would stop every other sandbox from starting. Where a
pids cgroup can be created (:func:`process_confinement` says), each sandbox gets its own, capped
at ``Limits.processes``, and ``RLIMIT_NPROC`` is only a machine-wide backstop.

Without a sandbox (``--unsafe-no-sandbox``), :func:`spawn_unsandboxed_worker` starts a plain worker.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from .seccomp import keyring_filter

SANDBOX_HOME = "/home/student"
SUBMISSION_MOUNT = "/srv/submission"  # the files handed in, read-only
NO_SANDBOX_HELP = (
    "bubblewrap (`bwrap`) is needed to grade student code safely: install it with "
    "`apt-get install bubblewrap` (Debian/Ubuntu). To grade WITHOUT a sandbox — student code then "
    "runs with your rights and can read and change your files — pass --unsafe-no-sandbox."
)


NPROC_BACKSTOP = 16384  # processes of the sandboxes' uid in all, where each has a pids cgroup


@dataclass(frozen=True)
class Limits:
    """Per-submission caps: address space (and the memory cgroup's limit, where there is one), CPU
    seconds of one process, processes/threads, size of one written file, size of ``/tmp``, and
    room in the home folder beyond the files handed in. POSIX message queues are refused (they
    would outlive a worker)."""

    memory_bytes: int = 4 * 1024**3
    cpu_seconds: int = 900
    processes: int = 256
    file_bytes: int = 64 * 1024**2
    tmp_bytes: int = 256 * 1024**2
    home_bytes: int = 256 * 1024**2

    def apply(self, own_pids_cgroup: bool = False) -> None:
        """Set the limits on the current process (called in the child before exec).

        ``RLIMIT_NPROC`` counts every process of the *user*, in all sandboxes together (they run
        as one uid): one submission's fork bomb would stop every other sandbox from starting.
        With ``own_pids_cgroup`` (the sandbox's processes are capped by a pids cgroup of its
        own) it is only a machine-wide backstop of ``NPROC_BACKSTOP``.
        """
        nproc = NPROC_BACKSTOP if own_pids_cgroup else self.processes
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_bytes, self.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))


def filtered_library(target: Path, forbidden_modules: tuple[str, ...]) -> Path:
    """Copy the ``beyondbert`` package into ``target`` without ``forbidden_modules``.

    ``forbidden_modules`` are dotted names such as ``"beyondbert.pooling"``; entries outside
    ``beyondbert`` (``"torch.fake_quantize_per_tensor_affine"``) are functions the worker refuses,
    listed in the copy's ``sandbox.forbidden.NAMES_FILE``.
    """
    import beyondbert

    source = Path(beyondbert.__file__).parent
    from .forbidden import NAMES_FILE, library_names

    others = library_names(forbidden_modules)  # functions outside beyondbert: refused by name
    skip = {name.split(".", 1)[1].replace(".", "/") for name in forbidden_modules
            if "." in name and name not in others}

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(source)
        dropped = {"__pycache__"}
        for name in names:
            stem = (rel / name).as_posix().removesuffix(".py")
            if stem in skip:
                dropped.add(name)
        return dropped

    copy = target / "beyondbert"
    shutil.copytree(source, copy, ignore=ignore)
    if others:  # the worker refuses these before any student cell runs (sandbox.forbidden)
        (copy / NAMES_FILE).write_text("".join(f"{name}\n" for name in others))
    return copy


def _ro_system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                "/etc/fonts"):
        if os.path.exists(etc):
            args += ["--ro-bind", etc, etc]
    return args


def _dirs_for(path: Path) -> list[str]:
    """World-readable parent folders so an unprivileged uid can reach a bind mount."""
    args = []
    for parent in reversed(path.parents):
        if str(parent) != "/":
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def bwrap_command(files: Path, library_copy: Path, control_fd: int, uid: int | None,
                  limits: Limits = Limits(), home_bytes: int | None = None,
                  seccomp_fd: int | None = None) -> list[str]:
    """The full ``bwrap ... python -m beyondbert.sandbox.zygote CONTROL_FD`` command line.

    ``files`` (the folder the grader stages each submission's files in) is mounted read-only at
    ``SUBMISSION_MOUNT``; the home folder is a tmpfs of ``home_bytes`` (default
    ``limits.home_bytes``), ``/tmp`` one of ``limits.tmp_bytes``; the root and ``/dev`` are
    remounted read-only. ``seccomp_fd``: a file holding :func:`seccomp.keyring_filter`'s program.
    """
    import beyondbert

    # An empty /tmp first: the Python installation or the course may themselves live under /tmp
    # (a CI checkout), and their bind mounts must land on top of it, not be hidden by it.
    mounts = ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
              *_ro_system_mounts()]
    for prefix in dict.fromkeys([Path(sys.base_prefix), Path(sys.prefix)]):
        if not str(prefix).startswith("/usr"):
            mounts += _dirs_for(prefix) + ["--ro-bind", str(prefix), str(prefix)]
    package_dir = Path(beyondbert.__file__).parent
    mounts += _dirs_for(package_dir) + ["--ro-bind", str(library_copy), str(package_dir)]
    mounts += _dirs_for(Path(SUBMISSION_MOUNT)) + ["--ro-bind", str(files), SUBMISSION_MOUNT]
    mounts += _dirs_for(Path(SANDBOX_HOME)) + [
        "--perms", "1777", "--size", str(home_bytes or limits.home_bytes), "--tmpfs", SANDBOX_HOME]
    env = {"PATH": "/usr/bin:/bin", "HOME": SANDBOX_HOME, "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": "/tmp",
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # The sandbox's root and /dev are tmpfs without a size: read-only, nothing can fill them.
    command = ["bwrap", *mounts, "--proc", "/proc", "--dev", "/dev",
               "--remount-ro", "/dev", "--remount-ro", "/",
               "--unshare-ipc", "--unshare-pid", "--unshare-net",
               "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session",
               "--clearenv", "--chdir", SANDBOX_HOME]
    for key, value in env.items():
        command += ["--setenv", key, value]
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    python = [sys.executable, "-m", "beyondbert.sandbox.zygote", str(control_fd)]
    if uid is None:  # not root: bwrap makes its own user namespace
        return command + ["--unshare-user", "--", *python]
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all"]
    return command + ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--", *drop, *python]


def tree_bytes(folder: Path) -> int:
    """Room the files under ``folder`` take in a tmpfs (whole 4 KiB pages, one per folder)."""
    page = 4096
    return sum(-(-path.lstat().st_size // page) * page if path.is_file() else page
               for path in [folder, *folder.rglob("*")])


def _own_cgroup(controller: str) -> tuple[Path, int] | None:
    """The folder of this process's cgroup for ``controller`` and the cgroup version, or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):  # cgroup v1: a hierarchy of its own
            return root / controller / path.lstrip("/"), 1
    if (root / "cgroup.controllers").is_file():  # cgroup v2: one unified hierarchy
        path = next((line.split(":", 2)[2] for line in lines if line.startswith("0::")), None)
        if path is not None:
            return root / path.lstrip("/"), 2
    return None


class MemoryCgroup:
    """A memory cgroup for one submission's workers: its limit covers their memory and what they
    write to their tmpfs folders, together. The kernel's OOM killer ends a worker past it (the
    cell fails as after a crash)."""

    controller = "memory"

    def __init__(self, path: Path, version: int) -> None:
        self.path, self.version = path, version

    @classmethod
    def create(cls, limit_bytes: int) -> "MemoryCgroup | None":
        """A new cgroup under this process's own, or None where that is not allowed here."""
        found = _own_cgroup("memory")
        if found is None:
            return None
        parent, version = found
        if version == 2:
            try:
                delegated = "memory" in (parent / "cgroup.subtree_control").read_text().split()
            except OSError:
                delegated = False
            if not delegated:
                return None
        path = parent / f"beyondbert-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        limits = ({"memory.limit_in_bytes": limit_bytes, "memory.memsw.limit_in_bytes": limit_bytes}
                  if version == 1 else {"memory.max": limit_bytes, "memory.swap.max": 0})
        try:
            path.mkdir()
        except OSError:
            return None
        cgroup = cls(path, version)
        for name, value in limits.items():
            try:
                (path / name).write_text(str(value))
            except OSError:
                if name in ("memory.limit_in_bytes", "memory.max"):  # the limit itself failed
                    cgroup.remove()
                    return None
        return cgroup

    def enter(self) -> None:
        """Move the calling process into the cgroup (in a child, before it runs the worker)."""
        try:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            pass  # the address-space and tmpfs limits still hold

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (retried while the kernel lets go)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


class PidsCgroup(MemoryCgroup):
    """A pids cgroup for one sandbox: at most ``Limits.processes`` processes and threads in it,
    whatever runs in the other sandboxes (``RLIMIT_NPROC`` counts per user, so all sandboxes of
    one uid would share it). A fork past the cap fails inside this sandbox only."""

    controller = "pids"

    @classmethod
    def create(cls, max_pids: int) -> "PidsCgroup | None":
        """A new pids cgroup under this process's own, or None where that is not allowed."""
        found = _own_cgroup("pids")
        if found is None:
            return None
        parent, version = found
        if version == 2:
            try:
                delegated = "pids" in (parent / "cgroup.subtree_control").read_text().split()
            except OSError:
                delegated = False
            if not delegated:
                return None
        path = parent / f"beyondbert-pids-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
        except OSError:
            return None
        cgroup = cls(path, version)
        try:
            (path / "pids.max").write_text(str(max_pids))
        except OSError:
            cgroup.remove()
            return None
        return cgroup

    def enter(self) -> None:
        """Move the calling process into the cgroup; raise if that fails (the limit is the
        sandbox's only process cap)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))


def process_confinement() -> str:
    """How a sandbox's processes are capped on this machine, in words."""
    cgroup = PidsCgroup.create(Limits().processes)
    if cgroup is None:
        return ("RLIMIT_NPROC only, shared by every sandbox of the same uid: no pids cgroup can "
                "be created here")
    cgroup.remove()
    return f"a pids cgroup (v{cgroup.version}) of {Limits().processes} per sandbox"


def memory_confinement() -> str:
    """Which memory limits apply to a worker on this machine, in words."""
    cgroup = MemoryCgroup.create(Limits().memory_bytes)
    if cgroup is None:
        return "address space (RLIMIT_AS) and tmpfs sizes: no memory cgroup can be created here"
    cgroup.remove()
    return (f"a memory cgroup (v{cgroup.version}) per submission, plus address space (RLIMIT_AS) "
            f"and tmpfs sizes")


def sandbox_problem() -> str | None:
    """None when bubblewrap can start a sandbox here, else a message saying what to do."""
    if shutil.which("bwrap") is None:
        return NO_SANDBOX_HELP
    # --size (a bounded tmpfs) needs bubblewrap 0.5 or newer; an older one fails here, not later
    probe = ["bwrap", "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev",
             "--proc", "/proc", "--size", str(2**20), "--tmpfs", "/tmp", "--remount-ro", "/"]
    if os.geteuid() != 0:
        probe.append("--unshare-user")
    result = subprocess.run([*probe, "true"], capture_output=True, text=True)
    if result.returncode != 0:
        return (f"bubblewrap is installed but cannot start a sandbox (version 0.5 or newer is "
                f"needed): {result.stderr.strip()}. " + NO_SANDBOX_HELP)
    return None


def _child_setup(limits: Limits, cgroup: MemoryCgroup | None, pids: PidsCgroup | None = None):
    def setup() -> None:  # in the child, before exec
        if cgroup is not None:
            cgroup.enter()
        if pids is not None:
            pids.enter()
        limits.apply(own_pids_cgroup=pids is not None)
    return setup


def spawn_zygote(files: Path, library_copy: Path, control_fd: int, limits: Limits,
                 uid: int | None, log: Path, cgroup: MemoryCgroup | None = None,
                 home_bytes: int | None = None,
                 pids: PidsCgroup | None = None) -> subprocess.Popen:
    """Start a sandbox running the zygote on ``control_fd`` (see :func:`bwrap_command`).

    Its own stderr (bubblewrap's errors, a crash before it is ready) goes to ``log``.
    """
    program = keyring_filter()
    with open(log, "ab") as stderr, tempfile.TemporaryFile() as seccomp:
        if program is not None:
            seccomp.write(program)
            seccomp.seek(0)
        seccomp_fd = seccomp.fileno() if program is not None else None
        command = bwrap_command(files, library_copy, control_fd, uid, limits, home_bytes,
                                seccomp_fd)
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            pass_fds=(control_fd,) + ((seccomp_fd,) if seccomp_fd is not None else ()),
            preexec_fn=_child_setup(limits, cgroup, pids), start_new_session=True)


def spawn_unsandboxed_worker(workdir: Path, seed: int, limits: Limits,
                             log: Path) -> tuple[subprocess.Popen, int, int]:
    """Start a worker WITHOUT a sandbox in ``workdir``: ``(process, request_fd, reply_fd)``."""
    req_read, req_write = os.pipe()
    rep_read, rep_write = os.pipe()
    command = [sys.executable, "-m", "beyondbert.sandbox.worker", str(seed), str(req_read),
               str(rep_write)]
    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr, pass_fds=(req_read, rep_write), preexec_fn=_child_setup(limits, None),
            start_new_session=True)
    os.close(req_read)
    os.close(rep_write)
    return process, req_write, rep_read
