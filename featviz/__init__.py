"""featviz: see what a unit of any PyTorch vision network responds to.

The package's folders are layers, each importing only those below it (docs/architecture.md; setup.cfg's
import contracts): cli > recipes | gallery > concepts > renderer | metrics > objectives > text > dataset > models
> hooks | param | transforms | optim > io | device | discovery | imagefile > errors.

Example:
    >>> import featviz
    >>> model = featviz.load_model("efficientnet_lite0")
    >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=8, size=64, seed=0)   # 512 steps by default
    >>> result.save("channel3.png")
    [PosixPath('channel3.png')]
"""
from featviz import hooks, objectives, optim, param, text, transforms  # text registers the classifier text tower
from featviz.errors import FeatvizError
from featviz.hooks import layer_table
from featviz.models import Model, list_models, load_model
from featviz.renderer import NonFiniteObjectiveError, Renderer, RenderResult, RenderSettings, render

__version__ = "0.1.0"

__all__ = [
    "FeatvizError", "Model", "NonFiniteObjectiveError", "Renderer", "RenderResult", "RenderSettings", "hooks", "layer_table", "list_models", "load_model", "objectives",
    "optim", "param", "render", "transforms", "__version__",
]
