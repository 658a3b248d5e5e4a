"""Work folders that name their owner, and the sweep that removes those a killed run left behind.

A run that is killed (kill -9, out of memory, power) cannot clean up after itself, so every attnx work
folder carries the owning process id in its name: ``attnx-build-<pid>-<random>`` in the temp dir,
``.<bundle>.best-<pid>-<random>`` / ``.<bundle>.<pid>-<random>`` beside a bundle. A later build or parity run
removes a folder only when all of these hold, so it never touches a live run's folder or anyone else's files:

- its name has an attnx prefix followed by ``<pid>-`` (folders of other programs, and attnx folders from
  before this scheme, never match);
- no process with that id is running here;
- it belongs to this user;
- it has not changed for ``STALE_AFTER_S`` (a run in another PID namespace sharing the folder is still
  protected while it works).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

STALE_AFTER_S = 30 * 60
# work folders attnx makes in the temp dir (see the modules that use tempdir() with these prefixes)
TEMP_PREFIXES = ("attnx-build-", "attnx-ort-qdq-", "attnx-parity-")


def owned_prefix(prefix: str) -> str:
    """``prefix`` with this process's id: what mkdtemp gets, so that a sweep can tell who owns the folder."""
    return f"{prefix}{os.getpid()}-"


@contextlib.contextmanager
def tempdir(prefix: str, dir: Path | None = None) -> Iterator[Path]:
    """A TemporaryDirectory whose name carries this process's id (removed on exit, as usual).

    Yields the folder's path, ``<dir or the temp dir>/<prefix><pid>-<random>``. Raises ``OSError`` when it
    cannot be created.
    """
    with tempfile.TemporaryDirectory(prefix=owned_prefix(prefix), dir=dir) as tmp:
        yield Path(tmp)


def mkdtemp(prefix: str, dir: Path | None = None) -> Path:
    """``tempfile.mkdtemp`` with this process's id in the name (the caller removes it).

    The folder is private (mode 0700, as ``tempfile.mkdtemp`` makes it). Raises ``OSError`` when it cannot
    be created.
    """
    return Path(tempfile.mkdtemp(prefix=owned_prefix(prefix), dir=dir))


def _pid_running(pid: int) -> bool:
    if pid <= 0:
        return True  # not a real owner: never sweep
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or nonsense): leave it
    return True


def sweep_stale(folder: Path, prefixes: tuple[str, ...], now: float | None = None,
                stale_after_s: float = STALE_AFTER_S) -> list[Path]:  # fmt: skip
    """Remove ``folder``'s work folders named ``<prefix><pid>-*`` whose process is gone; return them.

    Best effort: a folder that cannot be read or removed is left as it is, silently.

    Args:
        folder: where to look (not recursive).
        prefixes: the attnx name prefixes to match, each followed by ``<pid>-``.
        now: the current time, seconds since the epoch (tests pass a fixed one); ``time.time()`` if None.
        stale_after_s: minimum age in seconds since the folder last changed (``st_mtime``).

    Returns:
        The folders removed (never raises for file-system errors).
    """
    now = time.time() if now is None else now
    pattern = re.compile("(?:" + "|".join(map(re.escape, prefixes)) + r")(\d{1,10})-[A-Za-z0-9_]+$")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    uid = os.getuid() if hasattr(os, "getuid") else None
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or (uid is not None and st.st_uid != uid):
                continue
            if now - st.st_mtime < stale_after_s or _pid_running(int(match.group(1))):
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.exists(entry.path):
            removed.append(Path(entry.path))
    return removed


def sweep_build_leftovers(dest: Path | None = None) -> list[Path]:
    """What killed builds and parity runs left: in the temp dir, and beside the bundle ``dest``."""
    removed = sweep_stale(Path(tempfile.gettempdir()), TEMP_PREFIXES)
    if dest is not None:
        name = Path(dest).name
        removed += sweep_stale(Path(dest).parent, (f".{name}.best-", f".{name}."))
    return removed
