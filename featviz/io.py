"""Files written atomically (a temporary name in the same folder, then a rename), and featviz's cache folders."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from featviz.errors import FeatvizError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on failure delete it.

    Readers never see a half-written file, even when the process is killed mid-write.

    Example:
        >>> from PIL import Image
        >>> with atomic_path("out.png") as tmp:
        ...     Image.new("RGB", (8, 8)).save(tmp, format="PNG")
        >>> sorted(path.name for path in Path(".").iterdir())
        ['out.png']
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes files private; a written file gets the usual mode
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"))


def cache_folder(name: str) -> Path:
    """The folder where featviz caches ``name`` (text towers' embeddings and maps, dataset passes...):
    ``$FEATVIZ_CACHE/name``, by default ``~/.cache/featviz/name``. It is not created here.

    Example:
        >>> cache_folder("text").name
        'text'
    """
    return Path(os.environ.get("FEATVIZ_CACHE", Path.home() / ".cache" / "featviz")) / name


def ensure_writable_dir(folder: str | os.PathLike) -> Path:
    """Create ``folder`` if needed and check that files can be written there; raise FeatvizError if not."""
    folder = Path(folder) if str(folder) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FeatvizError(f"cannot create output folder '{folder}': {error.strerror}; choose a writable --out path") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FeatvizError(f"output folder '{folder}' is not writable; choose a writable --out path")
    return folder
