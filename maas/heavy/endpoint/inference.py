"""Entry points of SageMaker's framework containers (the PyTorch inference toolkit imports code/inference.py).

code/inference.py (a copy of maas/heavy/endpoint/entry.py) checks the archive's code against code/SHA256SUMS before
it imports this module. `model_fn` checks the model package's sha256s and loads the model, on CUDA when there
is a GPU; `input_fn`/`predict_fn`/`output_fn` answer one request through the same EndpointService as the `serve`
HTTP server. CustomAttributes (route, model, version) are read from the request when the toolkit passes its
context; the billable units and a non-200 status go back the same way.
"""

from __future__ import annotations

import os

from maas.heavy.attributes import ATTRIBUTES_HEADER, format_attributes, parse_attributes
from maas.heavy.endpoint.service import (
    Answer,
    EndpointService,
    EndpointSettings,
)
from maas.inference.loader import ModelPackageError
from maas.settings import names as c


def model_fn(model_dir: str, context=None) -> EndpointService:
    settings = EndpointSettings.from_env({**os.environ, c.ENV_MODEL_SOURCE: str(model_dir)})
    service = EndpointService(settings)
    if service.embeddings.load_error:
        raise ModelPackageError(service.embeddings.load_error)
    return service


def _request_attributes(context) -> dict[str, str]:
    try:
        headers = context.request_processor[0].get_request_properties()
    except (AttributeError, IndexError, TypeError):
        return {}
    value = next((v for k, v in (headers or {}).items() if k.lower() == ATTRIBUTES_HEADER.lower()), None)
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return parse_attributes(value)


def input_fn(request_body, request_content_type: str, context=None) -> tuple[bytes, str, dict]:
    body = request_body if isinstance(request_body, bytes) else str(request_body).encode()
    return body, request_content_type, _request_attributes(context)


def predict_fn(data: tuple[bytes, str, dict], model: EndpointService, context=None) -> Answer:
    body, content_type, attributes = data
    return model.invoke(body, attributes, content_type)


def output_fn(prediction: Answer, accept: str, context=None):
    if context is not None:
        try:
            if prediction.status != 200:
                context.set_response_status(prediction.status)
            else:
                context.set_response_header(0, ATTRIBUTES_HEADER, format_attributes({"units": prediction.units}))
        except AttributeError:
            pass
    return prediction.body
