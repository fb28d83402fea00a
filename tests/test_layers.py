"""The shape of the package: every SQL string lives in the storage layer (``photolab/store/``), and no
module imports, even inside a function, a module that imports it back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "photolab"
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|WITH|REPLACE|PRAGMA|DROP|ALTER|BEGIN|COMMIT|ROLLBACK|"
                 r"VACUUM|ATTACH|DETACH|SAVEPOINT|RELEASE)\b")


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _strings(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(v.value for v in node.values
                                       if isinstance(v, ast.Constant) and isinstance(v.value, str))


def test_no_sql_outside_the_storage_layer():
    found = []
    for name, (path, _) in _modules().items():
        if name == "photolab.store" or name.startswith("photolab.store."):
            continue
        for line, text in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            stripped = text.strip()
            if SQL.match(stripped) and (" " in stripped or stripped in {"BEGIN", "COMMIT", "ROLLBACK", "VACUUM"}):
                found.append(f"{path.relative_to(PKG.parent)}:{line}: {stripped[:60]!r}")
    assert not found, "SQL outside photolab/store/:\n" + "\n".join(found)


def _imports(name: str, path: Path, is_pkg: bool, known: set[str]) -> set[str]:
    """Every photolab module ``name`` imports, at the top or inside a function."""
    deps = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    deps.add(f"{target}.{alias.name}")
                elif target in known:
                    deps.add(target)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name in known)
    deps.discard(name)
    deps.discard("photolab")            # the package's own re-exports are not a layer
    return deps


def test_no_import_cycle():
    mods = _modules()
    graph = {name: _imports(name, path, is_pkg, set(mods)) for name, (path, is_pkg) in mods.items()}
    # a package's __init__ that re-exports its modules is one node with them: skip the edge parent -> child
    for name in graph:
        graph[name] = {d for d in graph[name] if not d.startswith(name + ".")}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"modules that import each other: {cycles}"
