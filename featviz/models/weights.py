"""Weights: local checkpoints, the download caches, and failing fast when a download is impossible.

Pretrained weights that are not cached need a download. Before starting one, `require_download` checks with a
short socket connect that the host answers; when it does not, it raises `FeatvizError` at once instead of
letting a library retry for minutes.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Literal, Mapping, Union

import torch
from torch import nn

from featviz.errors import FeatvizError
from featviz.models.model import Model

WeightsChoice = Union[Path, Literal["random"], None]
"""What `load_model` passes to a model builder: a checkpoint path, ``"random"``, or None for the default weights."""

NETWORK_TIMEOUT_SECONDS = 3.0
_NESTING_KEYS = ("state_dict", "model")
_SHOWN_KEYS = 3


def resolve_weights_argument(weights: str | os.PathLike | None) -> WeightsChoice:
    """Check the ``weights`` argument of `load_model`: None, ``"random"`` or an existing checkpoint file.

    Example:
        >>> resolve_weights_argument("random")
        'random'
        >>> torch.save(nn.Linear(2, 2).state_dict(), "ckpt.pth")
        >>> resolve_weights_argument("ckpt.pth")
        PosixPath('ckpt.pth')
        >>> resolve_weights_argument("missing.pth")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: weights file 'missing.pth' does not exist; pass an existing checkpoint path, 'random', or nothing for the default pretrained weights
    """
    if weights is None:
        return None
    if isinstance(weights, str) and weights.strip().lower() == "random":
        return "random"
    if not isinstance(weights, (str, os.PathLike)):
        raise FeatvizError(
            f"weights must be None, 'random' or a checkpoint path, not {type(weights).__name__}"
        )
    path = Path(weights).expanduser()
    if not path.exists():
        raise FeatvizError(
            f"weights file '{weights}' does not exist; pass an existing checkpoint path, "
            "'random', or nothing for the default pretrained weights"
        )
    if not path.is_file():
        raise FeatvizError(f"weights path '{weights}' is not a file; pass a checkpoint saved with torch.save")
    return path


def first_line(error: BaseException, limit: int = 160) -> str:
    """The first line of ``error``'s message (its type name when empty), cut to ``limit`` characters.

    Example:
        >>> first_line(RuntimeError("shape mismatch\\nat line 3"))
        'shape mismatch'
    """
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_tensor_mapping(value: object) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(key, str) and isinstance(tensor, torch.Tensor) for key, tensor in value.items()
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` (``torch.save`` file, or ``.safetensors``), CPU tensors only.

    A state dict nested under ``"state_dict"`` or ``"model"`` is unwrapped and a ``"module."`` prefix (from
    ``DataParallel``) is stripped. An unreadable file raises FeatvizError.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> torch.save({"state_dict": {f"module.{key}": value for key, value in net.state_dict().items()}}, "net.pth")
        >>> sorted(read_state_dict("net.pth")) == sorted(net.state_dict())
        True
    """
    path = Path(path)
    expected = "expected a state dict saved with torch.save"
    try:
        if path.suffix == ".safetensors":
            import safetensors.torch

            loaded: object = safetensors.torch.load_file(str(path), device="cpu")
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types (pickle, zip, runtime) for one cause
        raise FeatvizError(f"cannot read weights file {path} ({first_line(error)}); {expected}") from None
    for _ in range(2):
        if isinstance(loaded, Mapping) and not _is_tensor_mapping(loaded):
            nested = next((loaded[key] for key in _NESTING_KEYS if isinstance(loaded.get(key), Mapping)), None)
            if nested is not None:
                loaded = nested
    if not _is_tensor_mapping(loaded) or not loaded:
        found = "an empty dict" if isinstance(loaded, Mapping) and not loaded else f"a {type(loaded).__name__}"
        raise FeatvizError(f"weights file {path} holds {found}, not a name -> tensor mapping; {expected}")
    prefix = "module."
    if all(key.startswith(prefix) for key in loaded):
        return {key[len(prefix):]: tensor for key, tensor in loaded.items()}
    return dict(loaded)


