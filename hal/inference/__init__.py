"""Running models (LiteRT, or a registered runner) on the backend the inference plan picks, falling back
and recovering at run time."""

from hal.inference.engine import InferenceEngine, NoBackendAvailable
from hal.inference.runner import BackendUnavailable, InputError, Runner, load_litert, load_planned

__all__ = [
    "BackendUnavailable",
    "InferenceEngine",
    "InputError",
    "NoBackendAvailable",
    "Runner",
    "load_litert",
    "load_planned",
]
