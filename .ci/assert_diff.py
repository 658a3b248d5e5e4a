"""Which test checks a revision of tests/ lost or gained against another (a check: an ``assert``, or a call of
``pytest.raises``, ``pytest.approx``, ``assert_user_error`` or a NumPy/torch ``assert_*``), per test function.

Usage: ``python .ci/assert_diff.py OLD_REV NEW_REV`` (``NEW_REV`` may be ``WT``, the working tree). A check that a
refactor renamed shows up once as GONE and once as NEW; a GONE without its NEW twin is a loosened test.
"""

from __future__ import annotations

import ast
import collections
import pathlib
import subprocess
import sys
from collections.abc import Iterator

CHECK_CALLS = {
    "pytest.raises", "pytest.approx", "assert_user_error", "np.testing.assert_allclose",
    "np.testing.assert_array_equal", "torch.testing.assert_close",
}  # fmt: skip


def sources(rev: str) -> Iterator[str]:
    """The text of every .py file under tests/ at ``rev`` (``WT``: the working tree)."""
    if rev == "WT":
        for path in pathlib.Path("tests").rglob("*.py"):
            yield path.read_text()
        return
    listing = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "tests"], capture_output=True, text=True)
    for name in listing.stdout.split():
        if name.endswith(".py"):
            yield subprocess.run(["git", "show", f"{rev}:{name}"], capture_output=True, text=True).stdout


def checks(rev: str) -> collections.Counter[tuple[str, str]]:
    """(test function, check as source text) -> how often it occurs."""
    found: collections.Counter[tuple[str, str]] = collections.Counter()
    for src in sources(rev):
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for fn in ast.walk(tree):
            if not (isinstance(fn, ast.FunctionDef) and fn.name.startswith("test")):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Assert):
                    found[(fn.name, ast.unparse(node.test))] += 1
                elif isinstance(node, ast.Call) and ast.unparse(node.func) in CHECK_CALLS:
                    found[(fn.name, ast.unparse(node))] += 1
    return found


def main() -> None:
    old_rev, new_rev = sys.argv[1], sys.argv[2]
    old, new = checks(old_rev), checks(new_rev)
    gone, added = old - new, new - old
    print(f"{old_rev}: {sum(old.values())} checks; {new_rev}: {sum(new.values())}; "
          f"gone {sum(gone.values())}, new {sum(added.values())}")  # fmt: skip
    for fn, text in sorted(gone):
        print("GONE", fn, "|", text[:200])
    print("----")
    for fn, text in sorted(added):
        print("NEW ", fn, "|", text[:200])


if __name__ == "__main__":
    main()
