import os

# Idle OpenMP threads sleep instead of spinning: on a machine whose cores are busy with other work, spinning
# threads of two processes starve each other (a 64 px forward pass measured 24 ms with this, up to 2.3 s without).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

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
