"""The house's floors: data -> neuron and engine -> rules -> studies -> results files -> analysis.

Reads the imports of every module (ast, nothing is executed) and fails on an import that runs up
a floor or on any cycle between modules.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Each package may import only the packages below it.
FLOORS = {"models": 0, "datasets": 1, "learning_rules": 2, "studies": 3}
APART = {"analysis"}  # reads results files only: imports no other package of the project


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """``{module: {imported project modules}}``, lazy imports inside functions included."""
    packages = set(FLOORS) | APART
    modules = {_module_name(p): p for pkg in packages for p in (ROOT / pkg).rglob("*.py")}
    out = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules}
        out[name] = found - {name}
    return out


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in graph.items():
        top = module.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if top in APART or other in APART:
                if top != other:
                    found.append(f"{module} -> {target} (analysis stands apart)")
            elif FLOORS[other] > FLOORS[top]:
                found.append(f"{module} -> {target}")
    return sorted(found)


def cycles(graph: dict[str, set[str]]) -> list[str]:
    # a package's __init__ re-exporting its own modules is not a cycle of the house
    graph = {m: {t for t in ts if not (m.count(".") == 0 and t.startswith(m + "."))} for m, ts in graph.items()}
    state, found = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                found.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node, [node])
    return found


def test_no_package_imports_a_floor_above_it():
    found = upward_imports(_imports())
    assert not found, "imports running up a floor:\n" + "\n".join(found)


def test_no_two_modules_import_each_other_in_a_cycle():
    found = cycles(_imports())
    assert not found, "import cycles:\n" + "\n".join(found)


def test_the_checks_can_fail():
    graph = {"datasets.fsdd": {"studies.config"}, "studies.config": {"datasets"}, "datasets": set(),
             "models.a": {"models.b"}, "models.b": {"models.a"}, "analysis.report": {"models.units"}}
    assert upward_imports(graph) == ["analysis.report -> models.units (analysis stands apart)",
                                     "datasets.fsdd -> studies.config"]
    assert cycles(graph) == ["models.a -> models.b -> models.a"]
