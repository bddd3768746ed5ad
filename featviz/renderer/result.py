"""What a render returns: the images, the objective's value per step, snapshots; saved as PNGs or shown inline."""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from featviz.errors import FeatvizError
from featviz.renderer.image import grid, save_png, save_pngs, to_numpy, to_pil

@dataclass
class RenderResult:
    """What `render` returns: the final images, the objective's value per step, and snapshots.

    `images` is (B, C, H, W) on the CPU with values in [0, 1] (C + 1 channels with an alpha channel);
    `history` is (steps, B): each image's objective value at each step (averaged over its views);
    `snapshots` maps each requested threshold step to the images at that step; `importance` (renders made with
    ``importance=True``, else None) is (B, H, W): each pixel's absolute gradient, summed over the steps.
    `objectives` names each image's objective, `seed` and `steps` are the render's, `seconds` its duration.

    Example:
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=2, size=64, seed=0, progress=False)
        >>> result.images.shape, result.history.shape, result.objectives
        (torch.Size([1, 3, 64, 64]), torch.Size([2, 1]), ['blocks.4.0.conv_pwl:3'])
        >>> result.save("channel3.png")
        [PosixPath('channel3.png')]
    """

    images: torch.Tensor
    history: torch.Tensor
    objectives: list[str]
    seed: int
    steps: int
    seconds: float
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    importance: torch.Tensor | None = None

    def to_pil(self) -> list:
        """The images as PIL images."""
        return to_pil(self.images)

    def to_numpy(self):
        """The images as a uint8 array (B, H, W, C)."""
        return to_numpy(self.images)

    def _repr_png_(self) -> bytes:
        """The images as one PNG (a grid when there are several): how Jupyter shows a result inline."""
        images = self.images if len(self.images) == 1 else grid(self.images)
        buffer = io.BytesIO()
        to_pil(images)[0].save(buffer, format="PNG")
        return buffer.getvalue()

    def metadata(self, index: int) -> dict[str, str]:
        """Text stored in the PNG of image `index`: objective, steps, seed, final objective value."""
        return {
            "featviz:objective": self.objectives[index % len(self.objectives)],
            "featviz:steps": str(self.steps),
            "featviz:seed": str(self.seed + index),
            "featviz:value": f"{float(self.history[-1, index]):.6g}" if len(self.history) else "",
        }

    def importance_images(self) -> torch.Tensor:
        """The images as RGBA (B, 4, H, W) whose alpha is the importance map, divided by its 99th percentile
        (per image) and clipped to 1: the parts of the image the objective depended on most stay opaque.

        Example:
            >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=2, size=(32, 48), importance=True,
            ...                         progress=False)
            >>> result.importance_images().shape
            torch.Size([1, 4, 32, 48])
        """
        if self.importance is None:
            raise FeatvizError("this render kept no importance map; render with importance=True (--importance)")
        flat = self.importance.flatten(1).float()
        scale = torch.quantile(flat, 0.99, dim=1).clamp(min=torch.finfo(torch.float32).tiny)
        alpha = (flat / scale[:, None]).clamp(0, 1).view(self.importance.shape).unsqueeze(1)
        # the colours as a PNG shows them: grey (with or without alpha) as RGB, otherwise the first three channels
        colors = self.images[:, :1].expand(-1, 3, -1, -1) if self.images.shape[1] <= 2 else self.images[:, :3]
        return torch.cat([colors, alpha], dim=1)

    def save(self, path: str | os.PathLike, grid_columns: int | None = None, importance: bool = False) -> list[Path]:
        """Save the render: one image -> `path`; several -> one grid PNG at `path` when it ends in `.png`,
        otherwise one PNG per image inside the folder `path`. With `importance`, each PNG also gets a
        `<name>-importance.png` beside it (see `importance_images`). Returns the written paths.

        Example:
            >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3-4", steps=2, size=32, progress=False)
            >>> result.save("out/")                     # a folder: one PNG per image
            [PosixPath('out/0-blocks.4.0.conv_pwl-3.png'), PosixPath('out/1-blocks.4.0.conv_pwl-4.png')]
            >>> result.save("grid.png")                 # a .png: one grid
            [PosixPath('grid.png')]
        """
        path = Path(path)
        outputs = [(self.images, "")]
        if importance:
            outputs.append((self.importance_images(), "-importance"))
        written: list[Path] = []
        for images, suffix in outputs:
            if path.suffix.lower() == ".png":
                target = path.with_name(f"{path.stem}{suffix}.png")
                if len(images) == 1:
                    written.append(save_png(images[0], target, self.metadata(0)))
                    continue
                meta = {"featviz:objectives": " | ".join(self.objectives), "featviz:steps": str(self.steps), "featviz:seed": str(self.seed)}
                written.append(save_png(grid(images, grid_columns), target, meta))
                continue
            names = [f"{index}-{_file_stem(self.objectives[index % len(self.objectives)])}{suffix}.png" for index in range(len(images))]
            written += save_pngs(images, [path / name for name in names], [self.metadata(i) for i in range(len(images))])
        return written


def _file_stem(text: str) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in text)
    return stem.strip("-")[:100] or "objective"


