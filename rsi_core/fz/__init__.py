"""Feature visualizations (FZs): transforms, objectives, the render loop, the FZ bank."""
import warnings

with warnings.catch_warnings():  # kornia 0.4.1 calls torch.jit.script at import: torch's FutureWarning on every command
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    import kornia  # noqa: F401
