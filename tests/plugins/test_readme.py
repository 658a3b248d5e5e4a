"""The op READMEs' tables are generated from the specs; the committed ones must be current."""

from __future__ import annotations

from attnx.deploy.tools import plugin_readme as readme
from attnx.plugins.registry import OPS


def test_readmes_are_up_to_date() -> None:
    assert readme.main(["--check"]) == 0, "run: python -m attnx.deploy.tools.plugin_readme"


def test_readme_tables_come_from_spec() -> None:
    spec = OPS["GridSample"]
    block = readme.render(spec)
    assert "| `align_corners` | int | required | `0`, `1` |" in block
    assert "| `attnx::GridSamplePlugin` | 8.5 | versions before 8.5 |" in block
    stale = "# x\n\n" + readme.BEGIN + "\nold table\n" + readme.END + "\n\nkept prose\n"
    new = readme.updated(stale, spec)
    assert "old table" not in new and "kept prose" in new and new.count(readme.BEGIN) == 1
    text = open(readme.readme_path(spec)).read()
    assert block in text
