"""Every signature of every hub SavedModel runs under the TF1 session loader, with the same outputs.

One case per model in `zoo.hub.list_models()`, so a new model is covered from
its first day; what is checked is in `serving_helpers.check_session_loader`.
"""

import pytest

from zoo import hub
from serving_helpers import check_session_loader


@pytest.mark.parametrize("name", hub.list_models())
def test_every_signature_runs_in_a_tf1_session_like_under_saved_model_load(name):
    check_session_loader(name)
