"""What a render maximizes: units (channel, neuron, layer, direction, class), batch objectives (diversity,
alignment, interpolation), penalties (total variation, L1, L2, blur), text prompts, functions ``f(T)``, their algebra,
`stack` and shorthand.

Example:
    >>> from featviz import objectives as obj
    >>> goal = obj.channel("blocks.4.0.conv_pwl", 12) - 0.05 * obj.total_variation()
    >>> gallery = obj.stack(obj.parse("blocks.4.0.conv_pwl:0-15"))
"""
from featviz.discovery import import_modules
from featviz.objectives.algebra import stack
from featviz.objectives.base import Objective
from featviz.objectives.batch import alignment, channel_interpolate, diversity
from featviz.objectives.callables import FunctionObjective, wrap_objective
from featviz.objectives.dictionary import Dictionary, dictionary_feature, load_dictionary
from featviz.objectives.faceted import facet
from featviz.objectives.language import text, text_direction
from featviz.objectives.shorthand import objective, parse
from featviz.objectives.penalties import blur, l1, l2, total_variation
from featviz.objectives.units import channel, class_logit, direction, direction_neuron, layer, neuron
from featviz.objectives.units import deepdream  # noqa: F401 - lucid's name of layer, not in __all__

# Every module is imported, so one that registers a shorthand form (`register_shorthand`) needs no line here.
import_modules(__name__, __path__)

__all__ = [
    "Objective", "FunctionObjective", "wrap_objective", "stack", "parse", "objective",
    "channel", "neuron", "layer", "direction", "direction_neuron", "class_logit",
    "diversity", "alignment", "channel_interpolate",
    "total_variation", "l1", "l2", "blur", "text", "text_direction",
    "facet", "Dictionary", "dictionary_feature", "load_dictionary",
]
