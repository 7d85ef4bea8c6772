"""The shape of the code: no import circle, small files, a short Pipeline.__init__."""

import ast
import inspect
import pathlib

import feedax as fx

PACKAGE = pathlib.Path(fx.__file__).parent


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def imports(name, path):
    """The feedax modules ``name`` imports, anywhere in the file (lazy imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("feedax")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.startswith("feedax"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def test_no_import_circle():
    graph = dict(modules())
    edges = {name: {m for m in imports(name, path) if m in graph} for name, path in graph.items()}
    # A package's __init__ importing its own modules is how namespaces re-export.
    edges = {a: {b for b in bs if b != a and not b.startswith(a + ".")} for a, bs in edges.items()}
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "import circle: " + " -> ".join([*trail, node])
        state[node] = "open"
        for child in sorted(edges[node]):
            visit(child, [*trail, node])
        state[node] = "done"

    for node in sorted(edges):
        visit(node, [])


def test_no_file_over_500_lines():
    lengths = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for _, p in modules()}
    assert not {name: n for name, n in lengths.items() if n > 500}


def test_pipeline_init_is_short():
    lines, _ = inspect.getsourcelines(fx.Pipeline.__init__)
    body = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    signature = next(i for i, line in enumerate(body) if line.rstrip().endswith("):"))
    assert len(body) - signature - 1 <= 40
