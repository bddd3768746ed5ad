"""Learn a dictionary of a layer's features (sparse autoencoder or NMF) from its activations on a folder of images.

`collect_samples` runs the model over the images once and keeps the layer's activation vector at every
position of a CNN's map, or at every patch token of a ViT (CLS and register tokens dropped), optionally a
random subset of ``positions`` per image; the pass is cached like `featviz.dataset.collect_activations`' and,
under torchrun, each process reads its share of the images. `fit_dictionary` trains `overcomplete`'s sparse
autoencoders (``featviz[dictionary]``) on the vectors, scaled to a mean square of 1 per channel (not centred,
as the decoders have no bias): ``topk``, ``batchtopk``, ``jumprelu`` and ``relu`` (L1 penalty) SAEs, or
``nmf`` (on a non-negative layer). Training runs in fixed steps with the batch of step ``s`` drawn from seed
``seed`` and ``s``, so a run killed at any point and started again from its checkpoint makes the dictionary an
uninterrupted run would. Features that fire less than a tenth as often as the average one are moved onto the
worst-reconstructed samples every 250 steps until 3/4 of the steps (resampling). `learn_dictionary` does all
of this, measures the result (`dictionary_metrics`: R², mean L0, dead fraction; `stability` against a second
seed) and stores it in the saved file.

Dictionaries made elsewhere load with `from_overcomplete` (an `overcomplete` SAE or NMF module) or
`featviz.objectives.load_dictionary` (a plain ``(concepts, dim)`` tensor).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from featviz.dataset import ImageFolder
from featviz.dataset.folder import image_folder
from featviz.dataset.processes import Processes
from featviz.errors import FeatvizError, check_int
from featviz.hooks import IMAGE, OUTPUT, ActivationCapture, bind_layers
from featviz.io import atomic_path, ensure_writable_dir
from featviz.models import Model, load_model, weights_fingerprint
from featviz.objectives.dictionary import Dictionary, load_dictionary

METHODS = ("topk", "batchtopk", "jumprelu", "relu", "nmf")
SAMPLES_FORMAT = 1
CHECKPOINT_FORMAT = 1
METRIC_SAMPLES = 65536
RESAMPLE_EVERY = 250
RARE = 0.1  # features firing less than this share of the mean feature's rate are resampled
CHECKPOINT_SECONDS = 5.0


def import_overcomplete() -> Any:
    """The `overcomplete` package, or a FeatvizError saying how to install it.

    overcomplete 0.3.0 calls ``matplotlib.cm.get_cmap``, which matplotlib 3.9 removed, while it is imported;
    the same function is then provided from ``matplotlib.pyplot.get_cmap`` so that it imports.

    Example:
        >>> import_overcomplete().__version__
        '0.3.0'
    """
    try:
        import matplotlib.cm
        import matplotlib.pyplot

        if not hasattr(matplotlib.cm, "get_cmap"):
            matplotlib.cm.get_cmap = matplotlib.pyplot.get_cmap
        import overcomplete
    except ImportError as error:
        raise FeatvizError(
            f"dictionary learning needs the overcomplete package ({error}); pip install 'featviz[dictionary]'"
        ) from None
    return overcomplete


def _samples_key(model: Model, folder: ImageFolder, layer: str, positions: int | None, seed: int) -> str:
    files = hashlib.sha256()
    for stamp in folder.stamps:
        files.update(f"{stamp.relative_path}\0{stamp.size}\0{stamp.mtime_ns}\n".encode())
    return json.dumps({
        "format": SAMPLES_FORMAT, "model": model.name, "weights": weights_fingerprint(model), "layer": layer,
        "size": folder.size, "channels": folder.channels, "root": str(folder.root), "files": files.hexdigest(),
        "positions": positions, "seed": seed,
    }, sort_keys=True)


def _pass(model: Model, folder: ImageFolder, layer: str, positions: int | None, seed: int, batch_size: int,
          progress: bool) -> tuple[Tensor, str]:
    from tqdm.auto import tqdm

    binding = bind_layers(model, [layer], (folder.size, folder.size))
    chunks, read = [], 0
    generator = torch.Generator().manual_seed(seed)
    bar = tqdm(total=len(folder), unit="image", desc=f"activations of {layer}", disable=not progress)
    try:
        with torch.no_grad(), ActivationCapture(model, [layer], layouts=binding.layouts) as capture:
            for paths, images in folder.batches(batch_size, workers=min(4, os.cpu_count() or 1)):
                activation = capture.run(images.to(device=model.device, dtype=model.dtype))[layer]
                vectors = activation.flatten(2).transpose(1, 2).float().cpu()  # (B, positions, C)
                if positions is not None and vectors.shape[1] > positions:
                    keep = torch.stack([torch.randperm(vectors.shape[1], generator=generator)[:positions]
                                        for _ in range(vectors.shape[0])])
                    vectors = vectors.gather(1, keep[..., None].expand(-1, -1, vectors.shape[2]))
                chunks.append(vectors.reshape(-1, vectors.shape[2]))
                read += len(paths)
                bar.update(len(paths))
    finally:
        bar.close()
    if not read:
        raise FeatvizError(f"none of the {len(folder)} images under '{folder.root}' could be read; pass valid images")
    return torch.cat(chunks), binding.layouts[layer].describe()


def collect_samples(
    model: Model | nn.Module | str,
    layer: str,
    images: Any,
    *,
    size: int | None = None,
    positions: int | None = None,
    seed: int = 0,
    batch_size: int = 32,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> tuple[Tensor, str]:
    """The activation vectors of ``layer`` at every position (every patch token on a ViT) of every image of
    ``images`` (a folder, a list of files, ``"shipped"`` or an `ImageFolder`), as a ``(vectors, channels)`` float32
    tensor, and the layer's layout. ``positions`` keeps that many random positions per image (seeded by
    ``seed``); ``cache_dir`` keeps the result under a hash of the model, its weights, the layer, the files and
    these settings. Images go through the model ``batch_size`` at a time; ``progress`` shows a progress bar. Under
    torchrun each process reads images ``rank, rank + world, ...`` and all get every vector.

    Example:
        >>> vectors, layout = collect_samples(model, "blocks.4.0.conv_pwl", "shipped", size=64)
        >>> vectors.shape, layout   # 15 photos x 4 x 4 positions, 112 channels
        (torch.Size([240, 112]), 'nchw')
    """
    model = load_model(model)
    if not isinstance(layer, str) or layer in (IMAGE, OUTPUT):
        raise FeatvizError(f"layer must be the name of one of the network's layers, not {layer!r}")
    model.get_layer(layer)
    if positions is not None:
        positions = check_int(positions, "positions")
    batch_size = check_int(batch_size, "batch_size")
    folder = image_folder(model, images, size)
    cache_path = None
    if cache_dir is not None:
        key = _samples_key(model, folder, layer, positions, seed)
        cache_path = ensure_writable_dir(cache_dir) / f"samples-{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"
        if cache_path.exists():
            try:
                saved = torch.load(cache_path, map_location="cpu", weights_only=True)
                if saved.get("key") == key:
                    return saved["vectors"], saved["layout"]
            except Exception:  # noqa: BLE001 - a damaged cache is recomputed
                pass
    processes = Processes(model.device)
    try:
        if processes.world == 1:
            vectors, layout = _pass(model, folder, layer, positions, seed, batch_size, progress)
        else:
            mine = folder.paths[processes.rank::processes.world]
            share = None
            if mine:
                shard = ImageFolder(mine, size=folder.size, channels=folder.channels)
                share = _pass(model, shard, layer, positions, seed + processes.rank, batch_size,
                              progress and processes.rank == 0)
            gathered: list[Any] = [None] * processes.world
            processes.distributed.all_gather_object(gathered, share)
            found = [item for item in gathered if item is not None]
            vectors, layout = torch.cat([item[0] for item in found]), found[0][1]
    finally:
        processes.close()
    if cache_path is not None and int(os.environ.get("RANK", "0") or 0) == 0:
        with atomic_path(cache_path) as temporary:
            torch.save({"key": key, "vectors": vectors, "layout": layout}, temporary)
    return vectors, layout


def _normalization(samples: Tensor, center: bool) -> tuple[Tensor, Tensor]:
    mean = samples.mean(0) if center else torch.zeros(samples.shape[1])
    scale = ((samples - mean).square().mean()).sqrt().clamp(min=1e-8)
    return mean, scale.reshape(1)


def _build(overcomplete: Any, method: str, dim: int, concepts: int, top_k: int, batch_size: int,
           init: Tensor, device: torch.device | str) -> nn.Module:
    sae = overcomplete.sae
    parameters = {"dictionary_params": {"initializer": init.clone()}, "device": device}
    if method == "topk":
        model = sae.TopKSAE(dim, concepts, top_k=top_k, **parameters)
    elif method == "batchtopk":
        model = sae.BatchTopKSAE(dim, concepts, top_k=top_k * batch_size, **parameters)
    elif method == "jumprelu":
        model = sae.JumpSAE(dim, concepts, **parameters)
    else:
        model = sae.SAE(dim, concepts, **parameters)
    linear = model.encoder.final_block[0]
    with torch.no_grad():
        linear.weight.copy_(init)
        linear.bias.zero_()
    return model


def _loss(overcomplete: Any, method: str, sparsity: float) -> Any:
    losses = overcomplete.sae.losses
    if method in ("topk", "batchtopk"):
        return losses.top_k_auxiliary_loss
    return lambda x, x_hat, pre, codes, dictionary: losses.mse_l1(x, x_hat, pre, codes, dictionary, penalty=sparsity)


def _batch(samples: Tensor, seed: int, step: int, size: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return samples[torch.randint(0, samples.shape[0], (min(size, samples.shape[0]),), generator=generator)]


def _sample_directions(samples: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` unit directions of distinct random samples (repeated when there are fewer samples than that)."""
    order = torch.randperm(samples.shape[0], generator=generator)
    chosen = samples[order[torch.arange(count) % samples.shape[0]]]
    return chosen / chosen.norm(dim=1, keepdim=True).clamp(min=1e-8)


