"""The shape of the code: serving needs no torch, neither service/ nor training/ has an import circle at any
depth, the web framework, Ray and the benchmarks stay in the modules that are about them."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAZY_TORCH = {"service.dream"}  # live DeepDream imports torch inside its functions; it is the one allowed


def modules(package: str) -> list[str]:
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports anywhere in it, inside functions too (from x import y counts x, and
    x.y if a module): a lazy import is still a dependency, and a circle through one is still a circle."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    known = set(modules("service")) | set(modules("training"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
    return found - {module}


def test_importing_every_service_module_does_not_import_torch() -> None:
    names = [m for m in modules("service") if m not in LAZY_TORCH]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in names)
        + ("bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\nprint(len(bad))\n")
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0", f"importing service modules pulled in torch: {out.stdout}"


@pytest.mark.parametrize("package", ["service", "training"])
def test_no_import_circle(package: str) -> None:
    graph = {m: imports_of(m) for m in modules(package)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import circle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_no_module_past_450_lines() -> None:
    files = [*(ROOT / "service").rglob("*.py"), *(ROOT / "training").rglob("*.py")]
    long = [f"{p.relative_to(ROOT)} ({n})" for p in files if (n := len(p.read_text().splitlines())) > 450]
    assert not long, f"modules over 450 lines: {long}"


def test_no_function_past_60_lines() -> None:
    files = [*(ROOT / "service").rglob("*.py"), *(ROOT / "training").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]
    long = [
        f"{p.relative_to(ROOT)}:{node.name} ({node.end_lineno - node.lineno + 1})"
        for p in files
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > 60
    ]
    assert not long, f"functions over 60 lines: {long}"


# The HTTP layer is one package: only service/http/ may import a web framework; the command that serves it
# (service/cli.py) may also start uvicorn. The core (contract, engine, look, painter, blend, brush, flow,
# stabilize, dream, video, jobs) is called by it and imports none.
WEB_FRAMEWORKS = ("fastapi", "starlette")
SERVERS = ("uvicorn",)
SERVES = {"service.cli", "training.bench.browser"}  # the CLI, and a benchmark running the app in its own process
RAY_MODULES = {"service.http.cluster", "service.http.ray_router", "service.video.scaleout", "training.bench.cluster"}


def third_party_imports(module: str) -> set[str]:
    """Top-level package names ``module`` imports anywhere in it."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_http_package_imports_a_web_framework() -> None:
    everything = modules("service") + modules("training")
    speaking = {m for m in everything if third_party_imports(m) & set(WEB_FRAMEWORKS)}
    outside = {m for m in speaking if not m.startswith("service.http")} - {"training.bench.browser"}
    assert not outside, f"a web framework imported outside service/http/: {sorted(outside)}"
    serving = {m for m in everything if third_party_imports(m) & set(SERVERS)}
    assert serving <= SERVES, f"uvicorn started outside the serving command: {sorted(serving - SERVES)}"


def test_ray_stays_in_its_modules() -> None:
    using = {m for m in modules("service") + modules("training") if "ray" in third_party_imports(m)}
    assert using <= RAY_MODULES, f"Ray imported outside its modules: {using - RAY_MODULES}"


def test_training_core_does_not_import_the_benchmarks() -> None:
    core = [m for m in modules("training") if not m.startswith("training.bench")]
    leaning = {m: sorted(i for i in imports_of(m) if i.startswith("training.bench")) for m in core}
    assert not {m: v for m, v in leaning.items() if v}, f"training core imports bench/: {leaning}"
