"""Names defined once: environment variables, limits and defaults shared by runtime, infra and tests."""

# Environment variables read by the per-function settings objects (maas.settings.mixins and maas.settings.functions).
ENV_MODEL_SOURCE = "MAAS_MODEL_SOURCE"  # folder (layer path /opt/models/<name>, local path) or s3://bucket/prefix
ENV_MODEL_CACHE_DIR = "MAAS_MODEL_CACHE_DIR"  # where S3 packages are downloaded once per container
ENV_THREADS = "MAAS_THREADS"  # ONNX Runtime intra-op threads; default: the CPUs the function really has
ENV_MAX_INPUTS = "MAAS_MAX_INPUTS"
ENV_MAX_BODY_BYTES = "MAAS_MAX_BODY_BYTES"
ENV_BATCH_SIZE = "MAAS_BATCH_SIZE"
ENV_BATCH_TOKENS = "MAAS_BATCH_TOKENS"

DEFAULT_MODEL_SOURCE = "/opt/models/all-minilm-l6-v2"  # where the model layer puts the package
DEFAULT_MODEL_CACHE_DIR = "/tmp/maas-models"
# Inputs per request, bounded by Lambda's 6 MB response (LAMBDA_RESPONSE_BYTES) per encoding: a base64 vector of 384
# float32 is 2,048 characters (~2,100 bytes with its JSON), so 2,048 of them are ~4.3 MB; a float vector as JSON
# is at most ~5,050 bytes (384 numbers of <= 12 characters at 9 decimals, their commas, its JSON), so 1,024 of
# them are <= 5.2 MB and 2,048 would be ~10 MB. OpenAI's own limit is 2,048 inputs.
DEFAULT_MAX_INPUTS = 2048
MAX_FLOAT_INPUTS = 1024  # encoding_format "float" (and KServe v2's JSON tensors: rows per request)
LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024
# The per-request token budget: what a function finishes within API Gateway's 29 s integration timeout with a 2x
# margin, at its deployed memory's CPU share (Lambda gives 1 vCPU at 1,769 MB, pro rata below). Measured by
# `maas bench budget` (one onnxruntime thread, process CPU time, so other load on the machine does not skew it):
# the handlers ran all-MiniLM-L6-v2 int8 at 4,200 (v2 infer) to 4,650 (embeddings) tokens per CPU-second on
# inputs of 256 tokens, the slowest per token; the budget takes 3,600, ~15% under the slowest, for run-to-run noise.
ENV_MAX_REQUEST_TOKENS = "MAAS_MAX_REQUEST_TOKENS"  # override of the derived budget (tokens per request)
ENV_LAMBDA_MEMORY_MB = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"  # set by Lambda in every function's environment
TOKENS_PER_VCPU_SECOND = 3600
LAMBDA_MB_PER_VCPU = 1769
GATEWAY_TIMEOUT_S = 29
BUDGET_MARGIN = 2
DEFAULT_FUNCTION_MEMORY_MB = 1024  # the task functions' memory (infra/config.py FunctionConfig)
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

# Rerank (POST /v1/rerank). 1,000 documents is Cohere's limit too; at ~200 texts/s on 2 cores the worst case
# (1,000 documents of 256 tokens) stays well inside API Gateway's 29 s.
ENV_MAX_DOCUMENTS = "MAAS_MAX_DOCUMENTS"
DEFAULT_MAX_DOCUMENTS = 1000

# Batch jobs (S3) and queued requests (SQS): maas.jobs.store, maas.jobs.worker, functions/batch_s3, batch_sqs, jobs.
ENV_JOB_BUCKET = "MAAS_JOB_BUCKET"  # holds jobs/{tenant}/... (inputs) and results/{tenant}/... (outputs)
ENV_RESULTS_PREFIX = "MAAS_RESULTS_PREFIX"
ENV_CHUNK_LINES = "MAAS_CHUNK_LINES"  # input lines per result part (and per billed usage event)
ENV_MAX_CHUNKS = "MAAS_MAX_CHUNKS_PER_INVOCATION"  # 0: as many as the invocation's time allows
ENV_CONTINUATION_QUEUE_URL = "MAAS_CONTINUATION_QUEUE_URL"  # where a job too big for one invocation continues
# The SQS worker forwards a message here (the failed-events queue), with its error, on its last receive.
ENV_DLQ_URL = "MAAS_DLQ_URL"
ENV_DEAD_LETTERS_URL = "MAAS_DEAD_LETTERS_URL"  # functions/failed_events parks every failed event here
ENV_JOB_STALL_AFTER_S = "MAAS_JOB_STALL_AFTER_S"  # a running job with no progress this long reads stalled
ENV_MAX_RECEIVE_COUNT = "MAAS_MAX_RECEIVE_COUNT"  # the requests queue's redrive maxReceiveCount
JOBS_PREFIX = "jobs/"
DEFAULT_RESULTS_PREFIX = "results/"
DEFAULT_CHUNK_LINES = 5000
DEFAULT_MAX_RECEIVE_COUNT = 3
PRESIGNED_URL_TTL_S = 3600
# The longest a Lambda invocation may run: a live worker records progress after every part, far more often.
DEFAULT_JOB_STALL_AFTER_S = 900

