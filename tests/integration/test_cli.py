"""The `maas` CLI: invoke on every sample event, verify, help."""

from __future__ import annotations

import json

import pytest

from maas.tools import paths
from maas.tools.cli import main

EXPECTED = {
    "embeddings-post.json": 200,
    "embeddings-post-batch.json": 200,
    "embeddings-post-invalid.json": 400,
    "embeddings-post-unsupported.json": 400,
    "embeddings-post-unknown-model.json": 404,
    "models-get.json": 200,
    "model-get.json": 200,
    "docs-get.json": 200,
    "openapi-get.json": 200,
}


# Events of other functions, invoked in their own modules: usage-get.json in test_usage_api.py.
OTHER_FUNCTIONS = {"authorizer-request.json", "usage-get.json"}
# What other functions answer their samples on a fresh emulator (the sample job id names no job there).
OTHER_STATUSES = {
    "jobs-post.json": 201,
    "jobs-post-unknown-model.json": 404,
    "jobs-list-get.json": 200,
    "jobs-get.json": 404,
    "failed_events-batch.json": 200,
    # The Files and Batches API: the listings and creations answer; the sample ids name nothing on a fresh emulator.
    "batches-files-post.json": 200,
    "batches-files-post-invalid.json": 400,
    "batches-files-get.json": 200,
    "batches-files-retrieve-get.json": 404,
    "batches-files-content-get.json": 404,
    "batches-files-delete.json": 404,
    "batches-uploads-post.json": 200,
    "batches-uploads-parts-post.json": 404,
    "batches-uploads-complete-post.json": 404,
    "batches-uploads-cancel-post.json": 404,
    "batches-post.json": 404,
    "batches-post-classify.json": 404,  # the maas extension: a classify batch (its sample file names nothing here)
    "batches-post-invalid.json": 400,
    "batches-list-get.json": 200,
    "batches-get.json": 404,
    "batches-cancel-post.json": 404,
}


def test_every_sample_event_is_covered():
    assert set(EXPECTED) | OTHER_FUNCTIONS | set(OTHER_STATUSES) <= {p.name for p in paths.EVENTS_DIR.glob("*.json")}


def test_every_function_and_every_route_has_a_sample_event():
    """The README's promise: `maas invoke` has a sample for each function, and each route has one in events/."""
    from maas.api.routes import RouteMatcher, api_routes
    from maas.tools.local.endpoint import heavy_models
    from maas.tools.local.functions import available_functions

    events = {p.name: json.loads(p.read_text()) for p in paths.EVENTS_DIR.glob("*.json")}
    assert set(available_functions()) <= {_function_of(name) for name in events}
    routes = api_routes(heavy_models())
    matcher = RouteMatcher(routes)
    sampled = set()
    for name, event in events.items():
        if "httpMethod" in event and "methodArn" not in event:
            route = matcher.match(event["httpMethod"], event["path"])[0]
            assert route.function == _function_of(name), name  # the name says which function answers it
            assert event["resource"] == route.path, name  # what API Gateway sends for that route
            sampled.add((route.method, route.path))
    assert [(r.method, r.path) for r in routes if (r.method, r.path) not in sampled] == []


def _function_of(event_name: str) -> str:
    """Events are named <function>-<what>.json; the embeddings function's routes also go by route name."""
    first = event_name.split("-", 1)[0]
    return first if (paths.FUNCTIONS_DIR / first / "app.py").is_file() else "embeddings"


@pytest.mark.parametrize("event", sorted(p.name for p in paths.EVENTS_DIR.glob("*.json")))
def test_every_sample_event_runs_without_a_server_error(model_dir, request, capsys, event):
    """Each sample event, through `maas invoke` on the function its name says: never a 5xx or a crash
    (the sample authorizer key is fake, so the authorizer answers Unauthorized, as API Gateway expects).
    heavy_proxy events run against the heavy package in a local endpoint process, as `maas invoke` starts it."""
    function = _function_of(event)
    if function == "heavy_proxy":
        request.getfixturevalue("fp32_model_dir")  # built if missing, so the local endpoint can start
    # The image function serves the image package; every other function the embedding package.
    model = request.getfixturevalue("digits_dir") if function == "image_classify" else model_dir
    main(["invoke", function, "--event", str(paths.EVENTS_DIR / event), "--env", f"MAAS_MODEL_SOURCE={model}"])
    out = capsys.readouterr().out
    if function == "aggregator":  # a stream consumer: it answers its tumbling window's (empty) state
        assert json.loads(out[out.index('{\n  "state"') :]) == {"state": {}}  # after its log lines
        return
    start = out.find('{\n  "statusCode"')
    if start == -1:
        assert '"errorMessage": "Unauthorized"' in out, out[-2000:]
        return
    result = json.loads(out[start:])
    assert result["statusCode"] < 500
    if event in OTHER_STATUSES:
        assert result["statusCode"] == OTHER_STATUSES[event], result
        assert result.get("batchItemFailures", []) == []


def test_invoke_the_authorizer_on_its_sample_event(capsys):
    # The sample's key is not a real one: the authorizer answers as API Gateway expects for a 401.
    code = main(["invoke", "authorizer", "--event", str(paths.EVENTS_DIR / "authorizer-request.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert json.loads(out[out.index('{\n  "errorMessage"') :]) == {
        "errorMessage": "Unauthorized",
        "errorType": "AuthorizerUnauthorized",
    }


@pytest.mark.parametrize("event,status", sorted(EXPECTED.items()))
def test_invoke_runs_the_handler_on_each_sample_event(model_dir, capsys, event, status):
    code = main(
        ["invoke", "embeddings", "--event", str(paths.EVENTS_DIR / event), "--env", f"MAAS_MODEL_SOURCE={model_dir}"]
    )
    out = capsys.readouterr().out
    result = json.loads(out[out.index('{\n  "statusCode"') :])
    assert result["statusCode"] == status
    assert code == (0 if status < 400 else 1)


def test_invoke_reports_missing_event_and_function(capsys, tmp_path):
    assert main(["invoke", "embeddings", "--event", str(tmp_path / "none.json")]) == 2
    assert "not found" in capsys.readouterr().err
    event = paths.EVENTS_DIR / "models-get.json"
    assert main(["invoke", "nosuch", "--event", str(event)]) == 2
    assert "no function 'nosuch'" in capsys.readouterr().err


def test_models_verify(model_dir, tmp_path, capsys):
    assert main(["models", "verify", str(model_dir)]) == 0
    assert "ok: all-minilm-l6-v2@1" in capsys.readouterr().out
    assert main(["models", "verify", str(tmp_path)]) == 1
    assert "no manifest.json" in capsys.readouterr().err


def test_help_explains_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("models", "serve", "invoke", "bench"):
        assert command in out
