"""Job file keys: attribution to a tenant and a job, and refusal of everything else."""

import pytest

from maas.jobs.store import ObjectRef, RejectedKey, manifest_key, parse_key, part_key

JOB = "job_" + "0123456789abcdef01234567"


def test_an_upload_for_an_api_made_job_names_its_tenant_and_job():
    # GIVEN the key POST /v1/jobs hands out
    key = f"jobs/acme/{JOB}/input.jsonl"

    # WHEN it is parsed
    ref = parse_key("bucket", key, "v1")

    # THEN the tenant, job and format come from the key, and it is not a dropped file
    assert ref == ObjectRef("bucket", key, "v1", "acme", JOB, "jsonl", False)


def test_a_dropped_file_gets_a_job_id_derived_from_its_key_and_version():
    # GIVEN a file dropped straight into a tenant's prefix, its key URL-encoded as S3 events send it
    # WHEN it is parsed twice for one version and once for another
    ref = parse_key("bucket", "jobs/acme/my%2Dtexts.csv", "v1")
    again = parse_key("bucket", "jobs/acme/my%2Dtexts.csv", "v1")
    other = parse_key("bucket", "jobs/acme/my%2Dtexts.csv", "v2")

    # THEN the key is decoded, the job id is stable for that version and differs for another
    assert (ref.key, ref.tenant_id, ref.input_format, ref.dropped) == ("jobs/acme/my-texts.csv", "acme", "csv", True)
    assert ref.job_id == again.job_id != other.job_id
    assert ref.job_id.startswith("job_") and len(ref.job_id) == len(JOB)


def test_a_continuation_key_is_not_decoded_again():
    # GIVEN a key as a continuation message carries it: already decoded, so '%2D' would be literal
    # WHEN it is parsed without decoding
    # THEN the literal '%' is refused as a file name character instead of being decoded into a valid one
    with pytest.raises(RejectedKey):
        parse_key("bucket", "jobs/acme/my%2Dtexts.csv", "v1", url_encoded=False)
    assert parse_key("bucket", "jobs/acme/my-texts.csv", "v1", url_encoded=False).key == "jobs/acme/my-texts.csv"


@pytest.mark.parametrize(
    "key",
    [
        "results/acme/x.jsonl",  # outside jobs/
        "jobs/acme/../other/x.jsonl",  # path tricks
        "jobs//x.jsonl",
        "jobs/acme\\x.jsonl",
        "jobs/acme/x%0A.jsonl",  # a control character once decoded
        "jobs/acme/x.txt",  # not a job file format
        "jobs/acme/nested/deeper/x.jsonl",
        "jobs/Acme/x.jsonl",  # not a tenant id
        f"jobs/acme/{JOB}/output.jsonl",
    ],
)
def test_keys_outside_a_tenants_job_files_are_rejected(key):
    # GIVEN a key no tenant's job file can have
    # WHEN it is parsed
    # THEN it is rejected, never attributed to anyone
    with pytest.raises(RejectedKey):
        parse_key("bucket", key, "v1")


def test_result_keys_are_deterministic_per_part():
    # GIVEN a job's results prefix
    # WHEN its part and manifest keys are made
    # THEN a retried part rewrites the same key, zero-padded so the parts list in order
    assert part_key("results/", "acme", JOB, 7) == f"results/acme/{JOB}/part-00007.jsonl"
    assert manifest_key("results/", "acme", JOB) == f"results/acme/{JOB}/manifest.json"
