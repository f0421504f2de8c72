"""Train what the clip-smollm2 world lacks, reproducibly and seeded (item 2 of issue 32).

    python -m steering.worlds.clip_smollm2.build projector --out DIR [--model DIR] [--scenes 1600] [--steps 300]
        [--image-size 112] [--seed 0] [--threads N] [--bf16]

``projector``: renders toy scenes, computes the frozen CLIP features once (the layer the LLaVA config selects,
class token dropped), trains only ``multi_modal_projector`` on the toy world's describe prompt and captions, holds
out 10% of the scenes for greedy exact match through the model's own ``generate``, and writes
``DIR/projector.safetensors`` (the image size in its metadata: ``world fetch --projector`` assembles at it) and
``DIR/projector.json`` (everything measured). The folder it starts from is the assembled world
(``steer-agent world fetch clip-smollm2 --image-size 112``); its own projector is ignored: training always
starts from ``projector.init_projector``'s seeded init.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ANSWER_END = "<|im_end|>"
"""SmolLM2's end of turn: trained as the answer's last token, so greedy decoding stops there."""
SCENE_SEED_OFFSET = 0
"""Scenes come from ``sample_scenes(n, seed + SCENE_SEED_OFFSET)``."""


@dataclass
class ProjectorBuild:
    """What ``projector`` builds from, beyond the training config."""

    out: Path
    """Folder that receives projector.safetensors and projector.json."""
    model: Path | None = None
    """The assembled LLaVA folder (None: the cache's, as ``steer-agent world fetch clip-smollm2`` writes it)."""
    scenes: int = 1600
    """Toy scenes rendered, held-out share included."""
    held_out: float = 0.1
    """Share of the scenes kept out of training for the exact-match figure (the last ones drawn)."""
    image_size: int = 112
    """Input size in px; the folder must have been assembled at it."""
    threads: int | None = None
    """torch threads (None: torch's default)."""
    eval_every: int = 0
    """Held-out teacher-forced loss every this many steps (0: only at the end)."""
    eval_batch: int = 16
    """Rows per generate call for the exact-match figure."""
    prefill: bool = True
    """Prefill the describe prompt's answer prefix before generating, as the engine does by default."""
    device: str = "cpu"


@dataclass
class Timings:
    seconds: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, since: float) -> float:
        self.seconds[name] = round(time.perf_counter() - since, 2)
        return time.perf_counter()


