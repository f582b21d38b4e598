"""Safe output paths: write to a hidden temporary sibling, rename into place on success.

A temporary file or folder named ``.NAME.partial-XXXXXXXX[.ext]`` lives in the destination's
folder (same filesystem, so the final rename is atomic). It is removed on abort, on an exception,
and, as a last resort, when the owning object is garbage collected or the interpreter exits.
"""

from __future__ import annotations

import os
import secrets
import shutil
import weakref
from pathlib import Path

from ..errors import OutputError

_OWNED_FILE_SUFFIXES = frozenset({".png"})


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when two paths name the same file (hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass


class AtomicTarget:
    """A destination file or folder written through a temporary sibling.

    Checks at creation: the parent folder exists and is a folder; ``dst`` does not exist unless
    ``overwrite``; an existing folder is only replaced when it holds nothing but PNG files.
    """

    def __init__(self, dst: Path, *, overwrite: bool, is_dir: bool) -> None:
        self.dst = dst
        self.overwrite = overwrite
        self.is_dir = is_dir
        parent = dst.parent
        if not parent.exists():
            raise OutputError(f"{dst}: output folder {parent} does not exist")
        if not parent.is_dir():
            raise OutputError(f"{dst}: {parent} is not a folder")
        self._check_existing()
        suffix = "" if is_dir else dst.suffix
        self.tmp = parent / f".{dst.name}.partial-{secrets.token_hex(4)}{suffix}"
        try:
            if is_dir:
                self.tmp.mkdir()
            else:
                self.tmp.touch(exist_ok=False)
        except OSError as e:
            raise OutputError(f"{dst}: cannot write in {parent} ({e.strerror})") from None
        self._finalizer = weakref.finalize(self, _remove, str(self.tmp))
        self.done = False

    def _check_existing(self) -> None:
        dst = self.dst
        if not (dst.exists() or dst.is_symlink()):
            return
        if self.is_dir and dst.is_dir() and not dst.is_symlink() and not any(dst.iterdir()):
            return  # an empty folder is no output to protect; the rename replaces it
        if not self.overwrite:
            raise OutputError(f"{dst}: already exists (use --overwrite to replace it)")
        if self.is_dir:
            if not dst.is_dir():
                raise OutputError(f"{dst}: exists and is not a folder")
            others = [p.name for p in dst.iterdir() if p.suffix.lower() not in _OWNED_FILE_SUFFIXES]
            if others:
                raise OutputError(f"{dst}: folder holds other files (e.g. {others[0]}); not replacing it")
        elif dst.is_dir():
            raise OutputError(f"{dst}: is a folder")

    def commit(self) -> None:
        """Move the temporary file/folder to ``dst`` (replacing an allowed existing one)."""
        if self.done:
            return
        self._check_existing()
        try:
            if self.is_dir and self.dst.exists() and any(self.dst.iterdir()):
                trash = self.dst.parent / f".{self.dst.name}.old-{secrets.token_hex(4)}"
                os.replace(self.dst, trash)
                os.replace(self.tmp, self.dst)
                _remove(str(trash))
            else:
                os.replace(self.tmp, self.dst)
        except OSError as e:
            self.discard()
            raise OutputError(f"{self.dst}: cannot move the finished output into place ({e.strerror})") from None
        self.done = True
        self._finalizer.detach()

    def discard(self) -> None:
        """Remove the temporary file/folder (idempotent)."""
        if not self.done:
            self.done = True
            self._finalizer()
