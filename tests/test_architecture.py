"""The floor plan of docs/architecture.md, checked: imports point down the layers, the UI only wires, and
inference never loads the training loop."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "playground"

# Each layer may import only from the layers below it (and itself).
LAYERS = {
    "core": ["playground.diffusion"],
    "building blocks": ["playground.models", "playground.checkpoints", "playground.data", "playground.media",
                        "playground.plots"],
    "services": ["playground.services"],
    "interfaces": ["playground.ui", "playground.cli", "playground.__main__"],
}
ORDER = list(LAYERS)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str | None:
    if module == "playground":  # the package itself holds only __version__
        return "core"
    for layer, prefixes in LAYERS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return layer
    return None


def imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path):
    own = layer_of(module_name(path))
    assert own is not None, f"{path} is in no layer: add it to docs/architecture.md and to LAYERS here"
    for name in imports(path):
        other = layer_of(name)
        if other is not None:
            assert ORDER.index(other) <= ORDER.index(own), f"{module_name(path)} ({own}) imports {name} ({other})"


@pytest.mark.parametrize("path", sorted((PACKAGE / "diffusion").glob("*.py")), ids=lambda p: p.name)
def test_the_core_is_pure_torch(path):
    roots = {name.split(".")[0] for name in imports(path)}
    assert not roots & {"gradio", "plotly", "PIL", "numpy", "diffusers", "safetensors", "os", "json"}, roots


@pytest.mark.parametrize("path", sorted((PACKAGE / "ui").glob("*.py")), ids=lambda p: p.name)
def test_the_ui_only_wires(path):
    roots = {name.split(".")[0] for name in imports(path)}
    assert not roots & {"threading", "json", "torch", "numpy", "PIL", "csv"}, roots


TRAINING = ("playground.diffusion.training", "playground.services.finetuning", "playground.services.training_runs",
            "playground.services.finetune_recipes", "playground.services.toy_training",
            "playground.diffusion.autoencoder_training", "playground.services.autoencoder_training",
            "playground.diffusion.distillation", "playground.services.distillation", "playground.services.latent_data",
            "playground.diffusion.adversarial")
INFERENCE = ("playground.services.image_sampling", "playground.services.model_catalog", "playground.services.prompting",
             "playground.services.sample_export", "playground.services.toy_lab", "playground.services.photo_noising",
             "playground.services.editing", "playground.services.latent_view", "playground.services.distillation_views")


@pytest.mark.slow
def test_inference_never_loads_training_code():
    """In a fresh interpreter, every inference service together loads none of the training modules (so none of them
    does alone)."""
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {INFERENCE!r}]; "
            f"print(sorted(m for m in sys.modules if m in {TRAINING!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"inference loads {out.stdout.strip()}"


MAX_FUNCTION_LINES = 80


def test_no_function_is_longer_than_a_screenful():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


EVENTS = {"click", "change", "upload", "input", "select", "release", "load", "then", "submit", "success", "on"}
UI_SOURCES = sorted((PACKAGE / "ui").glob("*.py"))


def _event_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in EVENTS:
            if node.func.attr == "on" and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "gr"):
                continue
            yield node


@pytest.mark.parametrize("path", UI_SOURCES, ids=lambda p: p.name)
def test_every_event_has_an_api_name(path):
    unnamed = [f"{path.name}:{call.lineno}" for call in _event_calls(ast.parse(path.read_text()))
               if not any(keyword.arg == "api_name" for keyword in call.keywords)]
    assert not unnamed, f"events without an api_name: {unnamed}"


def _is_limit(node: ast.AST) -> bool:
    """A number other than 0 and 1, or a name such as MAX_STEPS or MIN_TIMESTEPS."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value not in (0, 1)
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.startswith(("MAX_", "MIN_"))


@pytest.mark.parametrize("path", UI_SOURCES, ids=lambda p: p.name)
def test_no_tab_checks_a_setting_against_a_limit(path):
    """Settings are checked by the services (the tab, the API and the CLI say the same sentence); a tab compares no
    value with a limit of its own."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Lt | ast.LtE | ast.Gt | ast.GtE)
                                                 for op in node.ops):
            if any(_is_limit(part) for part in [node.left, *node.comparators]):
                found.append(f"{path.name}:{node.lineno}")
    assert not found, f"limits checked in a tab: {found}"


def test_every_module_is_on_the_map():
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [str(p.relative_to(PACKAGE)) for p in SOURCES
               if p.name != "__init__.py" and str(p.relative_to(PACKAGE)) not in text]
    assert not missing, f"docs/architecture.md does not mention {missing}"
