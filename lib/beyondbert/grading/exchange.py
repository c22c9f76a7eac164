"""Collecting from nbgrader's exchange without trusting anything a student put there.

nbgrader's own ``ExchangeCollect`` copies ``inbound/<student>+<exercise>+<time>+<random>/`` with
``shutil.copytree``, which follows symbolic links with the instructor's rights (a link to the
solution or the gradebook arrives as a copy of it), picks a student's newest submission by the
time in the folder's *name* (any student can create ``inbound/<someone-else>+...+2099-...``) and
only logs a warning when the folder's owner is not the student it names.

:class:`SafeCollect` replaces it (``c.ExchangeFactory.collect`` in the course's
``nbgrader_config.py``; ``beyondbert collect`` always passes it). For each inbound folder it

* refuses a folder that is not a plain folder (checked with ``lstat``, never following a link),
  whose owner is not the student it names (``check_owner``, on by default), or that holds
  anything but regular files and folders (symbolic links, FIFOs, devices, sockets), files owned
  by someone else (a hard link to an instructor's file), or more than ``MAX_FILES`` files /
  ``MAX_BYTES`` bytes. A refused folder is never copied and nbgrader's log says why (a WARNING
  the ``beyondbert collect`` command shows the instructor);
* picks a student's latest folder by its status-change time (``st_ctime``, which a student cannot
  set), never by the time in its name; a name that is not even a time does not stop the class;
* copies regular files only, through folder file descriptors opened with ``O_NOFOLLOW`` (a file
  swapped for a link between the check and the copy is refused, not followed), without the
  student's own ``timestamp.txt``;
* stamps the submission with the time it was collected (``timestamp.txt``, written by the
  grader) and records which inbound folder it came from (``beyondbert-collected.json`` in the
  course), so a later collect takes a folder again only when it changed.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"  # nbgrader's timestamp.txt
RECORD = "beyondbert-collected.json"  # {exercise: {student: {"folder", "ctime_ns"}}}
MAX_FILES = 200  # files in one submission folder
MAX_BYTES = 64 * 2**20  # bytes in one submission folder
REFUSED = "refused"  # every warning about a refused folder starts with this word


class Refused(Exception):
    """An inbound folder that is not collected, and why."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file"


def copy_regular_tree(source: str | Path, target: Path, owner: int | None = None,
                      skip: frozenset[str] = frozenset(), max_files: int = MAX_FILES,
                      max_bytes: int = MAX_BYTES) -> int:
    """Copy the regular files and folders under ``source`` into the new folder ``target``;
    return the bytes copied. :class:`Refused` (nothing of it kept) when ``source`` or anything
    under it is a symbolic link or not a regular file or folder, is owned by another uid than
    ``owner`` (when given), or when there are more than ``max_files`` files or ``max_bytes``.

    Every entry is checked with ``lstat`` and opened relative to its folder's descriptor with
    ``O_NOFOLLOW``, and the opened file is checked again (``fstat``): nothing is ever read
    through a link. ``skip``: names at the top level that are left out (``timestamp.txt``).
    """
    counts = [0, 0]  # files, bytes

    def check(st: os.stat_result, where: str) -> None:
        if owner is not None and st.st_uid != owner:
            raise Refused(f"{where} is owned by uid {st.st_uid}, not by the student")

    def walk(dir_fd: int, into: Path, where: str, top: bool) -> None:
        into.mkdir(mode=0o755)
        for name in sorted(os.listdir(dir_fd)):
            if top and name in skip:
                continue
            path = f"{where}/{name}"
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            check(st, path)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    if not stat.S_ISDIR(os.fstat(fd).st_mode):
                        raise Refused(f"{path} changed while it was collected")
                    walk(fd, into / name, path, False)
                finally:
                    os.close(fd)
                continue
            if not stat.S_ISREG(st.st_mode):
                raise Refused(f"{path} is {_kind(st.st_mode)}")
            counts[0] += 1
            counts[1] += st.st_size
            if counts[0] > max_files or counts[1] > max_bytes:
                raise Refused(f"more than {max_files} files or {max_bytes // 2**20} MiB")
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
            except OSError as err:
                raise Refused(f"{path} cannot be opened without following a link: "
                              f"{err.strerror}") from None
            try:
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode) or opened.st_ino != st.st_ino:
                    raise Refused(f"{path} changed while it was collected")
                check(opened, path)
                with open(fd, "rb", closefd=False) as src, open(into / name, "xb") as dst:
                    copied = _copy(src, dst, max_bytes - counts[1] + st.st_size)
                counts[1] += copied - st.st_size  # the file may have grown since lstat
                if counts[1] > max_bytes:
                    raise Refused(f"more than {max_bytes // 2**20} MiB")
            finally:
                os.close(fd)

    st = os.lstat(source)
    if not stat.S_ISDIR(st.st_mode):
        raise Refused(f"{Path(source).name} is {_kind(st.st_mode)}, not a folder")
    check(st, Path(source).name)
    top = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        walk(top, Path(target), Path(source).name, True)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        os.close(top)
    return counts[1]