def _show(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (", ..." if len(keys) > _SHOWN_KEYS else "")


def check_state_dict(network: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, model_name: str) -> None:
    """Raise FeatvizError unless ``state`` has exactly the keys and shapes of ``network.state_dict()``.

    The message counts the missing keys, unexpected keys and shape mismatches and names the first few.
    BatchNorm's ``num_batches_tracked`` counters may be absent.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3))
        >>> check_state_dict(net, nn.Sequential(nn.Conv2d(3, 4, 3)).state_dict(), source="net.pth", model_name="tiny")
        >>> check_state_dict(net, nn.Sequential(nn.Conv2d(3, 8, 3)).state_dict(), source="net.pth", model_name="tiny")
        Traceback (most recent call last):
        featviz.errors.FeatvizError: ...
    """
    expected = network.state_dict()
    missing = [key for key in expected if key not in state and not key.endswith("num_batches_tracked")]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_show(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_show(unexpected)})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches, file vs model ({_show(mismatched)})")
    if problems:
        raise FeatvizError(
            f"weights {source} do not fit {model_name}: {'; '.join(problems)}; pass a checkpoint of {model_name}"
        )


def load_state_dict_checked(
    network: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, model_name: str
) -> None:
    """Check ``state`` against ``network`` with `check_state_dict`, then load it into ``network``.

    Example:
        >>> net, trained = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> load_state_dict_checked(net, trained.state_dict(), source="trained", model_name="tiny")
        >>> torch.equal(net.weight, trained.weight)
        True
    """
    check_state_dict(network, state, source=source, model_name=model_name)
    network.load_state_dict(state, strict=False)


def load_weights_file(
    network: nn.Module,
    path: str | os.PathLike,
    *,
    model_name: str,
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> None:
    """Load the checkpoint at ``path`` into ``network`` (after ``convert``, when given); mismatches raise.

    Example:
        >>> net, trained = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> torch.save(trained.state_dict(), "net.pth")
        >>> load_weights_file(net, "net.pth", model_name="tiny")
        >>> torch.equal(net.weight, trained.weight)
        True
    """
    state = read_state_dict(path)
    if convert is not None:
        state = convert(state)
    load_state_dict_checked(network, state, source=f"file {path}", model_name=model_name)


def _proxy_for(host: str) -> tuple[str, int] | None:
    proxy = urllib.request.getproxies().get("https")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if not parsed.hostname:
        return None
    return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)


