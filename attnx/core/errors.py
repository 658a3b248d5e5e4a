"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input: a wrong name, a missing or corrupt file, a shape the model rejects.

    The message names the problem and the fix, in one line.
    """


class ParityFailure(Exception):
    """Backends disagree beyond the tolerance policy (exit code 1)."""


def shown(text: str, limit: int = 200) -> str:
    """``text`` read from a file (a model name, a path in a manifest), safe inside a one-line message: as is when it
    is printable and at most ``limit`` characters, else the ``ascii()`` form of its first ``limit`` characters."""
    return text if text.isprintable() and len(text) <= limit else ascii(text[:limit])


def warn(message: str) -> None:
    """A warning the user must see (stderr, one line): for things attnx does only because it was told to."""
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)


# What the operating system said → what to do about it. Other OSErrors (ENOENT, EIO, ...) stay tracebacks:
# attnx checks the paths it reads first, so one of those escaping is more likely a bug than bad input.
_OS_FIXES = {
    "ENOSPC": ("no space left on the device", "free some space or write somewhere else"),
    "EDQUOT": ("disk quota exceeded", "free some space or write somewhere else"),
    "EFBIG": ("file too large for this file system or limit", "write somewhere else"),
    "EACCES": ("permission denied", "choose a location you can write to, or fix its permissions"),
    "EPERM": ("operation not permitted", "choose a location you can write to, or fix its permissions"),
    "EROFS": ("read-only file system", "write somewhere else"),
    "ENOTDIR": ("a part of the path is a file, not a folder", "choose another path"),
    "EISDIR": ("it is a folder, not a file", "give a file path"),
    "EEXIST": ("a file of that name is in the way", "remove it or choose another path"),
    "ENAMETOOLONG": ("the name is too long", "choose a shorter path"),
}


def os_error_message(exc: OSError) -> str | None:
    """One line for an OSError a user can fix (disk full, permissions, a file where a folder must be),
    naming the path and the fix; None for the others."""
    import errno

    code = errno.errorcode.get(exc.errno or -1)
    if code not in _OS_FIXES:
        return None
    problem, fix = _OS_FIXES[code]
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.filename and exc.filename2:
        where = f"{exc.filename} -> {exc.filename2}: "
    return f"{where}{problem} ({code}); {fix}"


def library_error_message(exc: BaseException) -> str | None:
    """One line for an error ONNX or ONNX Runtime raised about a model or its inputs; None for others.

    Only looked up when those libraries are already loaded (the CLI imports them inside commands).
    """
    import sys

    from attnx.core.library_errors import describe

    described = describe(exc)  # the node, its op, the shapes or types, and a fix
    if described is not None:
        return described
    kind = type(exc)
    module = kind.__module__ or ""
    text = " ".join(str(exc).split())  # the libraries' messages span lines
    if len(text) > 600:
        text = text[:600] + " ..."
    if module.startswith("onnxruntime"):
        return f"ONNX Runtime refused the model or its inputs ({kind.__name__}): {text}"
    onnx = sys.modules.get("onnx")
    decode = getattr(sys.modules.get("google.protobuf.message"), "DecodeError", None)
    if onnx is not None:
        kinds = (getattr(getattr(onnx, "checker", None), "ValidationError", None),
                 getattr(getattr(onnx, "shape_inference", None), "InferenceError", None))  # fmt: skip
        if any(k is not None and isinstance(exc, k) for k in kinds):
            return f"not a valid ONNX model ({kind.__name__}): {text}; re-export it"
    if decode is not None and isinstance(exc, decode):
        return f"a file is not valid protobuf/ONNX ({text}): check the file, or re-export it"
    return None


def name_destination(exc: BaseException, dest: object, work: object) -> None:
    """An OSError met while writing ``dest`` through the work file or folder ``work``: make it name ``dest``
    (the path the user gave), not the hidden work path or nothing (a failed write() names no file)."""
    # only errors the OS raised (errno set): an OSError("message") would lose its message to the filename
    ours = not exc.filename or str(exc.filename).startswith(str(work)) if isinstance(exc, OSError) else False
    if isinstance(exc, OSError) and exc.errno is not None and ours:
        exc.filename, exc.filename2 = str(dest), None
