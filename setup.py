"""Build hook; the project's metadata is declared in setup.cfg.

A wheel built from this project (`pip install .`, not editable) carries the
recipe scripts as package data in `zoo/_recipes/`, so `zoo train` works from
an installed zoo. In a source checkout (and an editable install) `zoo train`
runs `recipes/` directly; see `zoo.cli.recipes_dir`.
"""

import glob
import os

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithRecipes(build_py):
    """`build_py` that also copies `recipes/*.py` into the built package as `zoo/_recipes/`."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads recipes/ of the checkout
        target = os.path.join(self.build_lib, "zoo", "_recipes")
        self.mkpath(target)
        for script in sorted(glob.glob(os.path.join("recipes", "*.py"))):
            self.copy_file(script, os.path.join(target, os.path.basename(script)))


setup(cmdclass={"build_py": BuildPyWithRecipes})
