"""Top-k activating images per SAE latent, collected in one streaming, resumable pass."""

from __future__ import annotations

from steering.topk.cli import build_parser, main
from steering.topk.collect import (
    Absorbed,
    Batch,
    Collector,
    EncoderSpec,
    TopKConfig,
    _batches,
    build_toy_topk,
    collect_shard,
    collect_topk,
    run_collection,
    toy_encoder,
)
from steering.topk.constants import FORMAT, FORMAT_VERSION, MAP_DTYPES, TENSORS
from steering.topk.encode import ChunkedCodes, layer_output, vision_tower
from steering.topk.errors import TopKError
from steering.topk.result import TopImage, TopKResult, load_topk
from steering.topk.running import RunningTopK
from steering.topk.sources import (
    IMAGE_SUFFIXES,
    DatasetSource,
    FolderSource,
    UnreadableImage,
    folder_problem,
    open_source,
    read_image,
    unreadable_line,
    write_toy_scenes,
)

__all__ = [
    "FORMAT", "FORMAT_VERSION", "IMAGE_SUFFIXES", "MAP_DTYPES", "TENSORS", "Absorbed", "Batch", "ChunkedCodes",
    "Collector", "DatasetSource", "EncoderSpec", "FolderSource", "RunningTopK", "TopImage", "TopKConfig", "TopKError",
    "TopKResult", "UnreadableImage", "_batches", "build_parser", "build_toy_topk", "collect_shard", "collect_topk",
    "folder_problem", "layer_output", "load_topk", "main", "open_source", "read_image", "run_collection", "toy_encoder",
    "unreadable_line", "vision_tower", "write_toy_scenes",
]
