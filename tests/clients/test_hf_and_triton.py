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


def test_tritonclient_infer_with_its_defaults_sends_and_gets_binary_tensors(served):
    """infer() with tritonclient's defaults: binary inputs (Inference-Header-Content-Length) and, with no outputs
    named, every output asked for as binary data; the embeddings equal /v1/embeddings' for the same text."""
    import tritonclient.http as triton
    from tokenizers import Tokenizer

    from maas.tools import paths

    tokenizer = Tokenizer.from_file(str(paths.model_dir(EMBEDDING_MODEL) / "tokenizer.json"))
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch([TEXT, "ok"])
    width = max(len(e.ids) for e in encodings)
    ids, mask = np.zeros((2, width), np.int64), np.zeros((2, width), np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, 1
    client = triton.InferenceServerClient(served.base_url.removeprefix("http://"))
    inputs = []
    for name, array in (("input_ids", ids), ("attention_mask", mask)):
        tensor = triton.InferInput(name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array)  # binary_data=True, the default
        inputs.append(tensor)
    result = client.infer(EMBEDDING_MODEL, inputs, headers={"Authorization": f"Bearer {served.key}"})
    response = result.get_response()
    [output] = response["outputs"]
    assert output["parameters"]["binary_data_size"] == 2 * 384 * 4 and "data" not in output  # it came as bytes
    np.testing.assert_allclose(result.as_numpy(output["name"]), served.vectors([TEXT, "ok"]), atol=VECTOR_ATOL)


def test_tritonclient_errors_are_kserve_shaped_so_it_can_print_them(served):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(served.base_url.removeprefix("http://"))
    tensor = triton.InferInput("input_ids", [1, 3], "INT64")
    tensor.set_data_from_numpy(np.array([[101, 7592, 102]], dtype=np.int64))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("no-such-model", [tensor], headers={"Authorization": f"Bearer {served.key}"})
    assert "[404]" in str(caught.value) and "no-such-model" in caught.value.message()
