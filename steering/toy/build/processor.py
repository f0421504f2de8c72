"""The toy VLM's word-level tokenizer, chat template and Gemma3Processor."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import Gemma3ImageProcessor, Gemma3Processor, PreTrainedTokenizerFast

# Special tokens, in the id order the model config refers to.
PAD, EOS, BOS, UNK = "<pad>", "<eos>", "<bos>", "<unk>"
START_TURN, END_TURN = "<start_of_turn>", "<end_of_turn>"
BOI, EOI, IMAGE = "<start_of_image>", "<end_of_image>", "<image_soft_token>"
SPECIALS = (PAD, EOS, BOS, UNK, START_TURN, END_TURN, BOI, EOI, IMAGE)

# One piece per word (with its leading space), per digit run, per punctuation mark, per whitespace character;
# decoding concatenates pieces, so text round-trips exactly.
_PIECE = r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]|\s"

# Gemma-style chat template: an image item becomes the begin-of-image marker, which the processor
# expands to the full image token sequence; the assistant role is called "model".
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def pieces(text: str) -> list[str]:
    """Split plain text (no special tokens) the way the tokenizer's pre-tokenizer does."""
    return re.findall(_PIECE, text)


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is every piece of ``texts`` plus the special tokens."""
    vocab: dict[str, int] = {tok: i for i, tok in enumerate(SPECIALS)}
    # The chat template's role names and newlines are pieces too.
    for piece in sorted({p for t in texts for p in pieces(t)} | {"user", "model", "\n", " "}):
        vocab.setdefault(piece, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(_PIECE), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"boi_token": BOI, "eoi_token": EOI, "image_token": IMAGE},
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )
    tok.add_special_tokens({"additional_special_tokens": [START_TURN, END_TURN]}, replace_extra_special_tokens=False)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def build_processor(texts: Iterable[str], image_size: int, image_seq_length: int) -> Gemma3Processor:
    """The toy Gemma3Processor: the word-level tokenizer plus a Gemma3ImageProcessor at ``image_size``."""
    tok = build_tokenizer(texts)
    image_processor = Gemma3ImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=False,
    )
    return Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
        image_seq_length=image_seq_length,
    )
