"""Errors the engine raises. Every message names the problem and how to fix it."""


class LumiXError(ValueError):
    """Base class of every error LumiX raises on bad input."""


class CheckpointError(LumiXError):
    """The LumiX checkpoint file is missing, corrupt, or not a LumiX checkpoint."""


class ModelMismatchError(LumiXError):
    """The model is not a FLUX model the checkpoint fits."""


class BatchLayoutError(LumiXError):
    """A batch does not hold five maps per scene in LumiX's order (albedo, irradiance, color, depth, normal)."""


class InputError(LumiXError):
    """An input (image, size, setting) is out of range or inconsistent."""
