"""CUDA faked available, and every CUDA entry point refused (issue 31): its public functions and
the private ones that initialize it. Work meant for the CPU must make no CUDA call, not even the
queries that create a context on a shared GPU.

``refuse()`` patches ``torch.cuda``'s and ``torch.accelerator``'s functions (``is_available``
answers True, ``torch.accelerator.current_accelerator`` names cuda); loaded as a pytest plugin
(``-p cuda_refused``, this folder on the path) it does so for a whole claims run.
"""
import functools
import inspect

import torch
import torchvision  # noqa: F401  (imported first: its import reads torch.cuda's attributes)


class CudaCalled(RuntimeError):
    pass


#: queued by torch until CUDA is initialized, which nothing else here does (``torch.manual_seed`` calls them)
LAZY = ("manual_seed", "manual_seed_all", "seed", "seed_all")


#: the private functions that initialize CUDA (the others are build-time facts torch reads on import)
INIT = ("_lazy_init", "_exchange_device", "_maybe_exchange_device", "_get_device")


def _refusing(name, original):
    @functools.wraps(original)  # torch's own modules read attributes of these at import
    def refused(*_a, **_k):
        raise CudaCalled(f"{name} called by CPU work")
    return refused


def refuse(patch=setattr) -> None:
    """Fake CUDA as available and make every other CUDA function raise ``CudaCalled``; ``patch``
    (``monkeypatch.setattr`` in a test) sets each attribute."""
    for module, prefix in ((torch.cuda, "torch.cuda"), (torch.accelerator, "torch.accelerator")):
        for name, value in vars(module).items():
            if (inspect.isfunction(value) or inspect.isbuiltin(value)) and (not name.startswith("_") or name in INIT) \
                    and getattr(value, "__module__", "").startswith(module.__name__):
                patch(module, name, _refusing(f"{prefix}.{name}", value))
    patch(torch.cuda, "is_available", lambda: True)
    for name in LAZY:
        patch(torch.cuda, name, lambda *_a, **_k: None)
    patch(torch.accelerator, "is_available", lambda: True)
    patch(torch.accelerator, "current_accelerator", lambda *_a, **_k: torch.device("cuda"))


def pytest_configure(config):  # as a plugin (``-p cuda_refused``): for the whole run
    refuse()
