"""Every job-row lock goes through `ami.jobs.locking`: no other module takes a row lock."""

from __future__ import annotations

import ast
from pathlib import Path

import ami

SOURCE = Path(ami.__file__).parent
LOCK_HELPER = SOURCE / "jobs" / "locking.py"
# The load test's fault injector is an outside session that locks the job row on purpose.
FAULT_INJECTOR = SOURCE / "loadtest" / "faults.py"
LOCKING_SQL = ("FOR UPDATE", "FOR NO KEY UPDATE", "FOR SHARE")


def row_locks(tree: ast.AST) -> list[str]:
    """`.select_for_update(...)` calls and SQL strings with a locking clause (not docstrings)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "select_for_update":
            found.append(f"line {node.lineno}: select_for_update()")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and any(clause in node.value.upper() for clause in LOCKING_SQL)
        ):
            found.append(f"line {node.lineno}: SQL row lock")
    return found


def test_no_row_lock_outside_the_lock_helper():
    offenders = [
        f"{path.relative_to(SOURCE)} {lock}"
        for path in sorted(SOURCE.rglob("*.py"))
        if path not in (LOCK_HELPER, FAULT_INJECTOR) and "migrations" not in path.parts
        for lock in row_locks(ast.parse(path.read_text()))
    ]
    assert offenders == []


def test_the_check_finds_a_row_lock():
    code = 'Job.objects.select_for_update().get(pk=1)\ncursor.execute("SELECT 1 FOR UPDATE")\n'
    assert len(row_locks(ast.parse(code))) == 2
    assert row_locks(ast.parse(LOCK_HELPER.read_text())) != []
