"""ClampSGD: the sign-like, dropout-thinned SGD of StructuredDreaming, the project featviz grew from."""
from __future__ import annotations

from typing import Callable, Iterable

import torch

from featviz.errors import FeatvizError


class ClampSGD(torch.optim.Optimizer):
    """`p <- p - lr * dropout(clamp(g, -c, c) / c, p=drop)`, no momentum.

    With the default `clamp=1e-30` the update is essentially the gradient's sign; dropout keeps each
    coordinate's step with probability `1 - drop` and scales the survivors by `1 / (1 - drop)`, as dropout
    does in training mode. Pass a seeded `generator` for reproducible renders.

    Example:
        >>> weight = torch.nn.Parameter(torch.zeros(4))
        >>> optimizer = ClampSGD([weight], lr=0.1, drop=0.0)
        >>> weight.grad = torch.tensor([3.0, -0.001, 0.0, 2.0])
        >>> optimizer.step()                                   # every coordinate moves by lr, against its gradient
        >>> weight.data
        tensor([-0.1000,  0.1000,  0.0000, -0.1000])
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=4, size=64, progress=False,
        ...     optimizer=lambda params: ClampSGD(params, lr=0.01, generator=torch.Generator().manual_seed(0)))
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 2e-4,
        clamp: float = 1e-30,
        drop: float = 0.8,
        generator: torch.Generator | None = None,
    ):
        if lr <= 0:
            raise FeatvizError(f"ClampSGD lr must be positive, got {lr}")
        if clamp <= 0:
            raise FeatvizError(f"ClampSGD clamp must be positive, got {clamp}")
        if not 0 <= drop < 1:
            raise FeatvizError(f"ClampSGD drop must be in [0, 1), got {drop}")
        super().__init__(params, dict(lr=lr, clamp=clamp, drop=drop))
        self.generator = generator

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Apply one update to every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, clamp, drop = group["lr"], group["clamp"], group["drop"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                update = parameter.grad.clamp(-clamp, clamp) / clamp
                if drop > 0:
                    device = self.generator.device if self.generator is not None else update.device
                    keep = torch.rand(update.shape, generator=self.generator, device=device).to(update.device) >= drop
                    update = update * keep / (1 - drop)
                parameter.sub_(update, alpha=lr)
        return loss
