"""Errors the user can fix: usage errors (the plugin turns them into pytest usage errors) and models that
cannot be loaded (the gate tests error with the message). Nothing else is caught."""


class MiaUsageError(ValueError):
    """Bad input: names the file or option at fault and says what to do."""


class ModelLoadError(RuntimeError):
    """A model (the target, the embedder, the captioner) could not be loaded: corrupt weights, missing
    configs, a missing library, an unreachable hub. The gate tests error with this message, never pass."""


class WhiteBoxError(RuntimeError):
    """The target cannot be queried the way a white-box attack needs (no denoiser, an unsupported
    prediction type, query images of another size than the model's). The attack errors, never passes."""
