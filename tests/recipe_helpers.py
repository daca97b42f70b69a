"""Load a recipe script (recipes/NAME.py) as a module, for in-process smoke runs."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_recipe(name):
    spec = importlib.util.spec_from_file_location(f"{name}_recipe", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_smoke_model(recipe_name, options, model_name, root):
    """Run a recipe in-process into the hub directory `root`; returns its card."""
    return load_recipe(recipe_name).main(
        list(options) + ["--name", model_name, "--output-dir", str(root), "--run-dir", str(root / "run")]
    )