def default_model_dir() -> Path:
    """Where ``steer-agent world fetch clip-smollm2`` assembles: ``$STEER_INTERP_CACHE`` (else
    ``~/.cache/steer-interp``)``/worlds/clip-smollm2/model``."""
    from steering.worlds.clip_smollm2.assemble import model_dir

    env = os.environ.get("STEER_INTERP_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "steer-interp"
    return model_dir(base.expanduser())


def normalise(text: str) -> str:
    """Case and spacing left out of the exact-match comparison."""
    return " ".join(text.lower().split())


def describe_chat(processor: Any) -> tuple[str, str]:
    """(the describe prompt as the engine renders it: one image then the toy world's describe prompt in the chat
    template, ending where the answer starts; the prompt's answer prefix)."""
    import prompts

    template = prompts.load("vlm_describe")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": template.render()}]}]
    chat = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return chat, template.meta.get("answer_prefix", "")


def encode_answers(processor: Any, chat: str, captions: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """(prompt ids with the image token expanded, answer ids per caption, end of turn included); checks that
    prompt + answer tokenise as the whole text does, so teacher forcing sees what generation would."""
    from PIL import Image

    blank = Image.new("RGB", (8, 8), "white")
    head = processor(text=[chat], images=[blank], return_tensors="pt")["input_ids"][0].tolist()
    tok = processor.tokenizer
    cache: dict[str, list[int]] = {}
    for caption in dict.fromkeys(captions):
        ids = tok(caption + ANSWER_END, add_special_tokens=False)["input_ids"]
        if not cache:  # one check: the tokenizer splits at the turn boundary the same way for every caption
            whole = processor(text=[chat + caption + ANSWER_END], images=[blank])["input_ids"][0]
            whole = whole.tolist() if hasattr(whole, "tolist") else list(whole)
            if whole != head + ids:
                raise ValueError("the answer's tokens change when joined to the prompt")
        cache[caption] = ids
    return head, [cache[c] for c in captions]


def pixels(processor: Any, images: Sequence[Any]) -> Any:
    """CLIP's preprocessing of uint8 [h, w, 3] arrays: [n, 3, size, size]."""
    from PIL import Image

    return processor.image_processor(images=[Image.fromarray(im) for im in images], return_tensors="pt")["pixel_values"]


def greedy_answers(model: Any, processor: Any, chat: str, images: Sequence[Any], prefix: str = "",
                   batch: int = 16, max_new_tokens: int = 32) -> list[str]:
    """Greedy answers through the model's own ``generate`` (pixels in, the trained projector on the way), the
    prefilled ``prefix`` put back in front."""
    import torch
    from PIL import Image

    out: list[str] = []
    for i in range(0, len(images), batch):
        chunk = [Image.fromarray(im) for im in images[i: i + batch]]
        enc = processor(text=[chat + prefix] * len(chunk), images=chunk, return_tensors="pt").to(model.device)
        with torch.no_grad():
            ids = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens)
        texts = processor.tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        out += [prefix + t for t in texts]
    return out


def exact_match(answers: Sequence[str], scenes: Sequence[Any]) -> dict[str, Any]:
    """Share of answers equal to their scene's caption (case and spacing aside), overall and per kind."""
    right = [normalise(a) == normalise(s.caption()) for a, s in zip(answers, scenes, strict=True)]
    kinds: dict[str, list[bool]] = {}
    for ok, s in zip(right, scenes):
        kinds.setdefault(s.kind, []).append(ok)
    wrong = [{"want": s.caption(), "got": a} for ok, a, s in zip(right, answers, scenes) if not ok]
    return {"exact_match": round(sum(right) / max(len(right), 1), 4), "n": len(right),
            "by_kind": {k: {"exact_match": round(sum(v) / len(v), 4), "n": len(v)} for k, v in sorted(kinds.items())},
            "wrong": wrong[:12]}


def load_world(folder: Path, image_size: int, device: str) -> tuple[Any, Any]:
    """The assembled model (float32, eval) and processor; refuses a folder assembled at another image size."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from steering.worlds.clip_smollm2.errors import WorldError

    if not (folder / "config.json").is_file():
        raise WorldError(f"no assembled world in {folder}: run steer-agent world fetch clip-smollm2 "
                         f"--image-size {image_size} (or pass --model DIR)")
    hf_logging.disable_progress_bar()
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype="float32").to(device).eval()
    size = model.config.vision_config.image_size
    if size != image_size:
        raise WorldError(f"{folder} is assembled at {size} px, not {image_size}: run steer-agent world fetch "
                         f"clip-smollm2 --image-size {image_size} --force (or pass --image-size {size})")
    return model, AutoProcessor.from_pretrained(folder)


def build_projector(opts: ProjectorBuild, cfg: Any, command: str = "") -> dict[str, Any]:
    """Render, cache features, train, measure and save; returns the report also written to projector.json
    (``command``: the command line it records)."""
    import torch
    import transformers

    from steering.toy import scenes as toy
    from steering.worlds.clip_smollm2 import projector as proj
    from steering.worlds.clip_smollm2.fetch import sha256
    from steering.worlds.clip_smollm2.manifest import read_manifest
    from steering.worlds.clip_smollm2.train import (
        Examples,
        projector_state,
        train_projector,
        vision_features,
    )

    if opts.threads:
        torch.set_num_threads(opts.threads)
    timings = Timings()
    t = t_all = time.perf_counter()
    folder = opts.model or default_model_dir()
    model, processor = load_world(folder, opts.image_size, opts.device)
    with torch.no_grad():  # the seeded init, whatever projector the folder was assembled with
        init = proj.init_projector(model.config.vision_config.hidden_size, model.config.text_config.hidden_size)
        model.model.multi_modal_projector.load_state_dict(init)
    t = timings.mark("load", t)

    drawn = toy.sample_scenes(opts.scenes, cfg.seed + SCENE_SEED_OFFSET)
    n_held = max(1, round(opts.scenes * opts.held_out))
    train_scenes, held_scenes = drawn[: len(drawn) - n_held], drawn[len(drawn) - n_held:]
    images = [toy.render(s, opts.image_size) for s in drawn]  # uint8 [size, size, 3], drawn at the model's size
    chat, prefix = describe_chat(processor)
    head, answers = encode_answers(processor, chat, [s.caption() for s in drawn])
    px = pixels(processor, images)  # [n, 3, size, size]
    t = timings.mark("render", t)
    log.info("CLIP features of %d scenes", len(drawn))
    features = vision_features(model, px)  # [n, image_tokens, vision_width]
    t = timings.mark("features", t)

    n_train = len(train_scenes)
    train = Examples(features[:n_train], answers[:n_train], head)
    held = Examples(features[n_train:], answers[n_train:], head)
    pad_id = processor.tokenizer.pad_token_id

    def report(step: int, loss: float, seconds: float) -> None:
        if step % 10 == 0 or step == cfg.steps - 1:
            log.info("step %d/%d: loss %.4f (%.1f s)", step + 1, cfg.steps, loss, seconds)

    history = train_projector(model, train, cfg, pad_id, held_out=held, eval_every=opts.eval_every or cfg.steps,
                              report=report)
    t = timings.mark("train", t)
    answers_out = greedy_answers(model, processor, chat, images[n_train:], prefix if opts.prefill else "",
                                 batch=opts.eval_batch)
    figures = exact_match(answers_out, held_scenes)
    t = timings.mark("exact_match", t)

    opts.out.mkdir(parents=True, exist_ok=True)
    path = proj.save_projector(projector_state(model), opts.out / proj.PROJECTOR_FILE, opts.image_size)
    timings.mark("total", t_all)
    seconds = history.seconds
    result = {
        "command": command,
        "train": cfg.to_dict(), "build": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "model": {"folder": str(folder), "inputs": (read_manifest(folder) or {}).get("inputs")},
        "scenes": {"seed": cfg.seed + SCENE_SEED_OFFSET, "train": n_train, "held_out": n_held,
                   "image_tokens": int(features.shape[1]), "prompt_tokens": len(head), "prefill": opts.prefill},
        "held_out": figures,
        "loss": {"first": history.loss[:1], "last10_mean": round(sum(history.loss[-10:]) / len(history.loss[-10:]), 4),
                 "per_step": [round(v, 4) for v in history.loss],
                 "held_out": [(s, round(v, 4)) for s, v in history.held_out]},
        "seconds": {**timings.seconds, "per_step_median": round(sorted(seconds)[len(seconds) // 2], 2)},
        "projector": {"file": path.name, "sha256": sha256(path), "bytes": path.stat().st_size},
        "environment": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine()},
    }
    (opts.out / "projector.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _parser() -> argparse.ArgumentParser:
    from steering.worlds.clip_smollm2.train import TrainConfig

    d, c = ProjectorBuild(out=Path()), TrainConfig()
    ap = argparse.ArgumentParser(prog="python -m steering.worlds.clip_smollm2.build", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("projector", help="train the LLaVA projector on toy scenes and their captions")
    p.add_argument("--out", type=Path, required=True, help="folder for projector.safetensors and projector.json")
    p.add_argument("--model", type=Path, help="the assembled folder (default: the cache's)")
    p.add_argument("--scenes", type=int, default=d.scenes, help=f"scenes, 10%% held out (default {d.scenes})")
    p.add_argument("--held-out", type=float, default=d.held_out, help="held-out share (default 0.1)")
    p.add_argument("--steps", type=int, default=c.steps, help=f"optimizer steps (default {c.steps})")
    p.add_argument("--batch", type=int, default=c.batch, help=f"examples per step (default {c.batch})")
    p.add_argument("--lr", type=float, default=c.lr, help=f"peak learning rate (default {c.lr})")
    p.add_argument("--warmup", type=int, default=c.warmup, help=f"warm-up steps (default {c.warmup})")
    p.add_argument("--image-size", type=int, default=d.image_size, help=f"px (default {d.image_size})")
    p.add_argument("--seed", type=int, default=c.seed, help="seeds the scenes and the batch order (default 0)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the frozen language model")
    p.add_argument("--eval-every", type=int, default=0, help="held-out loss every N steps (default: at the end)")
    p.add_argument("--no-prefill", action="store_true", help="generate the whole caption (default: the answer "
                   "prefix prefilled, as the engine does)")
    return ap


def main(argv: list[str] | None = None) -> int:
    from steering.worlds.clip_smollm2.errors import WorldError
    from steering.worlds.clip_smollm2.train import TrainConfig

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    cfg = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, warmup=min(args.warmup, args.steps),
                      bf16=args.bf16, seed=args.seed)
    opts = ProjectorBuild(out=args.out, model=args.model, scenes=args.scenes, held_out=args.held_out,
                          image_size=args.image_size, threads=args.threads, eval_every=args.eval_every,
                          prefill=not args.no_prefill)
    try:
        command = " ".join(["python -m steering.worlds.clip_smollm2.build", *(argv if argv is not None else sys.argv[1:])])
        result = build_projector(opts, cfg, command)
    except WorldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    held = result["held_out"]
    kinds = ", ".join(f"{k} {v['exact_match']:.2f}" for k, v in held["by_kind"].items())
    print(f"projector: {opts.out / 'projector.safetensors'} ({result['projector']['bytes'] / 1e6:.1f} MB)")
    print(f"held-out exact match {held['exact_match']:.3f} over {held['n']} scenes "
          f"({kinds}); "
          f"loss {result['loss']['first'][0]:.3f} -> {result['loss']['last10_mean']:.3f}; "
          f"{result['seconds']['total']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
