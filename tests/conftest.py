import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def lite0():
    """The embedded default model with its real ImageNet weights (loaded once per test session)."""
    import featviz

    return featviz.load_model("efficientnet_lite0")


@pytest.fixture(scope="session", autouse=True)
def featviz_cache(tmp_path_factory):
    """One FEATVIZ_CACHE for the whole session: what text towers and dataset passes cache (the class names'
    sentence embeddings, fitted maps) is computed once per run and never read from or written to the user's
    cache. Tests of caching itself set their own folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FEATVIZ_CACHE", str(tmp_path_factory.mktemp("featviz-cache")))
        yield