def _copy(src, dst, limit: int) -> int:
    """Copy at most ``limit + 1`` bytes (one more says the file is over the limit)."""
    done = 0
    while done <= limit:
        chunk = src.read(min(1 << 20, limit + 1 - done))
        if not chunk:
            break
        dst.write(chunk)
        done += len(chunk)
    return done


def collected_record(course: Path) -> dict:
    try:
        record = json.loads((course / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class SafeCollect(ExchangeCollect):
    """nbgrader's collect step, refusing links, foreign-owned folders and forged times."""

    def _owner_uid(self, student: str) -> int | None:
        """The uid that must own ``student``'s folders (None: ownership is not checked)."""
        if not self.check_owner:
            return None
        try:
            return pwd.getpwnam(student).pw_uid
        except KeyError:
            raise Refused(f"there is no user named {student!r} on this machine to own it "
                          f"(set c.CollectApp.check_owner = False where every student is "
                          f"the same user)") from None

    def init_src(self) -> None:
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        exercise = self.coursedir.assignment_id
        wanted = self.coursedir.student_id if self.coursedir.student_id not in ("", "*") else None
        candidates: dict[str, list[tuple[int, str]]] = {}
        for name in sorted(os.listdir(self.inbound_path)):
            parts = name.rsplit("+", 3)
            if len(parts) < 3 or parts[1] != exercise or (wanted and parts[0] != wanted):
                continue
            student = parts[0]
            path = os.path.join(self.inbound_path, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode):
                    raise Refused(f"it is {_kind(st.st_mode)}, not a folder")
                owner = self._owner_uid(student)
                if owner is not None and st.st_uid != owner:
                    try:
                        named = pwd.getpwuid(st.st_uid).pw_name
                    except KeyError:
                        named = f"uid {st.st_uid}"
                    raise Refused(f"it names {student} but is owned by {named}")
            except (Refused, OSError) as why:
                self.log.warning(f"{REFUSED} {path}: {why}")
                continue
            candidates.setdefault(student, []).append((st.st_ctime_ns, name))
        self.src_records = [{"username": student, "filename": max(found)[1],
                             "ctime_ns": max(found)[0]}
                            for student, found in sorted(candidates.items())]

    def copy_files(self) -> None:
        exercise = self.coursedir.assignment_id
        course = Path(self.coursedir.root)
        record = collected_record(course)
        mine = record.setdefault(exercise, {})
        if not self.src_records:
            self.log.warning(f"No submissions of '{exercise}' for course "
                             f"'{self.coursedir.course_id}' to collect")
        for rec in self.src_records:
            student, name = rec["username"], rec["filename"]
            before = mine.get(student)
            seen = {"folder": name, "ctime_ns": rec["ctime_ns"]}
            dest = Path(self.coursedir.format_path(self.coursedir.submitted_directory, student,
                                                   exercise))
            if before == seen and dest.is_dir():
                self.log.info(f"No newer submission to collect: {student} {exercise}")
                continue
            if dest.is_dir() and not self.update:
                self.log.info(f"Submission already exists, use --update to update: {student} "
                              f"{exercise}")
                continue
            source = os.path.join(self.inbound_path, name)
            dest.parent.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".collecting-", dir=dest.parent.parent)) / exercise
            try:
                copy_regular_tree(source, staging, owner=self._owner_uid(student),
                                  skip=frozenset({"timestamp.txt"}))
            except (Refused, OSError) as why:
                shutil.rmtree(staging.parent, ignore_errors=True)
                self.log.warning(f"{REFUSED} {source}: {why}")
                continue
            now = datetime.now(timezone.utc).strftime(TIMESTAMP_FORMAT)
            (staging / "timestamp.txt").write_text(now)
            if dest.exists():
                self.log.info(f"Updating submission: {student} {exercise}")
                shutil.rmtree(dest)
            else:
                self.log.info(f"Collecting submission: {student} {exercise}")
            dest.parent.mkdir(exist_ok=True)
            staging.rename(dest)
            staging.parent.rmdir()
            mine[student] = seen
        (course / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
