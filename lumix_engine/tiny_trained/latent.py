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
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

BLOCK = 4
CHANNELS = 16


class BlockPCACodec(nn.Module):
    """encode: [B, H, W, 3] images in [0, 1] -> [B, 16, H/4, W/4]; decode: the inverse map."""

    def __init__(self, block: int = BLOCK, channels: int = CHANNELS) -> None:
        super().__init__()
        self.block, self.channels = block, channels
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
        blocks = self._blocks(images).reshape(-1, 3 * self.block ** 2).double()
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

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        blocks = rearrange(latents.float(), "b k h w -> b h w k") * self.scale @ self.basis.T + self.mean
        x = rearrange(blocks, "b h w (c p q) -> b (h p) (w q) c", p=self.block, q=self.block, c=3)
        return ((x + 1) / 2).clamp(0, 1)
