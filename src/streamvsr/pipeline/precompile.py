"""Compiled graphs kept on disk, so that a new process does not trace them again.

``torch.compile`` caches Inductor's generated code on disk, but every process still traces each compiled function
with Dynamo before it can look that code up. For the TCDecoder that trace alone took about 3.7 s of each process's
start on an H100's host (docs/performance.md, thirteenth session of 2026-11-27), paid again by every rank of a
multi-GPU batch. :class:`DiskCompiled` uses PyTorch's ahead-of-time capture instead (``torch.compile(...)
.aot_compile``, experimental in PyTorch): the first process traces and compiles once and saves the result (Dynamo's
guards, its bytecode and Inductor's code in one file); later processes load that file.

A saved graph is only reused where it is valid. A saved function keeps Dynamo's guards on its inputs, but not those
on globals or object identities, so its file name hashes what those would have checked: this package's source, the
PyTorch version, the device, the mode, the grad and inference modes, every input's shape, strides, dtype and device,
and the owner module's structure (each submodule's class and plain attributes, e.g. a fused-kernel switch). The
loaded function's guards are checked on every call; where they fail the function is traced again. One loaded file
serves every owner with the same key (the 30 DiT blocks share one).

Where the capture is not possible (an older PyTorch, a graph break, a graph that cannot be serialised, a backend
that cannot be saved, CUDA graphs), the function is compiled in memory as ``torch.compile`` always compiles it, and
a failed capture (or a saved graph that does not load) leaves a ``.failed`` file beside where its graph would be,
so that later processes do not try again; :attr:`DiskCompiled.events` says which happened.

The files live in ``$STREAMVSR_COMPILE_CACHE``, or else in Inductor's cache folder
(``TORCHINDUCTOR_CACHE_DIR``, by default under the system's temporary folder), sub-folder ``streamvsr_precompiled``.
``STREAMVSR_COMPILE_CACHE=off`` turns the disk cache off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

__all__ = ["DiskCompiled", "cache_folder", "module_fingerprint", "package_source_hash"]

_PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def package_source_hash() -> str:
    """SHA-256 (16 hex digits) of every ``.py`` file of the streamvsr package: a trace depends on the code it runs."""
    h = hashlib.sha256()
    for p in sorted(_PACKAGE.rglob("*.py")):
        h.update(str(p.relative_to(_PACKAGE)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_folder() -> Path | None:
    """Where saved graphs live (see the module's docstring); None where the disk cache is off."""
    env = os.environ.get("STREAMVSR_COMPILE_CACHE", "")
    if env.lower() in ("off", "0", "none"):
        return None
    if env:
        return Path(env)
    from torch._inductor.runtime.runtime_utils import cache_dir

    return Path(cache_dir()) / "streamvsr_precompiled"


def _leaf_key(x: Any) -> Any:
    """A hashable stand-in for one input leaf: a tensor's layout (not its values), else the value itself."""
    if isinstance(x, torch.Tensor):
        return (tuple(x.shape), x.stride(), x.dtype, x.device, x.requires_grad)
    return x


_PLAIN = (bool, int, float, str, type(None), torch.dtype, torch.device)


def _plain(v: Any) -> Any:
    """A stable stand-in for a module attribute: plain values as they are, containers element-wise, callables and
    other objects by their type (and qualified name)."""
    if isinstance(v, _PLAIN):
        return v
    if isinstance(v, (tuple, list)):
        return tuple(_plain(x) for x in v)
    if isinstance(v, torch.Tensor):
        return ("tensor", tuple(v.shape), v.dtype)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return repr(v)  # a config
    name = getattr(v, "__qualname__", None)
    return (type(v).__qualname__, name) if isinstance(name, str) else type(v).__qualname__


def module_fingerprint(module: torch.nn.Module) -> tuple:
    """Every submodule's name, class and public attributes (switches such as ``tail_frames`` and configs; not the
    private ones, which hold a stream's state or PyTorch's bookkeeping): what a trace of a method of ``module`` may
    branch on beyond its inputs."""
    out = []
    for name, m in module.named_modules():
        attrs = tuple((k, _plain(v)) for k, v in sorted(m.__dict__.items()) if not k.startswith("_"))
        out.append((name, type(m).__module__, type(m).__qualname__, attrs))
    return tuple(out)


def _device_name(leaves: list[Any]) -> str:
    """The CUDA device (name and compute capability) the inputs live on, or "cpu"."""
    for t in leaves:
        if isinstance(t, torch.Tensor) and t.device.type == "cuda":
            major, minor = torch.cuda.get_device_capability(t.device)
            return f"{torch.cuda.get_device_name(t.device)} sm{major}{minor} cuda {torch.version.cuda}"
    return "cpu"


def _reason(e: Exception) -> str:
    """An exception in one line: its type and its message's first line."""
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {first}"


_LOADED: dict[Path, Any] = {}  # file -> its function, loaded or traced in this process (shared by owners)
_FAILED: dict[Path, str] = {}  # file -> why its capture failed in this process (not tried again: a trace each time)
_JITS: dict[tuple, Any] = {}  # (function, compile options) -> the in-memory fallback (shared by owners)


class _Jit:
    """An in-memory ``torch.compile`` of the bound method: the fallback, with no guard of its own to check here
    (Dynamo checks them)."""

    def __init__(self, compiled: Callable) -> None:
        self.compiled = compiled

    def guard_check(self, *args: Any) -> bool:
        return True

    def __call__(self, owner: torch.nn.Module, *args: Any) -> Any:
        return self.compiled(owner, *args)


class DiskCompiled:
    """``func`` (an unbound method of ``owner``'s class) compiled with ``torch.compile(**compile_kw)``, its graphs
    saved to and loaded from :func:`cache_folder`, one per input layout. Called as the bound method would be.

    ``tag`` names the files (e.g. "tcdecoder"). ``events`` lists, per graph, "load" (from its file), "shared" (loaded
    or traced in this process for another owner), "save" (traced and saved), "unsaved: <reason>" (traced, not
    saved) or "jit: <reason>" (the in-memory fallback; a file that does not load gives "jit: saved but does not
    load: <reason>"); a file whose guards fail for this owner adds "stale: <reason>" before the "save" of its new
    trace.
    """

    def __init__(
        self,
        func: Callable,
        owner: torch.nn.Module,
        tag: str,
        compile_kw: dict,
        load_context: Callable[[], contextlib.AbstractContextManager] | None = None,
    ) -> None:
        self.func = func
        self.owner = owner
        self.tag = tag
        self.compile_kw = dict(compile_kw)
        self.load_context = load_context  # a context the load runs in (FlexAttention's needs a tracing context)
        self.entries: dict[tuple, Any] = {}
        self.events: list[str] = []

    def __reduce__(self) -> tuple:
        # Dynamo pickles the owner module's state with a saved function's guards, and this object is an attribute
        # of its owner (``block.pre``): it travels as its tag alone (its graphs cannot be pickled, nor are they
        # needed there)
        return (str, (f"DiskCompiled({self.tag})",))

    def __call__(self, *args: Any) -> Any:
        leaves, spec = tree_flatten(args)
        key = (spec, *(_leaf_key(x) for x in leaves))
        fn = self.entries.get(key)
        if fn is None or not fn.guard_check(self.owner, *args):
            fn = self.entries[key] = self._prepare(args, leaves, key)
        return fn(self.owner, *args)

    # ------------------------------------------------------------------ internals
    def _file(self, leaves: list[Any], key: tuple) -> Path | None:
        folder = cache_folder()
        if folder is None:
            return None
        parts = (
            package_source_hash(),
            torch.__version__,
            _device_name(leaves),
            self.tag,
            getattr(self.func, "__qualname__", repr(self.func)),
            sorted(self.compile_kw.items()),
            torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(),
            key,
            module_fingerprint(self.owner),
        )
        digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:24]
        return folder / f"{self.tag}-{digest}.bin"

    def _fallback(self, reason: str) -> _Jit:
        self.events.append(f"jit: {reason}")
        k = (self.func, tuple(sorted(self.compile_kw.items())))
        if k not in _JITS:
            _JITS[k] = _Jit(torch.compile(self.func, **self.compile_kw))
        return _JITS[k]

    def _capture(self, args: tuple) -> Any:
        """Trace and compile for ``args`` with PyTorch's ahead-of-time capture (raises where it cannot)."""
        cfg = torch._dynamo.config  # PyTorch 2.11 has the capture behind this switch (off); 2.13 has it on
        with cfg.patch(enable_aot_compile=True) if hasattr(cfg, "enable_aot_compile") else contextlib.nullcontext():
            compiled = torch.compile(self.func, fullgraph=True, **self.compile_kw)
        return compiled.aot_compile(((self.owner, *args), {}))

    @staticmethod
    def _mark_failed(path: Path, reason: str) -> str:
        """Record that ``path``'s graph cannot be captured or loaded, here and (a ``.failed`` file) for later
        processes, which then compile in memory at once: a capture costs a trace and a compile. Returns ``reason``."""
        _FAILED[path] = reason
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_suffix(".failed").write_text(reason + "\n")
        return reason

    def _prepare(self, args: tuple, leaves: list[Any], key: tuple) -> Any:
        if self.compile_kw.get("mode") == "reduce-overhead":
            return self._fallback("CUDA graphs are not saved")
        if self.compile_kw.get("backend", "inductor") != "inductor":
            return self._fallback(f"backend {self.compile_kw['backend']!r} is not saved")
        path = self._file(leaves, key)
        if path is None:
            return self._fallback("disk cache off")
        failed = path.with_suffix(".failed")
        if path not in _FAILED and failed.is_file():  # another process could not capture it: do not try again
            _FAILED[path] = failed.read_text(errors="replace").strip() or "failed before"
        if path in _FAILED:
            return self._fallback(_FAILED[path])
        fn = _LOADED.get(path)
        if fn is not None and fn.guard_check(self.owner, *args):
            self.events.append("shared")
            return fn
        if fn is None and path.is_file():
            try:
                with path.open("rb") as fh, self.load_context() if self.load_context else contextlib.nullcontext():
                    fn = torch.compiler.load_compiled_function(fh)
                fn.disable_guard_check()  # checked by __call__ before each call
                if fn.guard_check(self.owner, *args):
                    self.events.append("load")
                    _LOADED[path] = fn
                    return fn
                self.events.append("stale: its guards fail")
            except Exception as e:  # noqa: BLE001 - a graph this PyTorch saves but cannot load (the key names the
                # build, and writes are atomic): capturing it again would fail the same way in every process
                return self._fallback(self._mark_failed(path, f"saved but does not load: {_reason(e)}"))
        try:
            fn = self._capture(args)
        except Exception as e:  # noqa: BLE001 - no aot_compile in this PyTorch, a graph break, a backend without it
            return self._fallback(self._mark_failed(path, _reason(e)))
        fn.disable_guard_check()
        _LOADED[path] = fn
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fn.save_compiled_function(str(path))  # written to a temporary file, then renamed
            self.events.append("save")
        except Exception as e:  # noqa: BLE001 - read-only folder, an object it cannot pickle: keep it in memory
            self.events.append(f"unsaved: {type(e).__name__}")
        return fn
