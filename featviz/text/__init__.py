"""Text for image models: a text tower maps prompts into a model's image-embedding space, so that text
objectives, text directions and zero-shot neuron ranking work the same on CLIP and on ImageNet classifiers."""
from featviz.text.clip import ClipTextTower
from featviz.text.directions import TextDirection, TextDirections, find_text_direction, text_directions
from featviz.text.directions import text_direction  # noqa: F401 - deprecated name of find_text_direction, not in __all__
from featviz.text.neurons import NeuronScore, format_neurons, rank_neurons
from featviz.text.prompts import ENSEMBLE, check_prompts, prompt_embeddings, weighted_prompts
from featviz.text.tower import TextTower, text_tower
from featviz.text.sentence import ClassTextTower, Resolution  # registers the classifier tower (Model.text)

__all__ = [
    "ClassTextTower", "ClipTextTower", "ENSEMBLE", "NeuronScore", "TextDirection", "TextDirections", "TextTower", "check_prompts",
    "find_text_direction", "format_neurons", "prompt_embeddings", "rank_neurons", "Resolution", "text_directions", "text_tower",
    "weighted_prompts",
]
