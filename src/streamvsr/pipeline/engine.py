"""The streaming engine: wraps any :class:`StreamingModel` and owns the frame bookkeeping.

* pads every frame to the model's size multiple and crops the output back to ``scale x`` input;
* counts frames, so that after :meth:`Engine.flush` exactly one output exists per input, for any
  length (1 frame included): extra frames a model makes while padding its tail are trimmed;
* converts dtype/device at the edges, so models see ``(T, 3, h, w)`` in [0, 1] on their device (host
  frames stay on the host for a model whose spec sets ``host_input``: it copies them on its own stream);
* passes ``torch.uint8`` frames straight through to models that declare ``spec.uint8_io`` (padding and
  cropping are exact copies, so the same on integers), and returns uint8 frames for them.
"""

from __future__ import annotations

import torch

from streamvsr.errors import InputError
from streamvsr.ops.padding import crop_output, pad_frames
from streamvsr.pipeline.protocol import StreamingModel


class Engine:
    """Frame-exact streaming wrapper around a model.

    ``push`` takes ``(T, 3, h, w)`` float frames in [0, 1] and returns the ``(T', 3, s*h, s*w)``
    frames now ready (``T'`` may be 0); ``flush`` returns the rest. Outputs are float32 on the
    model's device. For a model with ``spec.uint8_io`` a stream may instead be ``torch.uint8`` frames
    (0..255); its outputs are then uint8 too. One stream is all float or all uint8.
    """

    def __init__(self, model: StreamingModel, device: torch.device | str = "cpu"):
        self.model = model
        self.device = torch.device(device)
        self.reset()

    @property
    def scale(self) -> int:
        return self.model.spec.scale

    def reset(self) -> None:
        self.model.reset()
        self.frames_in = 0
        self.frames_out = 0
        self._size: tuple[int, int] | None = None
        self._uint8 = False

    def _check_size(self, frames: torch.Tensor) -> None:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected (T, 3, H, W) frames, got {tuple(frames.shape)}")
        uint8 = frames.dtype == torch.uint8
        if uint8 and not getattr(self.model.spec, "uint8_io", False):
            raise TypeError(f"model {self.model.spec.name!r} takes float frames in [0, 1], not uint8")
        size = (frames.shape[-2], frames.shape[-1])
        if self._size is None:
            self._size, self._uint8 = size, uint8
        elif uint8 != self._uint8:
            raise ValueError(f"frame dtype changed mid-stream at frame {self.frames_in}: got {frames.dtype}")
        elif size != self._size:
            raise InputError(
                f"frame size changed mid-stream at frame {self.frames_in}: {self._size[1]}x{self._size[0]}"
                f" -> {size[1]}x{size[0]}"
            )

    def _emit(self, out: torch.Tensor) -> torch.Tensor:
        if out.shape[0] == 0:
            return self._empty()
        h, w = self._size  # type: ignore[misc]
        out = crop_output(out, h, w, self.scale)
        room = self.frames_in - self.frames_out
        out = out[:room]
        self.frames_out += out.shape[0]
        if self._uint8:
            if out.dtype != torch.uint8:
                raise TypeError(f"model {self.model.spec.name!r} returned {out.dtype} frames for uint8 input")
            return out
        return out.float()

    def push(self, frames: torch.Tensor) -> torch.Tensor:
        self._check_size(frames)
        if frames.shape[0] == 0:
            return self._empty()
        if not (frames.device.type == "cpu" and getattr(self.model.spec, "host_input", False)):
            frames = frames.to(self.device, non_blocking=True)
        self.frames_in += frames.shape[0]
        out = self.model.push(pad_frames(frames, self.model.spec.multiple))
        return self._emit(out)

    def flush(self) -> torch.Tensor:
        if self.frames_in == 0:
            self.model.reset()
            return self._empty()
        out = self._emit(self.model.flush())
        if self.frames_out != self.frames_in:
            raise RuntimeError(
                f"model {self.model.spec.name!r} returned {self.frames_out} frames for {self.frames_in} inputs"
            )
        self.model.reset()
        return out

    def _empty(self) -> torch.Tensor:
        if self._size is None:
            return torch.empty(0, 3, 0, 0, device=self.device)
        h, w = self._size
        dtype = torch.uint8 if self._uint8 else torch.float32
        return torch.empty(0, 3, h * self.scale, w * self.scale, device=self.device, dtype=dtype)

    def run(self, frames: torch.Tensor, chunk: int = 8) -> torch.Tensor:
        """Convenience for tests and eval: stream ``frames`` in chunks and return all outputs."""
        outs = [self.push(frames[i : i + chunk]) for i in range(0, frames.shape[0], chunk)]
        outs.append(self.flush())
        return torch.cat(outs)
