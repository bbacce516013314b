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


def test_inference_never_loads_the_training_loop():
    code = ("import sys; import playground.services.image_sampling, playground.services.toy_lab, "
            "playground.services.photo_noising; "
            "print(sorted(m for m in sys.modules if m.startswith('playground.diffusion.training')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_module_is_on_the_map():
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = [str(p.relative_to(PACKAGE)) for p in SOURCES
               if p.name != "__init__.py" and str(p.relative_to(PACKAGE)) not in text]
    assert not missing, f"docs/architecture.md does not mention {missing}"
