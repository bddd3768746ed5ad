"""Text for image models: a text tower maps prompts into a model's image-embedding space, so that text
objectives, text directions and zero-shot neuron ranking work the same on CLIP and on ImageNet classifiers."""
from featviz.text.clip import ClipTextTower, check_prompts
from featviz.text.directions import TextDirection, TextDirections, text_direction, text_directions
from featviz.text.neurons import NeuronScore, format_neurons, rank_neurons
from featviz.text.tower import TextTower, text_tower

__all__ = [
    "ClipTextTower", "NeuronScore", "TextDirection", "TextDirections", "TextTower", "check_prompts",
    "format_neurons", "rank_neurons", "text_direction", "text_directions", "text_tower",
]
