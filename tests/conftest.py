import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def lite0():
    """The embedded default model with its real ImageNet weights (loaded once per test session)."""
    import featviz

    return featviz.load_model("efficientnet_lite0")