# Text classification (POST /v1/classify). MAAS_MODEL_SOURCE names the embedding model (zero-shot);
# MAAS_CLASSIFIER_SOURCES the trained classifier packages, comma-separated (folders or s3:// URIs).
ENV_CLASSIFIER_SOURCES = "MAAS_CLASSIFIER_SOURCES"
DEFAULT_CLASSIFIER = "ticket-intents"  # default: this package, next to the embedding model's folder
DEFAULT_CLASSIFY_MAX_INPUTS = 256
MAX_CANDIDATE_LABELS = 32
MAX_LABEL_CHARS = 200

# Heavy models on a SageMaker endpoint: the inference package (maas.heavy.endpoint) and the proxy (maas.heavy.client,
# functions/heavy_proxy). The proxy's variables are set by infra/stacks.py; the container's by infra/gpu.py.
ENV_SAGEMAKER_ENDPOINT = "MAAS_SAGEMAKER_ENDPOINT"  # the endpoint's name
ENV_INFERENCE_COMPONENT = "MAAS_INFERENCE_COMPONENT"  # set when the endpoint hosts inference components
ENV_MODEL_NAME = "MAAS_MODEL_NAME"  # the catalog name the endpoint serves
# The embeddings function forwards `model` ids of these SageMaker-served models (JSON: name -> {"endpoint",
# "component"}), so OpenAI clients reach a heavy model through POST /v1/embeddings unchanged.
ENV_HEAVY_MODELS = "MAAS_HEAVY_MODELS"
ENV_SAGEMAKER_RUNTIME_URL = "MAAS_SAGEMAKER_RUNTIME_URL"  # local only: `maas serve`'s stand-in endpoint process
ENV_ENDPOINT_TIMEOUT_S = "MAAS_ENDPOINT_TIMEOUT_S"  # read timeout of one InvokeEndpoint call
ENV_ENDPOINT_ATTEMPTS = "MAAS_ENDPOINT_ATTEMPTS"  # total attempts per request (botocore standard retries)
ENV_DEVICE = "MAAS_DEVICE"  # auto | cuda | cpu: the endpoint's onnxruntime execution provider
ENV_BATCHING = "MAAS_BATCHING"  # true (default) | false: the endpoint's dynamic batcher
ENV_BATCH_WAIT_MS = "MAAS_BATCH_WAIT_MS"  # dynamic batching: hold a batch's first request this long (0: never)
SAGEMAKER_MODEL_DIR = "/opt/ml/model"  # where SageMaker unpacks model.tar.gz
# InvokeEndpoint's request payload limit on real-time endpoints (asynchronous endpoints take up to 1 GB).
ENDPOINT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
DEFAULT_ENDPOINT_TIMEOUT_S = 12.0  # x 2 attempts stays under API Gateway's 29 s integration timeout
DEFAULT_ENDPOINT_ATTEMPTS = 2

# Image classification (POST /v1/images/classify): maas.inference.images, maas.tasks.images, functions/image_classify.
# MAAS_MODEL_SOURCE names the image package; raw bodies of these media types arrive base64-encoded, so API
# Gateway must list them as binary media types (infra/api.py).
ENV_MAX_IMAGE_PIXELS = "MAAS_MAX_IMAGE_PIXELS"
DEFAULT_IMAGE_MODEL = "digits-cnn"
DEFAULT_IMAGE_MODEL_SOURCE = f"/opt/models/{DEFAULT_IMAGE_MODEL}"
DEFAULT_IMAGE_MAX_INPUTS = 32
# 4096 x 4096: a decoded RGBA image of this size is 64 MiB; only one is decoded at a time.
DEFAULT_MAX_IMAGE_PIXELS = 4096 * 4096
DEFAULT_IMAGE_TOP_K = 5  # Hugging Face's default for image classification
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg")
# API Gateway's binary media types: every type. tritonclient's binary tensors come with no Content-Type (and no
# Accept), raw images as image/png or image/jpeg or untyped: only */* passes such bodies to the function intact
# (base64, isBase64Encoded) and the binary tensor responses back to such a client as bytes. JSON bodies then arrive
# base64-encoded too; every function decodes them (maas.bodies.json_body, Powertools' decoded_body).
BINARY_MEDIA_TYPES = ("*/*",)
