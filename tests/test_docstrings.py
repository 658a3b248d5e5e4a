"""Every public definition of the library API has a docstring (the project's documentation standard).

The library packages are read with ``ast`` (nothing is imported, so optional dependencies do not matter).
Public: module-level functions and classes whose name does not start with ``_``, in modules whose own name
does not start with ``_``; the methods (``forward`` included) and nested classes of public classes, whose
name does not start with ``_``. Not counted: dunder methods, ``@overload`` stubs, property setters and
deleters, a method that overrides a documented method of an attnx base class (its docstring is the base's),
and ``main`` of a ``deploy/tools`` script that has a module docstring (tools are scripts: the module says
what they do). ``tests/`` is not library API.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import REPO_ROOT

# The library packages, as folders of the repository and as the modules they install as.
PACKAGES = {
    "attnx/core": "attnx.core",
    "plugins": "attnx.plugins",
    "exporters": "attnx.exporters",
    "calibration": "attnx.calibration",
    "deploy": "attnx.deploy",
}
TOOLS = "deploy/tools/"


@dataclass
class _Class:
    module: str
    bases: list[ast.expr]
    methods: dict[str, bool] = field(default_factory=dict)  # method name -> has a docstring


@dataclass
class _Module:
    path: str  # relative to the repository root, with "/"
    name: str  # dotted, e.g. attnx.deploy.backends.base
    tree: ast.Module
    imports: dict[str, tuple[str, str]] = field(default_factory=dict)  # local name -> (module, name)


def _library_files(repo: Path = REPO_ROOT, packages: dict[str, str] = PACKAGES) -> list[tuple[Path, str]]:
    files = []
    for folder, package in packages.items():
        root = repo / folder
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files.append((path, ".".join([package, *parts])))
    return files


def _is_private_module(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    names = set()
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
        elif isinstance(target, ast.Name):
            names.add(target.id)
    return names


def _module_level(body: list[ast.stmt]):
    """Statements at module level, looking inside ``if``/``try`` blocks (``if TYPE_CHECKING:``, fallbacks)."""
    for node in body:
        if isinstance(node, ast.If):
            yield from _module_level(node.body)
            yield from _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _module_level(block)
        else:
            yield node


def _resolve_import(module: str, is_package: bool, node: ast.ImportFrom) -> str | None:
    if node.level == 0:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _load(repo: Path, packages: dict[str, str]) -> tuple[list[_Module], dict[tuple[str, str], _Class]]:
    modules, classes = [], {}
    for path, name in _library_files(repo, packages):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        mod = _Module(path.relative_to(repo).as_posix(), name, tree)
        for node in _module_level(tree.body):
            if isinstance(node, ast.ImportFrom):
                source = _resolve_import(name, path.name == "__init__.py", node)
                for alias in node.names:
                    if source:
                        mod.imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(node, ast.ClassDef):
                _index_class(classes, name, node.name, node)
        modules.append(mod)
    return modules, classes


def _index_class(classes: dict[tuple[str, str], _Class], module: str, qualname: str, node: ast.ClassDef) -> None:
    cls = _Class(module, node.bases)
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            cls.methods[item.name] = cls.methods.get(item.name, False) or ast.get_docstring(item) is not None
        elif isinstance(item, ast.ClassDef):
            _index_class(classes, module, f"{qualname}.{item.name}", item)
    classes[(module, qualname)] = cls


class _Resolver:
    """Finds the attnx class a base-class expression names, following ``from ... import`` re-exports."""

    def __init__(self, modules: list[_Module], classes: dict[tuple[str, str], _Class]):
        self.modules = {m.name: m for m in modules}
        self.classes = classes

    def lookup(self, module: str, name: str, depth: int = 0) -> _Class | None:
        if (module, name) in self.classes:
            return self.classes[(module, name)]
        mod = self.modules.get(module)
        if mod is None or depth > 10 or name not in mod.imports:
            return None
        return self.lookup(*mod.imports[name], depth + 1)

    def base(self, module: str, expr: ast.expr) -> _Class | None:
        if isinstance(expr, ast.Subscript):  # Generic[T], Base[T]
            expr = expr.value
        if isinstance(expr, ast.Name):
            return self.lookup(module, expr.id)
        return None

    def documented_in_base(self, cls: _Class, method: str, seen: int = 0) -> bool:
        if seen > 20:
            return False
        for expr in cls.bases:
            base = self.base(cls.module, expr)
            if base is None:
                continue
            if base.methods.get(method) or self.documented_in_base(base, method, seen + 1):
                return True
        return False


def _missing_in_class(
    mod: _Module, node: ast.ClassDef, qualname: str, resolver: _Resolver, classes: dict[tuple[str, str], _Class]
) -> list[str]:
    missing = []
    cls = classes[(mod.name, qualname)]
    for item in node.body:
        if isinstance(item, ast.ClassDef):
            if item.name.startswith("_"):
                continue
            name = f"{qualname}.{item.name}"
            if ast.get_docstring(item) is None:
                missing.append(f"{mod.path}:{item.lineno} {name}")
            missing += _missing_in_class(mod, item, name, resolver, classes)
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            if item.name.startswith("_") or ast.get_docstring(item) is not None:
                continue
            decorators = _decorator_names(item)
            if decorators & {"overload", "setter", "deleter"}:
                continue
            if resolver.documented_in_base(cls, item.name):
                continue
            missing.append(f"{mod.path}:{item.lineno} {qualname}.{item.name}")
    return missing


def undocumented(repo: Path = REPO_ROOT, packages: dict[str, str] = PACKAGES) -> list[str]:
    """``path:line name`` of every public definition of the library without a docstring."""
    modules, classes = _load(repo, packages)
    resolver = _Resolver(modules, classes)
    missing: list[str] = []
    for mod in modules:
        if _is_private_module(mod.name):
            continue
        is_tool = mod.path.startswith(TOOLS)
        for node in _module_level(mod.tree.body):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if node.name.startswith("_") or "overload" in _decorator_names(node):
                continue
            if ast.get_docstring(node) is None:
                script_main = is_tool and node.name == "main" and ast.get_docstring(mod.tree) is not None
                if not script_main:
                    missing.append(f"{mod.path}:{node.lineno} {node.name}")
            if isinstance(node, ast.ClassDef):
                missing += _missing_in_class(mod, node, node.name, resolver, classes)
    return missing


def test_library_files_found():
    names = {name for _, name in _library_files()}
    assert {"attnx.core.errors", "attnx.plugins.registry", "attnx.deploy.backends.base"} <= names


_SAMPLE = {
    "pkg/__init__.py": '"""Package."""\nfrom .base import Base as Base\n',
    "pkg/base.py": '''"""Base."""
from typing import overload


class Base:
    """Documented base."""

    def run(self):
        """Documented here, so overrides need not repeat it."""

    def other(self):
        pass


def helper():
    pass


def _private():
    pass


@overload
def both(x: int) -> int: ...
def both(x):
    """Documented implementation."""
''',
    "pkg/impl.py": '''"""Impl."""
from pkg import Base


class Impl(Base):
    """Sub-class."""

    def __init__(self):
        pass

    def run(self):
        pass

    def forward(self, x):
        return x

    @property
    def value(self):
        return 1

    @value.setter
    def value(self, v):
        pass

    class Inner:
        pass


class _Hidden:
    def forward(self):
        pass
''',
    "pkg/_private.py": "def visible_name():\n    pass\n",
    "pkg/tools/script.py": '"""A script."""\n\n\ndef main():\n    pass\n',
    "pkg/tools/bare.py": "def main():\n    pass\n",
}


def test_detects_and_skips(tmp_path, monkeypatch):
    for rel, text in _SAMPLE.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "TOOLS", "pkg/tools/")
    found = [entry.split(" ", 1)[1] for entry in undocumented(tmp_path, {"pkg": "pkg"})]
    # Base.other and helper: undocumented; Impl.run: documented in Base; dunders, setters, @overload,
    # private names and modules skipped; main of a script with a module docstring skipped, not of a bare one.
    assert sorted(found) == sorted(["Base.other", "helper", "Impl.forward", "Impl.value", "Impl.Inner", "main"])
    assert any(entry.startswith("pkg/tools/bare.py:1 main") for entry in undocumented(tmp_path, {"pkg": "pkg"}))


def test_public_definitions_have_docstrings():
    missing = undocumented()
    if missing:
        print("\n".join(missing))
    assert not missing, f"{len(missing)} public definitions without a docstring:\n" + "\n".join(missing)


if __name__ == "__main__":
    print("\n".join(undocumented()))
