"""Load repository scripts (recipes, benchmarks) as modules, for in-process runs."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script(relative_path, module_name):
    """Load a script of the repository (not a package module) as a module."""
    spec = importlib.util.spec_from_file_location(module_name, ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_recipe(name):
    return load_script(f"recipes/{name}.py", f"{name}_recipe")


def train_smoke_model(recipe_name, options, model_name, root):
    """Run a recipe in-process into the hub directory `root`; returns its card."""
    return load_recipe(recipe_name).main(
        list(options) + ["--name", model_name, "--output-dir", str(root), "--run-dir", str(root / "run")]
    )
