"""The shape of ``src/pixelgate``: the longest functions, how many run past 50 lines, and the imports that run
back up between packages (``python scripts/code_shape.py [--top N]``).

A function's length is its lines from ``def`` to its last statement, docstring and comments included: what a
reader has to hold at once. The packages are the top-level ones under ``pixelgate`` (``api``, ``tasks``,
``core``…, and the single modules ``app``, ``cli``, ``config``…); an import "runs back up" when package A
imports B and B imports A, at any depth of modules, whatever the import is for (``TYPE_CHECKING`` imports
included: they are ties a reader follows all the same).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "pixelgate"
LONG = 50


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(("pixelgate", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def functions(tree: ast.Module, module: str) -> list[tuple[int, str]]:
    """(length, qualified name) of every function and method."""
    lengths = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                lengths.append(((child.end_lineno or child.lineno) - child.lineno + 1, f"{module}:{name}"))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return lengths


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported(tree: ast.Module, module: str) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: resolved against this module's package
                base = ".".join(module.split(".")[: -node.level] + ([node.module] if node.module else []))
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in names if name.startswith("pixelgate.")}


def known(target: str, trees: dict[str, ast.Module]) -> bool:
    """Whether an import names one of our modules (or a package or attribute of one)."""
    return (
        target in trees or any(m.startswith(target + ".") for m in trees) or target.rsplit(".", 1)[0] in trees
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many of the longest functions to list")
    args = parser.parse_args()
    trees = modules()
    lengths = sorted((f for name, tree in trees.items() for f in functions(tree, name)), reverse=True)
    print(f"functions: {len(lengths)}; longer than {LONG} lines: {sum(1 for n, _ in lengths if n > LONG)}")
    for length, name in lengths[: args.top]:
        print(f"  {length:4d}  {name}")
    ties: dict[str, set[str]] = defaultdict(set)
    for name, tree in trees.items():
        for target in imported(tree, name):
            if known(target, trees) and package(target) != package(name):
                ties[package(name)].add(package(target))
    both = sorted(
        {tuple(sorted((a, b))) for a, targets in ties.items() for b in targets if a in ties.get(b, set())}
    )
    print(f"packages that import each other: {len(both)}")
    for a, b in both:
        print(f"  {a} <-> {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