def _resample(model: nn.Module, optimizer: torch.optim.Optimizer, dead: Tensor, batch: Tensor) -> None:
    """Move the ``dead`` features onto the batch's worst-reconstructed samples (and reset their Adam moments)."""
    with torch.no_grad():
        _, _, rebuilt = model(batch)
        errors = (batch - rebuilt).square().sum(1)
        chosen = batch[errors.topk(min(int(dead.sum()), batch.shape[0])).indices]
        rows = dead.nonzero().flatten()[: chosen.shape[0]]
        directions = chosen / chosen.norm(dim=1, keepdim=True).clamp(min=1e-8)
        linear = model.encoder.final_block[0]
        weights = model.dictionary._weights
        alive = linear.weight[~dead].norm(dim=1).mean() if bool((~dead).any()) else torch.tensor(1.0)
        for parameter, value in ((weights, directions), (linear.weight, alive * directions), (linear.bias, 0.0)):
            parameter[rows] = value
            state = optimizer.state.get(parameter, {})
            for moment in ("exp_avg", "exp_avg_sq"):
                if moment in state:
                    state[moment][rows] = 0.0


def _train_sae(
    samples: Tensor, concepts: int, method: str, top_k: int, steps: int, batch_size: int, learning_rate: float,
    sparsity: float, seed: int, checkpoint: Path | None, progress: bool, description: str,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    overcomplete = import_overcomplete()
    dim = samples.shape[1]
    key = hashlib.sha256(json.dumps([
        hashlib.sha256(samples.numpy().tobytes()).hexdigest(), concepts, method, top_k, steps, batch_size,
        learning_rate, sparsity, seed,
    ]).encode()).hexdigest()
    torch.manual_seed(seed)
    init = _sample_directions(samples, concepts, torch.Generator().manual_seed(seed))
    with warnings.catch_warnings():  # overcomplete copies the initial dictionary with torch.tensor(tensor)
        warnings.simplefilter("ignore", UserWarning)
        model = _build(overcomplete, method, dim, concepts, top_k, batch_size, init, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_of = _loss(overcomplete, method, sparsity)
    fired = torch.zeros(concepts, dtype=torch.int64, device=device)  # firings since the last resampling
    start = 0
    if checkpoint is not None and checkpoint.exists():
        try:
            saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable checkpoint is started over
            saved = {}
        if saved.get("format") == CHECKPOINT_FORMAT and saved.get("key") == key:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            fired = saved["fired"].to(device)
            if saved.get("running_threshold") is not None:
                model.running_threshold = saved["running_threshold"].to(device)
            start = int(saved["step"])

    def save(step: int) -> None:
        if checkpoint is None:
            return
        with atomic_path(checkpoint) as temporary:
            torch.save({
                "format": CHECKPOINT_FORMAT, "key": key, "step": step, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "fired": fired,
                "running_threshold": getattr(model, "running_threshold", None),
            }, temporary)

    bar = tqdm(total=steps, initial=start, unit="step", desc=description, disable=not progress)
    last_saved = time.monotonic()
    model.train()
    try:
        for step in range(start, steps):
            batch = _batch(samples, seed, step, batch_size).to(device, non_blocking=True)
            for group in optimizer.param_groups:  # constant, then linear decay over the last fifth
                group["lr"] = learning_rate * min(1.0, (steps - step) / max(1.0, 0.2 * steps))
            optimizer.zero_grad()
            pre, codes, rebuilt = model(batch)
            loss = loss_of(batch, rebuilt, pre, codes, model.get_dictionary())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            fired += (codes.detach() > 0).sum(0)
            done = step + 1
            if done % RESAMPLE_EVERY == 0 and done <= 0.75 * steps:
                rare = fired.double() < RARE * fired.double().mean()
                if bool(rare.any()):
                    _resample(model, optimizer, rare, _batch(samples, seed + 7, step, 4 * batch_size).to(device))
                fired = torch.zeros(concepts, dtype=torch.int64, device=device)
            bar.update(1)
            if progress:
                bar.set_postfix(loss=f"{loss.item():.4g}", refresh=False)
            if time.monotonic() - last_saved > CHECKPOINT_SECONDS or done == steps:
                save(done)
                last_saved = time.monotonic()
    finally:
        bar.close()
    model.eval()
    with torch.no_grad():
        linear = model.encoder.final_block[0]
        result: dict[str, Any] = {
            "decoder": model.get_dictionary().detach().clone(), "encoder": linear.weight.detach().clone(),
            "encoder_bias": linear.bias.detach().clone(), "threshold": None,
            "top_k": top_k if method == "topk" else None,
        }
        if method == "jumprelu":
            result["threshold"] = torch.exp(model.thresholds.detach()).clone()
        elif method == "batchtopk" and model.running_threshold is not None:
            result["threshold"] = model.running_threshold.detach().reshape(1).expand(concepts).clone()
    return result


def _train_nmf(samples: Tensor, concepts: int, steps: int, seed: int) -> dict[str, Any]:
    overcomplete = import_overcomplete()
    if bool((samples < 0).any()):
        raise FeatvizError(
            "nmf needs a non-negative layer, but this layer has negative activations; pick a layer after a ReLU "
            "(e.g. an activation or pooling layer) or use --method topk"
        )
    torch.manual_seed(seed)
    nmf = overcomplete.optimization.NMF(concepts, solver="hals")
    codes, decoder = nmf.fit(samples.double(), max_iter=steps)
    decoder, codes = decoder.float(), codes.float()
    norms = decoder.norm(dim=1).clamp(min=1e-8)
    decoder, codes = decoder / norms[:, None], codes * norms[None]
    # A linear encoder, fitted by ridge regression from the activations to the NMF codes: NMF has none, and a
    # render needs a differentiable pre-activation.
    gram = samples.T @ samples + 1e-3 * samples.square().sum() / samples.shape[1] * torch.eye(samples.shape[1])
    encoder = torch.linalg.solve(gram, samples.T @ codes).T
    return {"decoder": decoder, "encoder": encoder, "encoder_bias": torch.zeros(concepts), "threshold": None,
            "top_k": None}


def dictionary_metrics(dictionary: Dictionary, samples: Tensor, limit: int = METRIC_SAMPLES) -> dict[str, float]:
    """How well ``dictionary`` explains activation vectors ``samples`` ``(N, dim)`` (at most ``limit``, evenly
    spaced): ``r2``, the share of their variance (around each channel's mean) that the reconstruction from the
    codes explains; ``l0``, the mean number of features active per vector; ``dead``, the share of features
    active on none of them.

    Example:
        >>> metrics = dictionary_metrics(Dictionary(torch.eye(3), layer="conv"), torch.rand(10, 3))
        >>> metrics["r2"], metrics["l0"], metrics["dead"]
        (1.0, 3.0, 0.0)
    """
    if samples.shape[0] > limit:
        samples = samples[torch.linspace(0, samples.shape[0] - 1, limit).long()]
    with torch.no_grad():
        total = (samples - samples.mean(0)).square().sum()
        residual, active, nonzero = 0.0, 0.0, torch.zeros(dictionary.concepts, dtype=torch.bool)
        for chunk in samples.split(8192):
            codes = dictionary.codes(chunk)
            residual += float((chunk - dictionary.decode(codes)).square().sum())
            active += float((codes > 0).sum())
            nonzero |= (codes > 0).any(0)
    return {"r2": round(1.0 - residual / max(float(total), 1e-12), 6), "l0": round(active / samples.shape[0], 4),
            "dead": round(1.0 - float(nonzero.float().mean()), 6)}


def stability(first: Dictionary | Tensor, second: Dictionary | Tensor) -> float:
    """The mean cosine between the rows of two decoders ``first`` and ``second`` (dictionaries or ``(concepts,
    dim)`` tensors), matched one to one by the Hungarian algorithm
    (`overcomplete.metrics.cosine_hungarian_loss`): 1 when they hold the same features in any order.

    Example:
        >>> rows = torch.randn(5, 8)
        >>> round(stability(rows, rows[torch.randperm(5)]), 6)
        1.0
    """
    metrics = import_overcomplete().metrics
    first = first.decoder if isinstance(first, Dictionary) else torch.as_tensor(first)
    second = second.decoder if isinstance(second, Dictionary) else torch.as_tensor(second)
    if first.shape != second.shape:
        raise FeatvizError(
            f"stability compares decoders of one shape, got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    return 1.0 - metrics.cosine_hungarian_loss(first.float(), second.float()) / first.shape[0]


def _check_method(method: str, concepts: int, top_k: int | None) -> int:
    if method not in METHODS:
        raise FeatvizError(f"unknown dictionary method {method!r}; valid: {', '.join(METHODS)}")
    if top_k is None:
        return max(1, concepts // 16)
    top_k = check_int(top_k, "top_k")
    if top_k > concepts:
        raise FeatvizError(f"top_k {top_k} is above the number of concepts {concepts}; give top_k <= {concepts}")
    return top_k


def fit_dictionary(
    samples: Tensor,
    concepts: int,
    method: str = "topk",
    *,
    layer: str = "samples",
    top_k: int | None = None,
    steps: int = 2000,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    sparsity: float = 3e-3,
    seed: int = 0,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
    device: torch.device | str = "cpu",
    **fitted: Any,
) -> Dictionary:
    """A dictionary of ``concepts`` features of activation vectors ``samples`` ``(N, dim)``, learned by ``method``
    (``topk`` keeps each vector's ``top_k`` largest codes, default ``concepts // 16``; ``batchtopk`` the batch's
    ``top_k * batch_size`` largest; ``jumprelu`` and ``relu`` penalize the codes' L1 norm by ``sparsity``;
    ``nmf`` runs ``steps`` HALS iterations) in ``steps`` Adam steps of ``batch_size`` vectors. With
    ``checkpoint``, progress is saved there every few seconds and a new call with the same arguments resumes from
    it (delete it when done). Adam's ``learning_rate`` decays linearly over the last fifth of the steps; ``seed``
    draws the initial features and every batch. Training runs on ``device`` (the vectors stay on the CPU; each
    batch is moved). ``layer`` and ``fitted`` (``model_name``, ``fingerprint``, ``layout``) are recorded in the
    result.

    Example:
        >>> rows = torch.nn.functional.normalize(torch.randn(8, 6), dim=1)
        >>> codes = torch.rand(4096, 8) * (torch.rand(4096, 8) < 0.2)
        >>> dictionary = fit_dictionary(codes @ rows, 8, "topk", top_k=2, steps=50)
        >>> dictionary.concepts, dictionary.method
        (8, 'topk')
    """
    concepts = check_int(concepts, "concepts")
    top_k = _check_method(method, concepts, top_k)
    steps = check_int(steps, "steps")
    batch_size = check_int(batch_size, "batch_size")
    samples = torch.as_tensor(samples).detach().float().cpu()
    if samples.dim() != 2 or samples.shape[0] < 2:
        raise FeatvizError(f"samples must be an (N, dim) tensor of at least 2 vectors, got {tuple(samples.shape)}")
    if not bool(torch.isfinite(samples).all()):
        raise FeatvizError("the activations hold NaN or infinity; check the model and layer")
    mean, scale = _normalization(samples, center=False)
    normalized = (samples - mean) / scale
    if method == "nmf":
        found = _train_nmf(normalized, concepts, steps, seed)
    else:
        found = _train_sae(
            normalized, concepts, method, top_k, steps, batch_size, learning_rate, sparsity, seed,
            Path(checkpoint) if checkpoint is not None else None, progress, f"{method} dictionary (seed {seed})",
            torch.device(device),
        )
    return Dictionary(
        found["decoder"], layer=layer, encoder=found["encoder"], encoder_bias=found["encoder_bias"], mean=mean,
        scale=scale, threshold=found["threshold"], top_k=found["top_k"], method=method,
        normalization="scaled to unit mean square per channel (not centred)", **fitted,
    )


def learn_dictionary(
    model: Model | nn.Module | str,
    layer: str,
    images: Any,
    concepts: int,
    method: str = "topk",
    *,
    out: str | os.PathLike | None = None,
    top_k: int | None = None,
    steps: int = 2000,
    batch_size: int = 1024,
    learning_rate: float = 1e-3,
    sparsity: float = 3e-3,
    seed: int = 0,
    stability_seed: int | None = 1,
    size: int | None = None,
    positions: int | None = None,
    image_batch: int = 32,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Dictionary:
    """Learn a dictionary of ``concepts`` features of ``model``'s ``layer`` from ``images`` (`collect_samples` with
    ``size``, ``positions``, ``image_batch`` images per forward pass and ``cache_dir``; then `fit_dictionary` with
    ``method``, ``top_k``, ``steps``, ``batch_size``, ``learning_rate``, ``sparsity`` and ``seed``), measure it (`dictionary_metrics`, plus `stability` against the same training with
    ``stability_seed``; None skips it) and, with ``out``, save it there. Checkpoints are written beside ``out``
    (``OUT.seed0.checkpoint``) so that a killed run resumes where it stopped; they are deleted once it is saved.
    Under torchrun the images are shared among the processes and rank 0 trains (the others return its result).

    Example:
        >>> dictionary = learn_dictionary(model, "blocks.4.0.conv_pwl", "shipped", 32, size=64, steps=40,
        ...                               out="lite0-dict.pt", progress=False)
        >>> dictionary.layer, sorted(dictionary.metrics)
        ('blocks.4.0.conv_pwl', ['dead', 'l0', 'r2', 'stability'])
    """
    model = load_model(model)
    concepts = check_int(concepts, "concepts")
    _check_method(method, concepts, top_k)
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        if out_path.is_dir():
            raise FeatvizError(f"out '{out_path}' is a folder; give a file name such as '{out_path / 'dict.pt'}'")
        ensure_writable_dir(out_path.parent)
    samples, layout = collect_samples(
        model, layer, images, size=size, positions=positions, seed=seed, batch_size=image_batch,
        cache_dir=cache_dir, progress=progress,
    )
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return _wait_for_rank_zero(model, out_path)
    fitted = {"layer": layer, "model_name": model.name, "fingerprint": weights_fingerprint(model), "layout": layout}
    settings = {"top_k": top_k, "steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
                "sparsity": sparsity, "progress": progress, "device": model.device}

    def checkpoint(run_seed: int) -> Path | None:
        return None if out_path is None else out_path.with_name(f"{out_path.name}.seed{run_seed}.checkpoint")

    dictionary = fit_dictionary(samples, concepts, method, seed=seed, checkpoint=checkpoint(seed), **settings, **fitted)
    metrics = dictionary_metrics(dictionary, samples)
    if stability_seed is not None:
        second = fit_dictionary(samples, concepts, method, seed=stability_seed, checkpoint=checkpoint(stability_seed),
                                **settings, **fitted)
        metrics["stability"] = round(stability(dictionary, second), 6)
    dictionary.metrics = metrics
    if out_path is not None:
        dictionary.save(out_path)
        for run_seed in (seed, stability_seed):
            if run_seed is not None and checkpoint(run_seed) is not None:
                checkpoint(run_seed).unlink(missing_ok=True)
    _wait_for_rank_zero(model, None)
    return dictionary


def _wait_for_rank_zero(model: Model, out: Path | None) -> Dictionary | None:
    """Under torchrun: the other ranks wait for rank 0's dictionary (and read it from ``out``)."""
    if int(os.environ.get("WORLD_SIZE", "1") or 1) == 1:
        return None
    processes = Processes(model.device)
    try:
        processes.barrier()
    finally:
        processes.close()
    if out is not None and int(os.environ.get("RANK", "0") or 0) != 0:
        return load_dictionary(out, model)
    return None


def from_overcomplete(
    module: nn.Module, layer: str, model: Model | nn.Module | str | None = None, *, mean: Any = None,
    scale: float = 1.0,
) -> Dictionary:
    """A featviz `Dictionary` from an `overcomplete` module trained outside featviz on ``layer``'s activation
    vectors (normalized as ``(x - mean) / scale``, if they were): a TopK, BatchTopK, JumpReLU or plain SAE with
    a linear encoder (optionally with batch norm, folded in), or an NMF / Semi-NMF (no encoder: features are
    read by projection). With ``model``, the dictionary is recorded as fitted on it.

    Example:
        >>> sae = import_overcomplete().sae.TopKSAE(112, 64, top_k=4)
        >>> from_overcomplete(sae, "blocks.4.0.conv_pwl", model).top_k
        4
    """
    overcomplete = import_overcomplete()
    fitted: dict[str, Any] = {}
    if model is not None:
        model = load_model(model)
        fitted = {"model_name": model.name, "fingerprint": weights_fingerprint(model)}
    if not isinstance(module, overcomplete.sae.SAE):
        if hasattr(module, "get_dictionary"):
            return Dictionary(module.get_dictionary().detach().float(), layer=layer, mean=mean, scale=scale,
                              method=type(module).__name__, **fitted)
        raise FeatvizError(f"from_overcomplete needs an overcomplete SAE or NMF module, not {type(module).__name__}")
    was_training = module.training
    module.eval()
    try:
        decoder = module.get_dictionary().detach().float().clone()
    finally:
        module.train(was_training)
    encoder = module.encoder
    blocks = getattr(encoder, "final_block", None)
    if blocks is None or getattr(encoder, "nb_blocks", 1) != 0 or not isinstance(blocks[0], nn.Linear):
        raise FeatvizError(
            f"the SAE's encoder ({type(encoder).__name__}) is not one linear layer; featviz renders features through "
            "a linear encoder (overcomplete's default 'linear' encoder, or 'mlp_bn_0')"
        )
    weight, bias = blocks[0].weight.detach().float(), blocks[0].bias.detach().float()
    norm = blocks[1] if len(blocks) > 1 else nn.Identity()
    if isinstance(norm, nn.BatchNorm1d):
        factor = norm.weight.detach() / (norm.running_var + norm.eps).sqrt()
        weight, bias = weight * factor[:, None], (bias - norm.running_mean) * factor + norm.bias.detach()
    elif not isinstance(norm, nn.Identity):
        raise FeatvizError(f"the SAE's encoder normalizes with {type(norm).__name__}, which is not linear; use a "
                           "linear or batch-norm encoder")
    threshold, top_k = None, None
    if isinstance(module, overcomplete.sae.JumpSAE):
        threshold = torch.exp(module.thresholds.detach())
    elif isinstance(module, overcomplete.sae.BatchTopKSAE) and module.running_threshold is not None:
        threshold = module.running_threshold.detach().reshape(1).expand(decoder.shape[0])
    elif isinstance(module, overcomplete.sae.TopKSAE):
        top_k = int(module.top_k)
    return Dictionary(decoder, layer=layer, encoder=weight, encoder_bias=bias, mean=mean, scale=scale,
                      threshold=threshold, top_k=top_k, method=type(module).__name__, **fitted)


__all__ = [
    "collect_samples", "dictionary_metrics", "fit_dictionary", "from_overcomplete", "import_overcomplete",
    "learn_dictionary", "stability",
]
