"""Forward hooks: survey a model's layers and their layouts, capture the layers an objective reads (channels-first),
stop the forward pass after them, and redirect dead ReLU gradients."""
from featviz.hooks.capture import IMAGE, OUTPUT, RESERVED, ActivationCapture, first_tensor
from featviz.hooks.dataflow import feeding_layers
from featviz.hooks.layers import LayerInfo, format_layer_table, layer_table
from featviz.hooks.leaf import LeafOutput, leaf_output
from featviz.hooks.layout import Layout, as_layout, channels_first, map_shape
from featviz.hooks.relu import RedirectedReLU, redirected_clamp
from featviz.hooks.survey import LayerBinding, Survey, bind_layers, declared_patch_grid, resolve_layouts, survey_model

__all__ = [
    "IMAGE", "OUTPUT", "RESERVED", "ActivationCapture", "first_tensor", "feeding_layers", "LayerInfo", "format_layer_table",
    "layer_table", "LeafOutput", "leaf_output", "Layout", "as_layout", "channels_first", "map_shape", "RedirectedReLU",
    "redirected_clamp", "LayerBinding", "Survey", "bind_layers", "declared_patch_grid", "resolve_layouts", "survey_model",
]
