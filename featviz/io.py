"""Files written atomically (a temporary name in the same folder, then a rename), results of several files that
replace an earlier result whole, and featviz's cache folders."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

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


def save_file(state: Any, path: str | os.PathLike, what: str) -> Path:
    """Write ``state`` with ``torch.save`` to the file ``path`` atomically and return the path; a folder given as
    ``path`` is refused in one line that suggests ``what``'s file name inside it (e.g. ``what="probe"``).

    Example:
        >>> save_file({"rows": torch.eye(2)}, "probe.pt", "probe")
        PosixPath('probe.pt')
    """
    path = Path(path)
    if path.is_dir():
        raise FeatvizError(f"'{path}' is a folder; give a file name for the {what}, e.g. '{path / f'{what}.pt'}'")
    with atomic_path(path) as temporary:
        torch.save(state, temporary)
    return path


def cache_folder(name: str) -> Path:
    """The folder where featviz caches ``name`` (text towers' embeddings and maps, dataset passes...):
    ``$FEATVIZ_CACHE/name``, by default ``~/.cache/featviz/name``. It is not created here.

    Example:
        >>> cache_folder("text").name
        'text'
    """
    return Path(os.environ.get("FEATVIZ_CACHE", Path.home() / ".cache" / "featviz")) / name


def ensure_writable_dir(folder: str | os.PathLike, option: str = "--out") -> Path:
    """Create ``folder`` if needed and check that files can be written there; raise FeatvizError if not, whose
    advice names the command-line ``option`` that gave the folder."""
    folder = Path(folder) if str(folder) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FeatvizError(f"cannot create output folder '{folder}': {error.strerror}; choose a writable {option} path") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FeatvizError(f"output folder '{folder}' is not writable; choose a writable {option} path")
    return folder


def check_writable_dir(folder: str | os.PathLike, option: str = "--out") -> Path:
    """Raise FeatvizError unless ``folder`` exists and is writable or could be created (its nearest existing
    ancestor is a writable folder); create nothing. Commands check their output folder with this before the
    work and create it only when they write (`ensure_writable_dir`), so a failing run leaves no empty folder.
    The advice names the command-line ``option`` that gave the folder.

    Example:
        >>> check_writable_dir("new/sub").exists()
        False
    """
    folder = Path(folder) if str(folder) else Path(".")
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail on it
            raise FeatvizError(
                f"cannot create output folder '{folder}': '{existing}' is a broken link; choose a writable {option} path"
            )
        existing = existing.parent
    if not existing.is_dir():
        raise FeatvizError(
            f"cannot create output folder '{folder}': '{existing}' is not a folder; choose a writable {option} path"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == folder.absolute() else f"cannot be created in '{existing}'"
        raise FeatvizError(f"output folder '{folder}' {what}; choose a writable {option} path")
    return folder


@contextlib.contextmanager
def replacing_files(folder: str | os.PathLike, stale: Sequence[str] = ()) -> Iterator[Path]:
    """Yield an empty staging folder inside ``folder`` to write a result of several files into; on success its
    entries replace those of the same name in ``folder`` (a sub-folder is replaced whole) and ``folder``'s
    entries that match a glob pattern of ``stale`` but are not part of the new result are deleted. On failure
    ``folder`` is left as it was, and removed again when this created it. A rerun thus replaces a result whole
    or not at all, and leaves no file of a longer earlier result behind.

    Example:
        >>> with replacing_files("result", stale=["part-*.png"]) as stage:
        ...     _ = (stage / "part-0.png").write_bytes(b"new")
        >>> sorted(path.name for path in Path("result").iterdir())
        ['part-0.png']
    """
    folder = Path(folder)
    created = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    ensure_writable_dir(folder)
    stage = Path(tempfile.mkdtemp(prefix=".featviz-", suffix=".tmp", dir=folder))
    os.chmod(stage, 0o777 & ~_UMASK)
    try:
        yield stage
        new = {entry.name for entry in stage.iterdir()}
        trash = stage / ".replaced"
        trash.mkdir()
        for pattern in stale:
            for old in folder.glob(pattern):
                if old.name not in new and old.exists():
                    os.replace(old, trash / old.name)
        for name in sorted(new):
            target = folder / name
            if target.is_dir() and not target.is_symlink():
                os.replace(target, trash / name)
            os.replace(stage / name, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for parent in created:  # innermost first; stops at the first that is not empty
            try:
                parent.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(stage, ignore_errors=True)
