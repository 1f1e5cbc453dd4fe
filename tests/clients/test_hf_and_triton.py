"""huggingface_hub's InferenceClient (one documented URL per task) and tritonclient (KServe v2) against `maas serve`."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.clients.conftest import EMBEDDING_MODEL, VECTOR_ATOL

TEXT = "I was charged twice for my order."


def _client(served, path: str):
    from huggingface_hub import InferenceClient

    return InferenceClient(base_url=served.base_url + path, api_key=served.key)


def test_hf_feature_extraction(served):
    vectors = _client(served, "/v1/feature-extraction").feature_extraction(TEXT)
    assert vectors.shape == (1, 384)
    np.testing.assert_allclose(vectors, served.vectors([TEXT]), atol=VECTOR_ATOL)


def test_hf_text_classification(served):
    labels = _client(served, "/v1/classify").text_classification(TEXT)
    direct = served.post("/v1/classify", json={"inputs": [TEXT]}).json()[0]
    assert labels[0].label == "billing" and [x.label for x in labels] == [x["label"] for x in direct[: len(labels)]]


@pytest.mark.parametrize("multi_label", [False, True])
def test_hf_zero_shot_classification(served, multi_label):
    candidates = ["billing", "shipping", "account access"]
    text = "My package was supposed to arrive on Monday and the courier still hasn't delivered it."
    answer = _client(served, "/v1/classify").zero_shot_classification(text, candidates, multi_label=multi_label)
    params = {"candidate_labels": candidates, "multi_label": multi_label}
    direct = served.post("/v1/classify", json={"inputs": text, "parameters": params}).json()
    assert answer[0].label == "shipping" and [(x.label, x.score) for x in answer] == [tuple(d.values()) for d in direct]
    total = sum(x.score for x in answer)
    assert total == pytest.approx(1.0, abs=1e-4) if not multi_label else 0 < total < len(candidates)


def _digit_png(digit: int) -> bytes:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.images[list(digits.target).index(digit)]
    image = Image.fromarray((255 - pixels * 255 / 16).astype(np.uint8)).resize((32, 32))  # dark ink on light
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_hf_image_classification_sends_raw_bytes_without_a_content_type(served):
    png = _digit_png(3)
    answer = _client(served, "/v1/images/classify").image_classification(png)
    direct = served.post("/v1/images/classify", data=png, headers={"Content-Type": "image/png"}).json()
    assert [(x.label, round(x.score, 6)) for x in answer] == [(d["label"], d["score"]) for d in direct]


def test_untyped_bytes_that_are_not_json_get_a_400_or_415_never_a_500(served):
    noise = bytes(range(256)) * 4
    for path in ("/v1/classify", "/v1/embeddings", "/v1/rerank", "/v2/rerank", "/v1/feature-extraction", "/v1/jobs"):
        for headers in ({}, {"Content-Type": "application/octet-stream"}, {"Content-Type": "application/json"}):
            response = served.post(path, data=noise, headers=headers)
            assert response.status_code in (400, 415), (path, headers, response.text)
            assert response.json()["error"]["message"]


def test_tritonclient_health_metadata_and_json_infer(served):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(served.base_url.removeprefix("http://"))
    auth = {"Authorization": f"Bearer {served.key}"}
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_model_metadata(EMBEDDING_MODEL, headers=auth)
    names = [t["name"] for t in metadata["inputs"]]
    assert "input_ids" in names and "attention_mask" in names
    # tritonclient's one setting: binary_data=False on inputs and outputs (see README)
    ids = np.array([[101, 7592, 2088, 102]], dtype=np.int64)
    inputs = []
    for name, array in (("input_ids", ids), ("attention_mask", np.ones_like(ids))):
        tensor = triton.InferInput(name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array, binary_data=False)
        inputs.append(tensor)
    output = metadata["outputs"][0]["name"]
    result = client.infer(
        EMBEDDING_MODEL, inputs, outputs=[triton.InferRequestedOutput(output, binary_data=False)], headers=auth
    )
    direct = served.post(
        f"/v2/models/{EMBEDDING_MODEL}/infer",
        json={
            "inputs": [
                {"name": "input_ids", "datatype": "INT64", "shape": [1, 4], "data": ids.ravel().tolist()},
                {"name": "attention_mask", "datatype": "INT64", "shape": [1, 4], "data": [1, 1, 1, 1]},
            ]
        },
    ).json()
    expected = np.array(direct["outputs"][0]["data"]).reshape(direct["outputs"][0]["shape"])
    np.testing.assert_allclose(result.as_numpy(output), expected, atol=1e-6)


def test_tritonclient_binary_default_gets_a_400_naming_the_setting(served):
    ids = np.array([[101, 7592, 102]], dtype=np.int64)
    import tritonclient.http as triton

    tensor = triton.InferInput("input_ids", list(ids.shape), "INT64")
    tensor.set_data_from_numpy(ids)  # binary by default
    body, header_length = triton.InferenceServerClient.generate_request_body([tensor])
    response = served.post(
        f"/v2/models/{EMBEDDING_MODEL}/infer",
        data=body,
        headers={"Inference-Header-Content-Length": str(header_length), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 400 and "binary_data=False" in str(response.json()["error"])
