"""maas: compressed ONNX models served as metered, pay-per-call APIs on AWS serverless."""

__version__ = "0.1.0"
