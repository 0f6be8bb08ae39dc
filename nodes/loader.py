"""LumiXLoader: a FLUX.1-dev MODEL + lumix.safetensors -> a patched MODEL (a clone)."""
from __future__ import annotations

import comfy.patcher_extension
import folder_paths
from comfy_api.latest import io, ui

from ..lumix_engine.flux.architecture import describe_flux
from ..lumix_engine.method.checkpoint import AdapterCache
from ..lumix_engine.method.patch import SampledModel, block_patches, without_lumix
from .comfy_glue import LUMIX_FOLDER, comfy_attention, comfy_cast_weights
from .memory_estimate import MEMORY_WRAPPER_KEY, SIMULATED_HIDDEN_SIZE, LumiXMemoryEstimate

LUMIX_WRAPPER_KEY = "lumix_sampled_model"

# One LumiXAdapters per file for the whole process, however many graphs or clones use it.
ADAPTERS = AdapterCache()


def patch_model(model, lumix_path: str, strength: float, qba: bool):
    """Clone `model` and install LumiX's block patches on the clone only; returns (the
    patched MODEL, a text saying what was loaded and which blocks have no adapters)."""
    adapters = ADAPTERS.load(lumix_path)
    diffusion_model = model.get_model_object("diffusion_model")
    patches = block_patches(diffusion_model, adapters, strength, qba,
                            attention=comfy_attention, weights=comfy_cast_weights())
    arch = describe_flux(diffusion_model)
    info = f"{adapters.describe()}\n{adapters.coverage_report(len(arch.double_blocks), len(arch.single_blocks), qba)}"
    patched = model.clone()
    options = patched.model_options.setdefault("transformer_options", {})
    # A MODEL that already went through LumiXLoader gets its LumiX patches replaced, not stacked.
    options["patches_replace"] = without_lumix(options.get("patches_replace"))
    for (block_name, index), patch in patches.items():
        patched.set_model_patch_replace(patch, "dit", block_name, index)
    # The patches look their blocks up on the diffusion model actually being run, which this
    # wrapper names; clones that rebuild the model (torch.compile, one copy per GPU,
    # model_override) then run their own weights.
    kind = comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL
    patched.remove_wrappers_with_key(kind, LUMIX_WRAPPER_KEY)
    patched.add_wrapper_with_key(kind, LUMIX_WRAPPER_KEY, SampledModel())
    # ComfyUI sizes the GPU memory it keeps free for sampling from a per-pixel estimate that
    # falls short of LumiX's step at small sizes; this raises it to the step simulated at
    # FLUX.1-dev's width (nodes/memory_estimate.py).
    kind = comfy.patcher_extension.WrappersMP.PREPARE_SAMPLING
    patched.remove_wrappers_with_key(kind, MEMORY_WRAPPER_KEY)
    if arch.hidden_size == SIMULATED_HIDDEN_SIZE:
        patched.add_wrapper_with_key(kind, MEMORY_WRAPPER_KEY, LumiXMemoryEstimate())
    return patched, info


def check_lumix_name(lumix_name) -> bool | str:
    """True for a file listed in models/lumix, else a message naming the problem and the fix."""
    available = folder_paths.get_filename_list(LUMIX_FOLDER)
    if lumix_name in available:
        return True
    listing = ", ".join(available[:10]) + (" ..." if len(available) > 10 else "") if available else "no .safetensors files"
    return (f"lumix_name {lumix_name!r} is not a LumiX checkpoint in models/lumix (it holds: {listing}). Put "
            f"lumix.safetensors in ComfyUI/models/lumix and pick it from the list; names are relative to that "
            f"folder and cannot point outside it.")


class LumiXLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LumiXLoader",
            display_name="LumiX Loader",
            category="LumiX/loaders",
            description="Patch a FLUX.1-dev model with LumiX (Query-Broadcast Attention + Tensor LoRA) so that one "
                        "sampling run generates five pixel-aligned maps: albedo, irradiance, color, depth, normal.\n\n"
                        "Licences: this pack and the LumiX authors' code are MIT. FLUX.1-dev is under the FLUX.1 [dev] "
                        "Non-Commercial License (https://huggingface.co/black-forest-labs/FLUX.1-dev/blob/main/"
                        "LICENSE.md): the model, and LumiX with it, may be used only for the non-commercial purposes it "
                        "defines, and its Outputs clause governs what you may do with the maps. Read it before any "
                        "commercial use.",
            inputs=[
                io.Model.Input("model", tooltip="A FLUX.1-dev diffusion model (bf16, fp8 or GGUF) from a core or "
                                                "GGUF loader. The MODEL that goes in is left unpatched."),
                io.Combo.Input("lumix_name", options=folder_paths.get_filename_list(LUMIX_FOLDER),
                               tooltip="The LumiX adapter checkpoint (lumix.safetensors) in models/lumix."),
                io.Float.Input("strength", default=1.0, min=0.0, max=2.0, step=0.05,
                               tooltip="Scale of the Tensor LoRA deltas (the paper's lora_weight). 1.0 is the "
                                       "published setting; 0 keeps only the query broadcast."),
                io.Boolean.Input("qba", default=True, label_on="on", label_off="off",
                                 tooltip="Query-Broadcast Attention: every map attends with the color map's "
                                         "queries. Published: on. Off is for ablations."),
            ],
            outputs=[io.Model.Output(tooltip="The patched FLUX model; sample it with LumiXSampler."),
                     io.String.Output("info", display_name="info", tooltip="What was loaded: maps, rank, blocks, parameters, and which "
                                                      "blocks (if any) the checkpoint has no adapters for.")],
        )

    @classmethod
    def validate_inputs(cls, lumix_name) -> bool | str:
        # ComfyUI (0.3.64) does not check V3 combo values against their options in API mode,
        # so any string would reach execute(): refuse names that are not listed, before queueing.
        return check_lumix_name(lumix_name)

    @classmethod
    def execute(cls, model, lumix_name, strength, qba) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise(LUMIX_FOLDER, lumix_name)
        patched, info = patch_model(model, path, strength, qba)
        return io.NodeOutput(patched, info, ui=ui.PreviewText(info))
