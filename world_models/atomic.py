"""Atomic writes: a file or folder on disk is the old one or the complete new one, never half.

Each write goes to a hidden temporary beside its target, is flushed to disk, and is renamed
over the target; the folder's entry is flushed too, so a power cut cannot keep the rename and
lose the bytes. Torch-free: datasets, checkpoints, bundles, videos and reports all use it.
"""

from __future__ import annotations

import io
import os
import shutil
import uuid
from pathlib import Path
from typing import Any


def fsync(path: str | os.PathLike) -> None:
    """Flush a file's bytes (or a folder's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a folder
        pass
    finally:
        os.close(fd)


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename the complete file `tmp` over `path`, its bytes on disk first."""
    fsync(tmp)
    os.replace(tmp, path)
    fsync(Path(path).parent)


def tmp_beside(path: Path) -> Path:
    """The hidden temporary `.NAME.tmp` beside `path` (its folder created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename."""
    tmp = tmp_beside(Path(path))
    tmp.write_text(text)
    publish(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    tmp = tmp_beside(Path(path))
    tmp.write_bytes(data)
    publish(tmp, path)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a matplotlib figure atomically, in the format its suffix names (.png, .svg)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def aside(path: Path, tag: str = "*") -> Path:
    """Where `replace_dir` renames an old folder `path` aside: `.NAME.old-TAG`; the default
    tag gives the glob pattern of all such names."""
    return path.with_name(f".{path.name}.old-{tag}")


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename the complete folder `src` to `dst`, replacing an existing `dst`. Everything in
    `src` is flushed first; the old `dst` is renamed `aside` (`.NAME.old-*`) and removed last,
    so a crash leaves the new folder, or the old one (possibly under that hidden name)."""
    src, dst = Path(src), Path(dst)
    for folder, _, files in os.walk(src):
        for name in files:
            fsync(Path(folder) / name)
        fsync(folder)
    dst.parent.mkdir(parents=True, exist_ok=True)
    trash = None
    if dst.exists():
        trash = aside(dst, uuid.uuid4().hex)
        os.rename(dst, trash)
    os.rename(src, dst)
    fsync(dst.parent)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)
