"""The loader refuses missing, truncated and corrupt packages, locally and from S3 (moto)."""

from __future__ import annotations

import shutil

import boto3
import pytest
from moto import mock_aws

from maas.inference.loader import ModelPackageError, download_s3_package, resolve_package, verify_package


@pytest.fixture
def package_copy(model_dir, tmp_path):
    dst = tmp_path / "pkg"
    shutil.copytree(model_dir, dst)
    return dst


def test_verify_accepts_the_built_package(model_dir):
    manifest = verify_package(model_dir)
    assert manifest.name == "all-minilm-l6-v2"
    assert set(manifest.files) == {"model.onnx", "tokenizer.json"}


def test_corrupt_byte_is_refused(package_copy):
    path = package_copy / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelPackageError, match="model.onnx sha256"):
        verify_package(package_copy)


def test_truncated_file_is_refused(package_copy):
    path = package_copy / "model.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelPackageError, match="truncated"):
        verify_package(package_copy)


def test_missing_file_and_manifest_are_named(package_copy, tmp_path):
    (package_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelPackageError, match="missing file tokenizer.json"):
        verify_package(package_copy)
    (package_copy / "manifest.json").unlink()
    with pytest.raises(ModelPackageError, match="no manifest.json"):
        verify_package(package_copy)
    with pytest.raises(ModelPackageError, match="not a directory"):
        verify_package(tmp_path / "nowhere")


def test_invalid_manifest_is_refused(package_copy):
    (package_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelPackageError, match="manifest.json is invalid"):
        verify_package(package_copy)


def _upload(s3, bucket: str, prefix: str, folder):
    s3.create_bucket(Bucket=bucket)
    for path in folder.iterdir():
        s3.upload_file(str(path), bucket, f"{prefix}/{path.name}")


@mock_aws
def test_s3_package_is_downloaded_once_and_verified(model_dir, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    _upload(s3, "models", "minilm/1", model_dir)
    folder, manifest = resolve_package("s3://models/minilm/1", tmp_path / "cache", s3)
    assert manifest.name == "all-minilm-l6-v2"
    assert (folder / "model.onnx").stat().st_size == manifest.files["model.onnx"].size
    # A second container start reuses the verified copy: delete the bucket's objects to prove no download.
    for obj in s3.list_objects_v2(Bucket="models")["Contents"]:
        s3.delete_object(Bucket="models", Key=obj["Key"])
    again, _ = resolve_package("s3://models/minilm/1", tmp_path / "cache", s3)
    assert again == folder


@mock_aws
def test_corrupt_s3_object_is_refused_and_leaves_nothing(model_dir, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    _upload(s3, "models", "minilm/1", model_dir)
    s3.put_object(Bucket="models", Key="minilm/1/model.onnx", Body=b"not a model")
    cache = tmp_path / "cache"
    with pytest.raises(ModelPackageError, match="does not match its manifest"):
        download_s3_package("s3://models/minilm/1", cache, s3)
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == []


@mock_aws
def test_missing_s3_package_is_a_clear_error(tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="models")
    with pytest.raises(ModelPackageError, match="cannot read s3://models/absent/manifest.json"):
        download_s3_package("s3://models/absent", tmp_path, s3)
