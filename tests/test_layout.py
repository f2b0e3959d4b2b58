"""The layout holds: only gpt2viz/dashboard/ imports Streamlit (the library computes, the
dashboard shows), and no glue module lies loose at the top level again."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "gpt2viz" / "dashboard"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_only_the_dashboard_package_imports_streamlit():
    library = [p for p in (ROOT / "gpt2viz").rglob("*.py") if DASHBOARD not in p.parents]
    assert len(library) > 10
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in imported_modules(p) if m.split(".")[0] == "streamlit")
                 for p in library}
    assert not {p: m for p, m in offenders.items() if m}


def test_the_dashboard_does_import_streamlit_so_the_scan_sees_imports():
    assert any("streamlit" in imported_modules(p) for p in DASHBOARD.glob("*.py"))


def test_the_top_level_holds_app_py_and_no_glue_modules():
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["app.py"]


def test_pages_and_app_import_the_dashboard_not_loose_modules():
    loose = {"ui", "sidebar", "training", "corpora", "serving_ui", "bench_runs"}
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        assert not imported_modules(path) & loose, path.name
    assert "gpt2viz.dashboard" in imported_modules(ROOT / "app.py")
