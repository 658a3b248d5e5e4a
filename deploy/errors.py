"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input: a wrong name, a missing or corrupt file, a shape the model rejects.

    The message names the problem and the fix, in one line.
    """


class ParityFailure(Exception):
    """Backends disagree beyond the tolerance policy (exit code 1)."""


def warn(message: str) -> None:
    """A warning the user must see (stderr, one line): for things attnx does only because it was told to."""
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)
