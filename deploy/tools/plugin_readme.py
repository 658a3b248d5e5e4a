"""Writes each op README's reference tables from its spec (``python -m attnx.deploy.tools.plugin_readme [--check]``).

The tables sit between two markers in ``plugins/<op>/README.md``; the prose around them is
hand-written and kept. ``--check`` exits 1 when a committed README differs from its spec.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import attnx.plugins
from attnx.plugins.registry import ops
from attnx.plugins.spec import OpSpec

BEGIN = "<!-- BEGIN GENERATED FROM spec.py: python -m attnx.deploy.tools.plugin_readme -->"
END = "<!-- END GENERATED -->"


def readme_path(spec: OpSpec) -> str:
    """Path of the README.md in the op's folder of the installed plugins package."""
    return os.path.join(os.path.dirname(attnx.plugins.__file__), spec.folder, "README.md")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|")


def render(spec: OpSpec) -> str:
    """The generated block (markers included) for one op."""
    lines = [BEGIN, "", f"**`{spec.qualified_name}`**, version {spec.version}. {_cell(spec.doc)}", ""]
    lines += ["### Inputs", "", "| # | name | shape | type | description |", "|---|---|---|---|---|"]
    for i, t in enumerate(spec.inputs):
        lines.append(f"| {i} | `{t.name}` | ({', '.join(t.dims)}) | {t.type_constraint} | {_cell(t.doc)} |")
    lines += ["", "### Outputs", "", "| # | name | shape | type | description |", "|---|---|---|---|---|"]
    for i, t in enumerate(spec.outputs):
        lines.append(f"| {i} | `{t.name}` | ({', '.join(t.dims)}) | {t.type_constraint} | {_cell(t.doc)} |")
    lines += ["", "### Attributes", "", "| name | type | default | allowed | description |", "|---|---|---|---|---|"]
    for a in spec.attrs:
        default = "required" if a.required else f"`{a.default!r}`"
        allowed = ", ".join(f"`{c!r}`" for c in a.choices) if a.choices else "any"
        lines.append(f"| `{a.name}` | {a.type} | {default} | {allowed} | {_cell(a.doc)} |")
    lines += ["", "### Type constraints", "", "| name | types | description |", "|---|---|---|"]
    for c in spec.type_constraints:
        lines.append(f"| {c.name} | {', '.join(f'`{t}`' for t in c.types)} | {_cell(c.doc)} |")
    since = (
        "never (always needs the plugin)"
        if spec.trt_native_since is None
        else (f"{spec.trt_native_since[0]}.{spec.trt_native_since[1]}")
    )
    needs = (
        "every version"
        if spec.trt_native_since is None
        else (f"versions before {spec.trt_native_since[0]}.{spec.trt_native_since[1]}")
    )
    lines += [
        "",
        "### TensorRT",
        "",
        "| plugin id | native since | plugin needed on | note |",
        "|---|---|---|---|",
        f"| `{spec.trt_plugin_id}` | {since} | {needs} | {_cell(spec.trt_native_note)} |",
        "",
        END,
    ]
    return "\n".join(lines)


def updated(text: str, spec: OpSpec) -> str:
    """``text`` with its generated block replaced (or appended when it has none)."""
    block = render(spec)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        return head + block + tail
    return text.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attnx.deploy.tools.plugin_readme", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="fail if a README is out of date; write nothing")
    args = p.parse_args(argv)
    stale = []
    for spec in ops().values():
        path = readme_path(spec)
        old = open(path).read() if os.path.exists(path) else f"# {spec.qualified_name}\n"
        new = updated(old, spec)
        if new != old:
            stale.append(path)
            if not args.check:
                with open(path, "w") as f:
                    f.write(new)
    if args.check and stale:
        print("out of date (run python -m attnx.deploy.tools.plugin_readme): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
