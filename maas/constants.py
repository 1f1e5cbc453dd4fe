"""Names defined once: environment variables, limits and defaults shared by runtime, infra and tests."""

# Environment variables read by the per-function settings objects (maas.settings).
ENV_MODEL_SOURCE = "MAAS_MODEL_SOURCE"  # folder (layer path /opt/models/<name>, local path) or s3://bucket/prefix
ENV_MODEL_CACHE_DIR = "MAAS_MODEL_CACHE_DIR"  # where S3 packages are downloaded once per container
ENV_THREADS = "MAAS_THREADS"  # ONNX Runtime intra-op threads; default: the CPUs the function really has
ENV_MAX_INPUTS = "MAAS_MAX_INPUTS"
ENV_MAX_BODY_BYTES = "MAAS_MAX_BODY_BYTES"
ENV_BATCH_SIZE = "MAAS_BATCH_SIZE"
ENV_BATCH_TOKENS = "MAAS_BATCH_TOKENS"

DEFAULT_MODEL_SOURCE = "/opt/models/all-minilm-l6-v2"  # where the model layer puts the package
DEFAULT_MODEL_CACHE_DIR = "/tmp/maas-models"
# 512 inputs keep the largest float response (512 x 384 floats as JSON, ~4.5 MB) under Lambda's 6 MB limit.
DEFAULT_MAX_INPUTS = 512
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_BATCH_SIZE = 32
# Padded tokens per session.run. Measured on 2 cores (maas/data/eval_sentences.txt, 260 texts): 256 -> 220/s,
# 1024 -> 195/s, 4096 -> 192/s; a 32-text mixed batch: 256 -> 215/s vs 4096 -> 71/s.
DEFAULT_BATCH_TOKENS = 256

SERVICE_NAME = "maas"
METRICS_NAMESPACE = "maas"

# Tenancy and metering (table names: maas.tables; plans: maas/data/plans.toml).
ENV_PLANS_FILE = "MAAS_PLANS_FILE"
ENV_METERING = "MAAS_METERING"  # on (default) | off  # optional override of the packaged plans.toml
AUTHORIZER_CACHE_TTL_S = 60  # a revoked key or suspended tenant is refused within this many seconds
API_KEY_PREFIX = "maas_"  # keys look like maas_<8-char id>_<secret>; the id part is the non-secret prefix
