"""The commands themselves: ``--help`` answered without Brian2 or PyTorch, no stray warnings."""

import importlib
import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from studies import quick_help

ROOT = Path(__file__).resolve().parent.parent
#: Every runnable script of studies/ (the ones with a __main__ block).
SCRIPTS = sorted(p for p in (ROOT / "studies").glob("*.py") if 'if __name__ == "__main__"' in p.read_text())


def _help_of(script: Path, monkeypatch) -> str:
    """The help the script prints, built the slow way in this process (which fills the cache)."""
    monkeypatch.setattr(quick_help, "_running_script", lambda: script.resolve())
    module = importlib.import_module(f"studies.{script.stem}")
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    return out.getvalue()


def test_help_is_answered_without_brian2_or_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert len(SCRIPTS) >= 8
    for script in SCRIPTS:
        assert _answers_before_importing(script), f"{script.name} must answer --help from the cache before its imports"
        slow = _help_of(script, monkeypatch)
        fast = quick_help.cached_parser(script)
        assert fast is not None, f"{script.name}: no help kept"
        assert fast.format_help() == slow, f"{script.name}: the kept help differs from the real one"
    # every script in a fresh process, as a user runs it: the same help, with neither library imported
    probe = ("import runpy, sys, io, contextlib, json\n"
             "out = {}\n"
             "for path in sys.argv[1:]:\n"
             "    sys.argv = [path, '--help']\n"
             "    text = io.StringIO()\n"
             "    try:\n"
             "        with contextlib.redirect_stdout(text):\n"
             "            runpy.run_path(path, run_name='__main__')\n"
             "    except SystemExit as stop:\n"
             "        code = stop.code\n"
             "    out[path] = [code, text.getvalue(), sorted({'brian2', 'torch'} & set(sys.modules))]\n"
             "print(json.dumps(out))\n")
    result = subprocess.run([sys.executable, "-c", probe, *map(str, SCRIPTS)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env={**_env(), "XDG_CACHE_HOME": str(tmp_path), "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr[-2000:]
    for path, (code, text, heavy) in json.loads(result.stdout).items():
        name = Path(path).name
        assert code == 0 and "--help" in text and "usage:" in text, f"{name}: {code} {text[:200]}"
        assert heavy == [], f"{name} --help imported {heavy}"


def test_help_of_changed_sources_is_built_again(tmp_path, monkeypatch):
    import argparse

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    script = tmp_path / "study.py"
    script.write_text("# version 1\n")
    parser = argparse.ArgumentParser(description="A study.")
    parser.add_argument("--epochs", type=int, default=3, help="passes (default: %(default)s)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help="go on")
    parser.add_argument("folder", help="where")
    assert quick_help.save(parser, script) is not None
    assert quick_help.cached_parser(script).format_help() == parser.format_help()
    script.write_text("# version 2\n")  # a source changed: the kept help is not trusted
    assert quick_help.cached_parser(script) is None
    quick_help.answer_from_cache(script, ["--help"])  # returns: the script builds its parser itself
    quick_help.save(parser, script)
    quick_help.cache_file(script).write_text("{not json")  # a torn cache entry: the slow path
    assert quick_help.cached_parser(script) is None
    quick_help.answer_from_cache(script, ["--epochs", "2"])  # no help asked: returns


def test_no_command_prints_the_setuptools_warning(tmp_path):
    """Brian2 imports setuptools' MSVC helper, which warns on import; every command filters it first."""
    commands = [
        [sys.executable, str(ROOT / "studies" / "counts_shd.py"), "--dataset", "synthetic", "--n-train", "40",
         "--n-test", "20", "--n-bins", "2", "--out", str(tmp_path)],
        [sys.executable, "-m", "datasets.cochlea", "--help"],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env())
        assert result.returncode == 0, result.stderr[-2000:]
        assert "_get_vc_env" not in result.stderr, f"{command[1:3]} printed: {result.stderr[-1000:]}"


def _answers_before_importing(script: Path) -> bool:
    """The script's first statement after ``from __future__`` is the ``__main__`` block that calls
    :func:`studies.quick_help.answer_from_cache`."""
    import ast

    body = [node for node in ast.parse(script.read_text()).body
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
            and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
    return bool(body) and isinstance(body[0], ast.If) and "answer_from_cache(__file__)" in ast.unparse(body[0])


def _env() -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT)}
