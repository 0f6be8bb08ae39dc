"""LumiX engine: Query-Broadcast Attention and Tensor LoRA on FLUX, in plain torch.

Nothing in this package imports ComfyUI; the ComfyUI nodes are thin adapters over it.
"""
__version__ = "0.1.0"
