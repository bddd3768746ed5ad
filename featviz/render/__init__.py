"""Rendering: the optimization loop and the ways images leave it (tensor, PIL, numpy, PNG, grid)."""
from featviz.render.image import grid, save_png, save_pngs, to_numpy, to_pil
from featviz.render.render import NonFiniteObjectiveError, RenderResult, render

__all__ = ["render", "RenderResult", "NonFiniteObjectiveError", "grid", "save_png", "save_pngs", "to_numpy", "to_pil"]
