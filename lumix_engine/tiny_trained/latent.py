"""A fixed latent mapping in FLUX's layout: 16 channels at 1/4 resolution, packed 2 x 2.

FLUX's VAE turns an image into 16 latent channels at 1/8 resolution. The tiny model
replaces it by a documented linear map, fitted once and then frozen: each 4 x 4 block of
RGB pixels (48 values, image scaled to [-1, 1]) is projected onto the 16 leading principal
components of such blocks (computed from training renders of all five maps), and divided
by one global scale so that the latents have unit variance, like FLUX's scaled VAE
latents. A 64 x 64 map becomes a [16, 16, 16] latent, i.e. 8 x 8 = 64 FLUX tokens.
Decoding is the transpose (the basis is orthonormal): the best 16-dimensional linear
reconstruction of every block, which keeps colour and edges but smooths detail inside a
block.

That linear decoding shows a 4 x 4 grid wherever the latents are not exactly those of a
clean image, which is always the case for generated ones: each block is rebuilt on its own.
So the model may also carry a learned decoder (`DeblockingDecoder`, like the decoder half of
a VAE): a few convolutions that look at neighbouring blocks and correct the linear
reconstruction. It is trained after the mapping is fitted, on latents of training maps with
noise added (so it also cleans the small errors of generated latents), and then frozen. The
encoder, and so everything the transformer sees, stays the linear mapping.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..devices import to_float64

BLOCK = 4
CHANNELS = 16


class DeblockingDecoder(nn.Module):
    """A residual correction of the linear reconstruction, [B, 3, H, W] in [-1, 1]: three
    3 x 3 convolutions on the blocks (each block's 48 values as channels, so every output
    block sees its 8 neighbours), then one 3 x 3 convolution at full resolution across the
    block edges. Starts as the identity (last layers zero)."""

    def __init__(self, block: int = BLOCK, width: int = 64) -> None:
        super().__init__()
        self.block = block
        packed = 3 * block * block
        self.blocks = nn.Sequential(nn.Conv2d(packed, width, 3, padding=1), nn.SiLU(),
                                    nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                    nn.Conv2d(width, packed, 3, padding=1))
        self.seams = nn.Conv2d(3, 3, 3, padding=1)
        for layer in (self.blocks[-1], self.seams):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, linear: torch.Tensor) -> torch.Tensor:
        x = linear + F.pixel_shuffle(self.blocks(F.pixel_unshuffle(linear, self.block)), self.block)
        return x + self.seams(x)


class BlockPCACodec(nn.Module):
    """encode: [B, H, W, 3] images in [0, 1] -> [B, 16, H/4, W/4]; decode: the inverse map
    (the transpose, then the learned `DeblockingDecoder` when the model has one)."""

    def __init__(self, block: int = BLOCK, channels: int = CHANNELS, learned_decoder: bool = False) -> None:
        super().__init__()
        self.block, self.channels = block, channels
        self.learned: Optional[DeblockingDecoder] = DeblockingDecoder(block) if learned_decoder else None
        width = 3 * block * block
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("basis", torch.eye(width)[:, :channels].clone())  # [48, 16], orthonormal columns
        self.register_buffer("scale", torch.ones(()))

    def _blocks(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() * 2 - 1
        return rearrange(x, "b (h p) (w q) c -> b h w (c p q)", p=self.block, q=self.block)

    @torch.no_grad()
    def fit(self, images: torch.Tensor) -> "BlockPCACodec":
        """Principal components of the 4x4 blocks of `images` [N, H, W, 3] (float64 SVD)."""
        blocks = to_float64(self._blocks(images).reshape(-1, 3 * self.block ** 2))
        mean = blocks.mean(0)
        _, singular, vh = torch.linalg.svd(blocks - mean, full_matrices=False)
        basis = vh[: self.channels].T
        # A deterministic sign per component (SVD signs are arbitrary): largest entry positive.
        signs = torch.sign(basis.gather(0, basis.abs().argmax(0, keepdim=True)))
        basis = basis * signs
        variance = (singular[: self.channels] ** 2).sum() / (len(blocks) * self.channels)
        self.mean.copy_(mean.float())
        self.basis.copy_(basis.float())
        self.scale.copy_(variance.sqrt().float())
        return self

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        coefficients = (self._blocks(images) - self.mean) @ self.basis / self.scale
        return rearrange(coefficients, "b h w k -> b k h w")

    def linear_decode(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, 16, h, w] -> [B, 3, H, W] in about [-1, 1]: the transpose of the mapping."""
        blocks = rearrange(latents.float(), "b k h w -> b h w k") * self.scale @ self.basis.T + self.mean
        return rearrange(blocks, "b h w (c p q) -> b c (h p) (w q)", p=self.block, q=self.block, c=3)

    def signed_decode(self, latents: torch.Tensor) -> torch.Tensor:
        linear = self.linear_decode(latents)
        return linear if self.learned is None else self.learned(linear)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return ((self.signed_decode(latents).permute(0, 2, 3, 1) + 1) / 2).clamp(0, 1)

    def decoder_loss(self, images: torch.Tensor, max_noise: float, generator: torch.Generator) -> torch.Tensor:
        """MSE in [-1, 1] of decoding the latents of `images` [B, H, W, 3] with Gaussian noise
        of a random level in [0, max_noise] (latents have unit variance) added to them."""
        with torch.no_grad():
            latents = self.encode(images)
            level = max_noise * torch.rand(len(images), 1, 1, 1, generator=generator)
            latents = latents + level * torch.randn(latents.shape, generator=generator)
        target = images.float().permute(0, 3, 1, 2) * 2 - 1
        return F.mse_loss(self.signed_decode(latents), target)
