"""Optimizers beyond torch.optim. Any torch optimizer works in `featviz.render`; this adds ClampSGD."""
from featviz.optim.clamp_sgd import ClampSGD

__all__ = ["ClampSGD"]
