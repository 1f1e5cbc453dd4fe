"""The SageMaker capability: the InvokeEndpoint client, the remote embedder, and endpoint/ (the container)."""
