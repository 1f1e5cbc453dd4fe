"""The heavy-model inference package: the code inside the SageMaker endpoint's container (see service.py)."""
