"""Azure ML backend (``ML_BACKEND=azureml``): the notebook "fine-tune Phi-3-mini-4k-instruct with
chat_completion_pipeline", step by step, from settings. Importing this package is cheap: ``azure.ai.ml`` loads
inside the methods that need it, and the scoring/activity paths never load it."""

from shared.backends.azureml.backend import AzureMLBackend

__all__ = ["AzureMLBackend"]
