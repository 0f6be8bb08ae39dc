"""File formats for other tools: float OpenEXR maps, GLB meshes, HDR environment maps."""
