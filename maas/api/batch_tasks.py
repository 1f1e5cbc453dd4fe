"""The Batch API's /v1/classify and /v1/rerank lines, answered by the synchronous routes' own code.

maas.jobs may not import the task services (the layout's import direction), so the batch functions
(functions/batch_s3, functions/batch_sqs) build these answerers here and inject them into the worker
(maas.jobs.worker.BatchWorker.answerers). Each service is made from the settings its synchronous function reads,
from the batch function's own variables as the stack sets them for that function (`task_environ`), so a line's
limits, models and answer are the route's; and only when the first batch for its endpoint runs, so a worker that
answers embeddings alone loads nothing more.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from maas.api.classify import CLASSIFY_PATH, ClassifyApi
from maas.api.rerank import RERANK_PATH, RerankApi
from maas.api.routes import FUNCTION_ENV, FunctionEnv
from maas.jobs.batch_run import Answerer, service_answerer
from maas.schemas.classify import ClassifyRequest
from maas.schemas.rerank import RerankRequest
from maas.settings import names as c
from maas.settings.functions import ClassifySettings, RerankSettings
from maas.tasks.classify import ClassifyService
from maas.tasks.embeddings import EmbeddingsService
from maas.tasks.rerank import RerankService

# The Batch API's endpoints besides /v1/embeddings (which the worker answers with its own packages).
TASK_ENDPOINTS = (CLASSIFY_PATH, RERANK_PATH)


def task_environ(function: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The batch function's variables as the stack gives them to the synchronous ``function``
    (maas.api.routes.FUNCTION_ENV): MAAS_MODEL_SOURCE keeps every version only where that function serves every
    version (the default, first, otherwise), and MAAS_MAX_INPUTS goes where the function has its own limit."""
    env = dict(environ)
    needs = FUNCTION_ENV.get(function, FunctionEnv())
    source = env.get(c.ENV_MODEL_SOURCE)
    if source and not needs.all_versions:
        env[c.ENV_MODEL_SOURCE] = source.split(",")[0].strip()
    if needs.own_max_inputs:
        env.pop(c.ENV_MAX_INPUTS, None)
    return env


def task_answerers(
    logger: logging.Logger, environ: Mapping[str, str] | None = None
) -> dict[str, Callable[[], Answerer]]:
    """Endpoint -> a factory of its answerer. The settings are read now (a function's variables are read at init);
    the services, which load models, are built by the factory."""
    environ = os.environ if environ is None else environ
    classify = ClassifySettings.from_env(task_environ("classify", environ))
    rerank = RerankSettings.from_env(task_environ("rerank", environ))

    def classify_answerer() -> Answerer:
        return service_answerer(ClassifyRequest, ClassifyApi(ClassifyService(classify, logger), None, logger).run)

    def rerank_answerer() -> Answerer:
        service = RerankService(EmbeddingsService(rerank, logger), rerank.max_documents)
        return service_answerer(RerankRequest, RerankApi(service, None, logger).run)

    return {CLASSIFY_PATH: classify_answerer, RERANK_PATH: rerank_answerer}
