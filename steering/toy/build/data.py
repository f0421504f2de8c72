"""Turn scenes into model inputs: pixel tensors and chat-formatted token ids with answer labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import Gemma3Processor

import prompts
from steering.toy import scenes
from steering.toy.build.processor import END_TURN


def describe_prompt() -> str:
    return prompts.load("vlm_describe").render()


def ask_prompt(question: str) -> str:
    return prompts.load("vlm_ask").render(question=question)


def prompt_texts() -> list[str]:
    """Every rendered prompt the toy model is trained on, and the top-k answer's prefix."""
    from steering.toy.build import topk_data

    return ([describe_prompt()] + [ask_prompt(q) for q in scenes.QUESTIONS.values()]
            + [topk_data.topk_prompt(), topk_data.ANSWER_PREFIX])


def vocabulary_texts() -> list[str]:
    """All text the tokenizer must know: captions, answers, questions and rendered prompts."""
    return scenes.all_texts() + prompt_texts()


def chat_text(processor: Gemma3Processor, prompt: str, n_images: int = 1) -> str:
    """The chat-formatted user turn with ``n_images`` images, ending where the model's answer starts."""
    messages = [{"role": "user", "content": [{"type": "image"}] * n_images + [{"type": "text", "text": prompt}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


@dataclass
class Encoder:
    """Caches token ids per (prompt, answer) pair; the scene set has only a few hundred distinct texts."""

    processor: Gemma3Processor

    def __post_init__(self) -> None:
        self._cache: dict[tuple[str, str, int], tuple[list[int], int]] = {}
        tok = self.processor.tokenizer
        self.image_token_id = tok.image_token_id
        self.pad_id = tok.pad_token_id

    def encode(self, prompt: str, answer: str, n_images: int = 1) -> tuple[list[int], int]:
        """Token ids of prompt + answer + end of turn, and the index where the answer starts."""
        key = (prompt, answer, n_images)
        if key not in self._cache:
            tok = self.processor.tokenizer
            head = chat_text(self.processor, prompt, n_images).replace(tok.boi_token,
                                                                       self.processor.full_image_sequence)
            head_ids = tok(head, add_special_tokens=False)["input_ids"]
            full_ids = tok(head + answer + END_TURN, add_special_tokens=False)["input_ids"]
            assert full_ids[: len(head_ids)] == head_ids, "answer tokenisation leaks into the prompt"
            self._cache[key] = (full_ids, len(head_ids))
        return self._cache[key]

    def batch(self, pairs: list[tuple[str, str]], n_images: int = 1) -> dict[str, torch.Tensor]:
        """Right-padded training batch: input_ids, attention_mask, token_type_ids, labels [B, T]."""
        encoded = [self.encode(p, a, n_images) for p, a in pairs]
        T = max(len(ids) for ids, _ in encoded)
        B = len(encoded)
        input_ids = torch.full((B, T), self.pad_id, dtype=torch.long)
        labels = torch.full((B, T), -100, dtype=torch.long)
        mask = torch.zeros((B, T), dtype=torch.long)
        for b, (ids, start) in enumerate(encoded):
            t = torch.tensor(ids)
            input_ids[b, : len(ids)] = t
            labels[b, start : len(ids)] = t[start:]
            mask[b, : len(ids)] = 1
        token_type_ids = (input_ids == self.image_token_id).long()
        return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": token_type_ids, "labels": labels}


def example(scene: scenes.Scene, rng: np.random.Generator, ask_share: float) -> tuple[str, str]:
    """(prompt, answer) for one scene: usually the describe prompt, sometimes a targeted question."""
    if rng.random() < ask_share:
        family = str(rng.choice(list(scenes.QUESTIONS)))
        return ask_prompt(scenes.QUESTIONS[family]), scene.answer(family)
    return describe_prompt(), scene.caption()
