"""Forward hooks: capture the layers an objective reads, stop the forward pass after them, redirect dead
ReLU gradients, and read any activation layout (NCHW, NHWC, tokens) channels-first."""
from featviz.hooks.capture import IMAGE, OUTPUT, RESERVED, ActivationCapture, first_tensor
from featviz.hooks.layers import LayerInfo, format_layer_table, layer_table
from featviz.hooks.layout import channel_count, channels_first, spatial_size
from featviz.hooks.relu import RedirectedReLU, redirected_clamp

__all__ = [
    "IMAGE", "OUTPUT", "RESERVED", "ActivationCapture", "first_tensor", "LayerInfo", "format_layer_table",
    "layer_table", "channel_count", "channels_first", "spatial_size", "RedirectedReLU", "redirected_clamp",
]
