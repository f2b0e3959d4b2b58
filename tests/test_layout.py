"""The layout holds: the library's layers import only downward (core → text → weights →
training → analysis → cli | viz → dashboard), only gpt2viz/dashboard/ imports Streamlit, no
module circles, and no glue module lies loose at the top level again."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "gpt2viz"
DASHBOARD = LIBRARY / "dashboard"
# Each layer may import its own and lower ranks; cli and viz share a rank and ignore each other.
RANK = {"core": 0, "text": 1, "weights": 2, "training": 3, "analysis": 4, "cli": 5, "viz": 5,
        "dashboard": 6}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included), as absolute
    dotted names; `from . import x` inside gpt2viz/sub/ gives gpt2viz.sub.x."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            modules.add(base)
            modules |= {f"{base}.{alias.name}" for alias in node.names}  # maybe submodules
    return modules


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "gpt2viz" and parts[1] in RANK else None


def library_files():
    return sorted(LIBRARY.rglob("*.py"))


def test_every_library_module_sits_in_a_layer():
    loose = [p.name for p in LIBRARY.glob("*.py")]
    assert sorted(loose) == ["__init__.py", "__main__.py"]
    assert {p.name for p in LIBRARY.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(RANK)


def upward_imports(module: str, targets: set[str]) -> list[str]:
    """What `module` imports from a higher layer, a sibling it must ignore (cli ↔ viz), or the
    package root (the public API is for users: the library imports its layers directly)."""
    here = layer_of(module)
    if here is None:
        return []  # gpt2viz/__init__ (the public API) and __main__ sit on top
    return sorted(t for t in targets
                  if t == "gpt2viz" or (layer_of(t) and (RANK[layer_of(t)] > RANK[here]
                                                         or {here, layer_of(t)} == {"cli", "viz"})))


def test_layers_import_only_downward():
    upward = {module_name(p): upward_imports(module_name(p), imported_modules(p))
              for p in library_files()}
    assert not {m: t for m, t in upward.items() if t}


def test_the_rule_catches_an_upward_import():
    assert upward_imports("gpt2viz.core.model", {"gpt2viz.training.train", "torch"}) == [
        "gpt2viz.training.train"]
    assert upward_imports("gpt2viz.viz.rope", {"gpt2viz.cli.bench"}) == ["gpt2viz.cli.bench"]
    assert upward_imports("gpt2viz.weights.pretrained", {"gpt2viz"}) == ["gpt2viz"]
    assert upward_imports("gpt2viz.analysis.bench", {"gpt2viz.core.attention"}) == []


def test_no_two_modules_import_each_other():
    modules = {module_name(p): p for p in library_files()}
    imports = {name: {m for m in imported_modules(p) if m in modules and m != name}
               for name, p in modules.items()}
    circles = {tuple(sorted((a, b))) for a, targets in imports.items() for b in targets
               if a in imports.get(b, ()) and not b.endswith("__init__")
               and a not in ("gpt2viz",) and b not in ("gpt2viz",)}
    assert not circles


def test_only_the_dashboard_package_imports_streamlit():
    library = [p for p in library_files() if DASHBOARD not in p.parents]
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


def test_the_public_api_is_importable_from_the_package():
    import gpt2viz

    for name in ("GPT2", "ModelConfig", "PRESETS", "Trace", "preset", "attention",
                 "get_tokenizer", "load_hf_gpt2", "to_gqa"):
        assert hasattr(gpt2viz, name), name
