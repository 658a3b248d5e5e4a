"""Atomic file writes: a temporary file beside the destination, renamed into place when complete."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write by any means; renamed over ``path`` when the block succeeds
    (made readable as any file the user creates: mkstemp alone makes 0600 files), removed when it fails.

    Args:
        path: the destination; its parent folders are created.
        suffix: the temporary file's suffix (some writers pick the format from it, e.g. ".onnx").

    Yields:
        The temporary path (an empty file) in ``path``'s folder, so the rename is atomic (``os.replace``).

    Raises:
        OSError: the folder or temporary file cannot be made, or the rename fails; its ``filename`` is
            ``path``, not the hidden temporary name (``attnx.core.errors.name_destination``). Whatever the
            block raises passes through after the temporary file is removed.
    """
    from attnx.core.errors import name_destination

    path = Path(path)
    work = path.parent / f".{path.name}."
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=work.name, suffix=suffix, dir=path.parent)
    except OSError as exc:
        name_destination(exc, path, work)
        raise
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        name_destination(exc, path, work)  # the user's path, not the hidden work file's
        raise


def write_bytes(path: Path, data: bytes | memoryview, fsync: bool = False) -> Path:
    """Write bytes atomically; ``fsync`` also forces them to disk before the rename.

    Returns ``Path(path)``. Raises ``OSError`` naming ``path`` (see ``atomic_path``).
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` atomically as UTF-8 (no newline translation); returns ``Path(path)``. Raises OSError."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` atomically as JSON, indented by 2, with a final newline; returns ``Path(path)``.

    Raises:
        TypeError: ``data`` holds something ``json`` cannot serialise (nothing is written then).
        OSError: the write failed (named by ``path``).
    """
    return write_text(Path(path), json.dumps(data, indent=2) + "\n")


def umask() -> int:
    """The process's file-mode creation mask (e.g. 0o022), read without changing it.

    ``os.umask`` can only be read by setting it, so this sets 0 and restores it at once (not thread-safe
    against a concurrent file creation in the instant between).
    """
    mask = os.umask(0)
    os.umask(mask)
    return mask
