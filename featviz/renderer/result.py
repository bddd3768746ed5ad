"""What a render returns: the images, the objective's value per step, snapshots; saved as PNGs or shown inline."""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from featviz.renderer.image import grid, save_png, save_pngs, to_numpy, to_pil

@dataclass
class RenderResult:
    """What `render` returns: the final images, the objective's value per step, and snapshots.

    `images` is (B, C, H, W) on the CPU with values in [0, 1] (C + 1 channels with an alpha channel);
    `history` is (steps, B): each image's objective value at each step (averaged over its views);
    `snapshots` maps each requested threshold step to the images at that step.

    Example:
        >>> result = featviz.render(model, "blocks.4.0.conv_pwl:3", steps=128)
        >>> result.save("channel3.png")
    """

    images: torch.Tensor
    history: torch.Tensor
    objectives: list[str]
    seed: int
    steps: int
    seconds: float
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)

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

    def save(self, path: str | os.PathLike, grid_columns: int | None = None) -> list[Path]:
        """Save the render: one image -> `path`; several -> one grid PNG at `path` when it ends in `.png`,
        otherwise one PNG per image inside the folder `path`. Returns the written paths.

        Example:
            >>> result.save("out/")        # out/0-blocks.4.0.conv_pwl-3.png, ...
        """
        path = Path(path)
        if path.suffix.lower() == ".png":
            if len(self.images) == 1:
                return [save_png(self.images[0], path, self.metadata(0))]
            meta = {"featviz:objectives": " | ".join(self.objectives), "featviz:steps": str(self.steps), "featviz:seed": str(self.seed)}
            return [save_png(grid(self.images, grid_columns), path, meta)]
        names = [f"{index}-{_file_stem(self.objectives[index % len(self.objectives)])}.png" for index in range(len(self.images))]
        return save_pngs(self.images, [path / name for name in names], [self.metadata(i) for i in range(len(self.images))])


def _file_stem(text: str) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in text)
    return stem.strip("-")[:100] or "objective"