def is_host_reachable(host: str, port: int = 443, timeout: float = NETWORK_TIMEOUT_SECONDS) -> bool:
    """Whether a TCP connection to ``host:port`` (or to the HTTPS proxy) opens within ``timeout`` seconds.

    Name resolution runs inside the deadline too (in a daemon thread), so this never takes longer.

    Example:
        >>> is_host_reachable("huggingface.co")   # doctest: +SKIP
        True
    """
    target = _proxy_for(host) or (host, port)
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(target, timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=connect, name="featviz-network-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def host_of(url: str) -> str:
    """The host name of ``url``.

    Example:
        >>> host_of("https://download.pytorch.org/models/resnet18-f37072fd.pth")
        'download.pytorch.org'
    """
    return urllib.parse.urlsplit(url).hostname or url


def huggingface_host() -> str:
    """The host Hugging Face hub downloads come from (``HF_ENDPOINT`` or huggingface.co).

    Example:
        >>> huggingface_host()
        'huggingface.co'
    """
    from huggingface_hub import constants

    return host_of(constants.ENDPOINT)


_CACHE_LOCATIONS = {"huggingface": "HF_HOME", "torch": "TORCH_HOME", "clip": "~/.cache/clip"}


def _download_advice(model_name: str, host: str, cache: str, reason: str) -> str:
    return (
        f"weights for {model_name} need a download from {host} and {reason}; pass weights=PATH "
        f"(CLI --weights PATH) with a local checkpoint, put it in the cache ({_CACHE_LOCATIONS[cache]}), "
        "or use weights='random'"
    )


def require_download(model_name: str, host: str, cache: Literal["huggingface", "torch", "clip"]) -> None:
    """Raise FeatvizError at once when ``host`` cannot be reached (or the Hugging Face hub is set offline); the
    message names ``model_name`` and says how to supply its weights without a download.

    ``cache`` says which cache the download would land in: the Hugging Face hub's, torch.hub's or open_clip's.

    Example:
        Without a network:

        >>> require_download("timm:resnet18", "huggingface.co", "huggingface")   # doctest: +SKIP
        Traceback (most recent call last):
        featviz.errors.FeatvizError: weights for timm:resnet18 need a download from huggingface.co and there ...
    """
    if cache == "huggingface":
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise FeatvizError(_download_advice(model_name, host, cache, "HF_HUB_OFFLINE is set"))
    if not is_host_reachable(host):
        raise FeatvizError(_download_advice(model_name, host, cache, "there is no network"))


@contextlib.contextmanager
def downloading(model_name: str, host: str, cache: Literal["huggingface", "torch", "clip"]) -> Iterator[None]:
    """Check the network with `require_download` (``model_name``, ``host``, ``cache`` as there), then turn a
    failure inside the block into a FeatvizError.

    Example:
        >>> import timm
        >>> with downloading("timm:resnet18", "huggingface.co", "huggingface"):   # doctest: +SKIP
        ...     network = timm.create_model("resnet18", pretrained=True)
    """
    require_download(model_name, host, cache)
    try:
        yield
    except FeatvizError:
        raise
    except Exception as error:  # the hub clients raise many unrelated types for one failed download
        raise FeatvizError(
            _download_advice(model_name, host, cache, f"the download failed ({first_line(error)})")
        ) from error


def huggingface_cached_file(repo_id: str, filenames: list[str]) -> str | None:
    """The local path of the first of ``filenames`` in the Hugging Face cache for ``repo_id``, or None.

    ``repo_id`` may carry a revision as ``org/name@revision``. Only the disk is read.

    Example:
        >>> huggingface_cached_file("timm/resnet18.a1_in1k", ["model.safetensors", "pytorch_model.bin"])  # doctest: +SKIP
        '/home/me/.cache/huggingface/hub/models--timm--resnet18.a1_in1k/snapshots/.../model.safetensors'
    """
    from huggingface_hub import constants, try_to_load_from_cache

    repo, _, revision = repo_id.partition("@")
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename, cache_dir=constants.HF_HUB_CACHE, revision=revision or None)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def torch_hub_cached_file(url: str) -> str | None:
    """The path torch.hub keeps ``url``'s download at (``$TORCH_HOME/hub/checkpoints``), or None if absent.

    Example:
        >>> torch_hub_cached_file("https://download.pytorch.org/models/resnet18-f37072fd.pth")  # doctest: +SKIP
        '/home/me/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth'
    """
    filename = os.path.basename(urllib.parse.urlsplit(url).path)
    path = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    return path if filename and os.path.isfile(path) else None


def weights_fingerprint(model: nn.Module, sample_bytes: int = 1 << 16) -> str:
    """A hex digest of the model's state: every tensor's name, dtype and shape, and its first ``sample_bytes`` bytes.
    Of a featviz `Model`, the image side only (network and normalization): its text tower, made on first use, and
    what that is made from do not count.

    Cheap (a few MB hashed even for large models) and sensitive to any change of architecture, checkpoint or
    normalization; two checkpoints that differ only past the first 64 KiB of every tensor would collide.

    Example:
        >>> weights_fingerprint(model)[:12]
        'e96ab87dfba3'
    """
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        if isinstance(model, Model) and name.startswith(("text.", "text_source.")):
            continue
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.is_meta or tensor.numel() == 0:
            continue
        flat = tensor.detach().reshape(-1)
        count = min(flat.numel(), max(1, sample_bytes // flat.element_size()))
        digest.update(flat[:count].cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
