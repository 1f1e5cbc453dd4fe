"""Names defined once: environment variables, limits and defaults shared by runtime, infra and tests."""

# Environment variables read by the per-function settings objects (maas.settings).
ENV_MODEL_SOURCE = "MAAS_MODEL_SOURCE"  # folder (layer path /opt/models/<name>, local path) or s3://bucket/prefix
ENV_MODEL_CACHE_DIR = "MAAS_MODEL_CACHE_DIR"  # where S3 packages are downloaded once per container
ENV_THREADS = "MAAS_THREADS"  # ONNX Runtime intra-op threads; default: the CPUs the function really has
ENV_MAX_INPUTS = "MAAS_MAX_INPUTS"
ENV_MAX_BODY_BYTES = "MAAS_MAX_BODY_BYTES"
ENV_BATCH_SIZE = "MAAS_BATCH_SIZE"

DEFAULT_MODEL_SOURCE = "/opt/models/all-minilm-l6-v2"  # where the model layer puts the package
DEFAULT_MODEL_CACHE_DIR = "/tmp/maas-models"
# 512 inputs keep the largest float response (512 x 384 floats as JSON, ~4.5 MB) under Lambda's 6 MB limit.
DEFAULT_MAX_INPUTS = 512
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_BATCH_SIZE = 32

SERVICE_NAME = "maas"
