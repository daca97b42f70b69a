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


def smoke_hub_fixtures(recipe_name, options, model_name):
    """The two fixtures a recipe's test file shares: `smoke_hub` (module-scoped: a hub directory
    holding one model from a seconds-long run of the recipe) and `use_hub` (that directory as
    `ZOO_MODELS_DIR`). Assign them at module level: `smoke_hub, use_hub = smoke_hub_fixtures(...)`."""
    import pytest

    @pytest.fixture(scope="module")
    def smoke_hub(tmp_path_factory):
        from zoo.data.cache import DataUnavailableError

        root = tmp_path_factory.mktemp("hub")
        try:
            return root, train_smoke_model(recipe_name, options, model_name, root)
        except DataUnavailableError as error:  # e.g. a package registry out of reach, a tool not installed
            pytest.skip(f"{recipe_name} data unavailable: {error}")

    @pytest.fixture
    def use_hub(smoke_hub, monkeypatch):
        root, card = smoke_hub
        monkeypatch.setenv("ZOO_MODELS_DIR", str(root))
        return root, card

    return smoke_hub, use_hub
