"""Load a recipe script (recipes/NAME.py) as a module, for in-process smoke runs."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_recipe(name):
    spec = importlib.util.spec_from_file_location(f"{name}_recipe", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
