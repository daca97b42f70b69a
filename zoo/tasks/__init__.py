"""Task families: the library side of each recipe (model builder, evaluation, serving).

A recipe in `recipes/` is the readable script; the code it shares with the
hub, the CLI and other recipes lives here. Each task module provides
`TASK`, `IO_TYPE`, `remeasure(model, card)` (what `zoo verify` runs) and its
own prediction helpers.
"""

import importlib

TASK_MODULES = {
    "sentiment": "zoo.tasks.sentiment",
    "music": "zoo.tasks.music",
    "translation": "zoo.tasks.translation",
    "captioning": "zoo.tasks.captioning",
    "forecasting": "zoo.tasks.forecasting",
    "timeseries-classification": "zoo.tasks.timeseries_classification",
    "tagging": "zoo.tasks.tagging",
    "language-model": "zoo.tasks.language_model",
    "speech": "zoo.tasks.speech",
}


def get_task(name):
    """The task module for a card's `task` field."""
    if name not in TASK_MODULES:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASK_MODULES))}")
    return importlib.import_module(TASK_MODULES[name])
