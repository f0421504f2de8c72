#!/usr/bin/env bash
# Download, here (where the package registries answer), the wheels the GPU machine lacks into
# .gpu-wheels/ (git-ignored), for bench/gpu_session.sh to install there without a network.
# The device image already has torch, safetensors, pillow, numpy, jinja2, rich and pytest and runs
# Python 3.12 on x86_64; its transformers is older than ours (the fast decode path uses its cache
# classes), so the transformers this checkout runs with travels too.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-wheels
python -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    --dest .gpu-wheels diskcache tenacity openai pydantic textual textual-plotext pytest-asyncio
# transformers alone: the image's huggingface_hub, tokenizers and safetensors satisfy it.
python -m pip download -q --no-deps --only-binary=:all: --dest .gpu-wheels \
    "transformers==$(python -c 'import transformers; print(transformers.__version__)')"
du -sh .gpu-wheels
