"""Captions and a tiny text encoder that fill FLUX's two text inputs.

FLUX.1 reads a T5 sequence (context, [T, context_in_dim]) and a CLIP pooled vector
(y, [vec_in_dim]). The tiny model has one encoder for both: word embeddings plus learned
positions, one pre-norm transformer layer, the sequence as context and a projected mean
over the caption's words as the pooled vector. Its tokenizer is a word-level `tokenizers`
model whose vocabulary is built from the procedural captions, so it knows every word a
scene description can contain and maps anything else to <unk>.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..intrinsics.render import PALETTE, SceneDescription

PAD, UNK = "<pad>", "<unk>"
MAX_TOKENS = 40
_HALF_FOV_TAN = math.tan(math.radians(50.0) / 2)   # the renderer's default vertical field of view


def _where(obj) -> str:
    """left / middle / right from the object's centre projected into the image."""
    x, _, z = obj.center
    across = x / (-z * _HALF_FOV_TAN)
    return "left" if across < -0.33 else ("right" if across > 0.33 else "middle")


def layout_caption(scene: SceneDescription) -> str:
    """Objects left to right with their place, the floor, the wall and the key light, e.g.
    'red sphere left, blue cube middle and green box right on grey and white checkered
    floor, teal wall, light from upper left'."""
    things = sorted(scene.objects[2:], key=lambda o: o.center[0] / -o.center[2])
    named = [f"{o.color_name} {'cube' if o._is_cube() else o.kind} {_where(o)}" for o in things]
    listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
    floor, wall = scene.objects[0], scene.objects[1]
    return (f"{listed} on {floor.checker_name} and {floor.color_name} checkered floor, {wall.color_name} wall, "
            f"light from {scene.light_direction_words()}")


def caption_words() -> list[str]:
    """Every word `layout_caption` can produce (the vocabulary is complete by construction)."""
    words = list(PALETTE) + ["sphere", "cube", "box", "left", "middle", "right", "on", "and", "checkered", "floor",
                             "wall", "light", "from", "upper", "front", "above", ","]
    return list(dict.fromkeys(words))


def build_tokenizer(max_tokens: int = MAX_TOKENS):
    """A word-level `tokenizers.Tokenizer`: lowercase, split on whitespace and punctuation,
    padded and truncated to `max_tokens`; id 0 is <pad>, 1 is <unk>."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {PAD: 0, UNK: 1}
    for word in caption_words():
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.enable_padding(pad_id=0, pad_token=PAD, length=max_tokens)
    tokenizer.enable_truncation(max_tokens)
    return tokenizer


def tokenize(tokenizer, prompts: list[str]) -> torch.Tensor:
    """[B, max_tokens] int64 ids."""
    return torch.tensor([e.ids for e in tokenizer.encode_batch(list(prompts))], dtype=torch.long)


def unknown_words(tokenizer, prompt: str) -> list[str]:
    encoding = tokenizer.encode(prompt)
    return [token for token, index in zip(encoding.tokens, encoding.ids) if index == 1]


class TinyTextEncoder(nn.Module):
    """ids [B, T] -> (context [B, T, context_dim], pooled [B, pooled_dim])."""

    def __init__(self, vocab_size: int, context_dim: int = 64, pooled_dim: int = 64, max_tokens: int = MAX_TOKENS,
                 heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, context_dim)
        self.position = nn.Parameter(torch.randn(max_tokens, context_dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(context_dim, heads, 2 * context_dim, dropout=0.0, batch_first=True,
                                                norm_first=True)
        self.norm = nn.LayerNorm(context_dim)
        self.pooled = nn.Linear(context_dim, pooled_dim)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # No padding mask (as FLUX reads T5 without one): an empty caption stays well defined.
        context = self.norm(self.layer(self.embed(ids) + self.position[: ids.shape[1]]))
        words = (ids > 0).unsqueeze(-1).to(context.dtype)
        mean = (context * words).sum(1) / words.sum(1).clamp_min(1.0)
        return context, self.pooled(mean)
