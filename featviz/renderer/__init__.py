"""Rendering: the optimization loop (`Renderer`, `render`) and the ways images leave it (tensor, PIL, numpy,
PNG, grid, inline in a notebook)."""
from featviz.renderer.image import grid, save_png, save_pngs, to_numpy, to_pil
from featviz.renderer.renderer import NonFiniteObjectiveError, Renderer, render
from featviz.renderer.result import RenderResult
from featviz.renderer.settings import RenderSettings

__all__ = [
    "Renderer", "render", "RenderResult", "RenderSettings", "NonFiniteObjectiveError", "grid", "save_png", "save_pngs", "to_numpy",
    "to_pil",
]
