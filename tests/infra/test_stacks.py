"""Data, functions, GPU endpoints, events, operations and IAM: properties of the synthesized templates."""

from __future__ import annotations

import json

import pytest

from infra.config import load_config
from infra.cost import alarm_count
from infra.functions import ALIAS
from infra.gpu import VARIANT
from maas.settings import names as constants
from maas.tables import ALL_TABLES, API_KEYS, JOBS, TENANTS, USAGE, create_table_kwargs
from tests.infra.templates import as_list, only, policy_of_role, resources, routes, statements, text

DATA_ACTIONS = ("dynamodb:", "s3:", "sqs:", "sagemaker:")


# --- metering: tables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_TABLES, ids=lambda s: s.logical_name)
def test_table_keys_equal_the_runtime_spec(built, spec):
    """The key schema, indexes and attribute types are those the runtime and the local emulator use."""
    tables = resources(built.data_template, "AWS::DynamoDB::Table")
    logical_id, table = next((k, v) for k, v in tables.items() if k.startswith(f"Metering{spec.logical_name}"))
    props = table["Properties"]
    runtime = create_table_kwargs(spec)
    assert props["KeySchema"] == runtime["KeySchema"]
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == runtime["AttributeDefinitions"]
    assert [
        {"IndexName": g["IndexName"], "KeySchema": g["KeySchema"], "Projection": g["Projection"]}
        for g in props.get("GlobalSecondaryIndexes", [])
    ] == runtime.get("GlobalSecondaryIndexes", [])
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    assert "TableName" not in props, "names are generated"


def test_functions_learn_table_names_from_the_spec_env_vars(built):
    functions = resources(built.service_template, "AWS::Lambda::Function")

    def variables(prefix):
        fn = next(v for k, v in functions.items() if k.startswith(prefix))
        return fn["Properties"]["Environment"]["Variables"]

    assert set(variables("Authorizer")) >= {TENANTS.env_var, API_KEYS.env_var}
    assert USAGE.env_var not in variables("Authorizer")
    task = variables("Taskembeddings")
    assert set(task) >= {USAGE.env_var, TENANTS.env_var}
    assert "MeteringUsage" in text(task[USAGE.env_var])


# --- storage: buckets ---------------------------------------------------------------------------------------


def test_every_bucket_is_encrypted_private_tls_only_and_retained(built):
    template = built.data_template
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 4  # access logs, usage exports, models, jobs
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(template, "AWS::S3::BucketPolicy").values()
    }
    for logical_id, bucket in buckets.items():
        props = bucket["Properties"]
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert sse["SSEAlgorithm"] == "AES256", logical_id
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        assert bucket["DeletionPolicy"] == "Retain", logical_id
        deny_plain_http = [
            s
            for s in policies[logical_id]
            if s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert deny_plain_http and deny_plain_http[0]["Action"] == "s3:*", logical_id
        if not logical_id.startswith("AccessLogs"):
            assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
            assert "LoggingConfiguration" in props, logical_id


# --- functions and layers -----------------------------------------------------------------------------------


def lambda_functions(template: dict) -> dict[str, dict]:
    return {k: v["Properties"] for k, v in resources(template, "AWS::Lambda::Function").items()}


def test_functions_follow_config(built):
    config = load_config()
    functions = lambda_functions(built.service_template)
    ours = {k: v for k, v in functions.items() if v.get("Handler") == "app.lambda_handler"}
    # authorizer, usage, jobs, batches, embeddings, rerank, classify, image classify, v2, heavy proxy, two batch
    # workers, the aggregator and the failed-events handler
    prefixes = (
        "Authorizer",
        "Usage",
        "Jobs",
        "Files",
        "Taskembeddings",
        "Taskrerank",
        "Taskclassify",
        "Taskimageclassify",
        "V2",
        "Proxyallminilml6v2fp32",
        "BatchS3",
        "BatchSqs",
        "Aggregator",
        "FailedEvents",
    )
    assert len(ours) == len(prefixes)
    assert sorted(next(p for p in prefixes if k.startswith(p + "Function")) for k in ours) == sorted(prefixes)
    for props in ours.values():
        assert props["Runtime"] == f"python{config.python}"
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["LoggingConfig"]["SystemLogLevel"] == "WARN"
    task = next(v for k, v in ours.items() if k.startswith("Taskembeddings"))
    settings = config.task_function("embeddings")
    assert task["MemorySize"] == settings.memory_mb
    assert task["Architectures"] == [settings.architecture]
    # the default model first, then the embedding tiers, each from its own layer (runtime + 3 models; Lambda allows 5)
    assert task["Environment"]["Variables"][constants.ENV_MODEL_SOURCE].split(",") == [
        constants.DEFAULT_MODEL_SOURCE,
        "/opt/models/all-minilm-l6-v2-fast",
        "/opt/models/all-minilm-l6-v2-static",
    ]
    assert len(task["Layers"]) == 4
    assert "SnapStart" not in task and "ReservedConcurrentExecutions" not in task


def function_props(template: dict, prefix: str) -> dict:
    return next(v for k, v in lambda_functions(template).items() if k.startswith(prefix + "Function"))


def layer_ids(props: dict) -> list[str]:
    return sorted(layer["Ref"] for layer in props.get("Layers", []))


def test_rerank_and_v2_run_the_embeddings_model_like_embeddings(built):
    """Same model layer, model source, sizing and metering tables as the embeddings function."""
    template = built.service_template
    embeddings = function_props(template, "Taskembeddings")
    for prefix in ("Taskrerank", "V2"):
        props = function_props(template, prefix)
        assert layer_ids(props) == layer_ids(embeddings), prefix
        assert any(ref.startswith("LayersModelallminilml6v2") for ref in layer_ids(props))
        variables = props["Environment"]["Variables"]
        # the default model first, then the embedding tiers, as the embeddings function
        assert (
            variables[constants.ENV_MODEL_SOURCE] == embeddings["Environment"]["Variables"][constants.ENV_MODEL_SOURCE]
        )
        assert variables[constants.ENV_MODEL_SOURCE].startswith(constants.DEFAULT_MODEL_SOURCE + ",")
        assert set(variables) >= {USAGE.env_var, TENANTS.env_var} and JOBS.env_var not in variables
        assert props["MemorySize"] == embeddings["MemorySize"]
    routes_ = routes(template)
    assert "TaskrerankAlias" in text(routes_[("POST", "/v1/rerank")]["Integration"]["Uri"])


def test_classify_carries_the_embeddings_and_classifier_layers(built):
    template = built.service_template
    props = function_props(template, "Taskclassify")
    refs = layer_ids(props)
    assert len(refs) == 3  # runtime + embeddings model (zero-shot) + ticket-intents
    assert any(r.startswith("LayersRuntime") for r in refs)
    assert any(r.startswith("LayersModelallminilml6v2") and "fp32" not in r for r in refs)
    assert any(r.startswith("LayersModelticketintents") for r in refs)
    variables = props["Environment"]["Variables"]
    assert variables[constants.ENV_MODEL_SOURCE] == constants.DEFAULT_MODEL_SOURCE
    assert variables[constants.ENV_CLASSIFIER_SOURCES] == f"/opt/models/{constants.DEFAULT_CLASSIFIER}"
    assert constants.ENV_MAX_INPUTS not in variables  # ClassifySettings' own default applies
    assert set(variables) >= {USAGE.env_var, TENANTS.env_var}


def test_batch_workers_carry_the_classifier_for_batch_classify_lines_within_the_layer_limit(built):
    """Batch API /v1/classify lines are answered by the workers: the embedding packages (default and tiers) and the
    trained classifier, five layers (Lambda's limit), the classifier's source as the classify function has it."""
    template = built.service_template
    classify = function_props(template, "Taskclassify")["Environment"]["Variables"]
    embeddings = function_props(template, "Taskembeddings")
    for prefix in ("BatchS3", "BatchSqs"):
        props = function_props(template, prefix)
        refs = layer_ids(props)
        assert len(refs) == 5, prefix
        assert set(layer_ids(embeddings)) < set(refs)
        assert any(r.startswith("LayersModelticketintents") for r in refs)
        variables = props["Environment"]["Variables"]
        assert variables[constants.ENV_CLASSIFIER_SOURCES] == classify[constants.ENV_CLASSIFIER_SOURCES]
        assert (
            variables[constants.ENV_MODEL_SOURCE] == embeddings["Environment"]["Variables"][constants.ENV_MODEL_SOURCE]
        )


def test_image_classify_carries_its_own_model_layer_and_limits(built):
    """The image function: runtime + images (Pillow) + digits-cnn layers, the image package as its model, its own
    input limit; no other function carries the images layer."""
    template = built.service_template
    props = function_props(template, "Taskimageclassify")
    refs = layer_ids(props)
    assert len(refs) == 3 and any(r.startswith("LayersRuntime") for r in refs)
    assert any(r.startswith("LayersModeldigitscnn") for r in refs) and any(r.startswith("LayersImages") for r in refs)
    for name, fn in lambda_functions(template).items():
        if not name.startswith("Taskimageclassify"):
            assert not any(r.startswith("LayersImages") for r in layer_ids(fn)), name
    variables = props["Environment"]["Variables"]
    assert variables[constants.ENV_MODEL_SOURCE] == constants.DEFAULT_IMAGE_MODEL_SOURCE
    assert constants.ENV_MAX_INPUTS not in variables  # ImageClassifySettings' own default (images, not texts)
    assert set(variables) >= {USAGE.env_var, TENANTS.env_var}
    assert props["MemorySize"] == 512  # infra/config.json tasks.image-classify


def test_raw_images_and_binary_tensors_reach_the_function_base64_encoded(built):
    """Every type is a binary media type: raw images (typed or not) and tritonclient's untyped binary tensors reach
    the function base64-encoded, and binary tensor answers go back as bytes."""
    _, api = only(built.service_template, "AWS::ApiGateway::RestApi")
    assert api["Properties"]["BinaryMediaTypes"] == ["*/*"]
    route = routes(built.service_template)[("POST", "/v1/images/classify")]
    assert "RequestModels" not in route  # raw bodies are not JSON: the function validates both forms


def test_jobs_function_env_and_least_privilege_grants(built):
    """Jobs: its table read/write, put under jobs/ (the presigned upload), read under results/; nothing else."""
    template = built.service_template
    props = function_props(template, "Jobs")
    variables = props["Environment"]["Variables"]
    assert "ExportsOutputRefMeteringJobs" in text(variables[JOBS.env_var])
    assert "ExportsOutputRefJobsBucket" in text(variables[constants.ENV_JOB_BUCKET])
    assert variables[constants.ENV_RESULTS_PREFIX] == constants.DEFAULT_RESULTS_PREFIX
    assert not {USAGE.env_var, API_KEYS.env_var, constants.ENV_MODEL_SOURCE} & set(variables)
    assert len(props["Layers"]) == 1  # runtime only
    statements_ = policy_of_role(template, "Jobs")
    dynamo = [s for s in statements_ if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert any("dynamodb:PutItem" in as_list(s["Action"]) for s in dynamo)
    dynamo_resources = text([s["Resource"] for s in dynamo])
    assert "MeteringJobs" in dynamo_resources
    assert not any(t in dynamo_resources for t in ("MeteringUsage", "MeteringTenants", "MeteringApiKeys"))
    s3_statements = [s for s in statements_ if any(a.startswith("s3:") for a in as_list(s["Action"]))]
    puts = [s for s in s3_statements if any(a.startswith("s3:PutObject") for a in as_list(s["Action"]))]
    reads = [s for s in s3_statements if any(a.startswith("s3:Get") for a in as_list(s["Action"]))]
    assert puts and all(as_list(s["Action"]) == ["s3:PutObject"] for s in puts), puts
    assert all(text(s["Resource"]).endswith('"/jobs/*"]]}') for s in puts), puts
    assert reads and all(as_list(s["Action"]) == ["s3:GetObject"] for s in reads), reads
    assert all(text(s["Resource"]).endswith('"/results/*"]]}') for s in reads), reads
    assert not any("s3:List" in text(s["Action"]) for s in s3_statements)
    assert not any("s3:DeleteObject" in text(s["Action"]) for s in s3_statements)
    assert not any("sqs:" in text(s["Action"]) for s in statements_)


def test_new_api_functions_are_metered_and_never_see_keys(built):
    for prefix in ("Taskrerank", "Taskclassify", "Taskimageclassify", "V2"):
        statements_ = policy_of_role(built.service_template, prefix)
        writes = [s for s in statements_ if "dynamodb:PutItem" in as_list(s["Action"])]
        assert writes and all("MeteringUsage" in text(s["Resource"]) for s in writes), prefix
        assert "MeteringApiKeys" not in json.dumps(statements_), prefix
        assert any("MeteringTenants" in text(s["Resource"]) for s in statements_), prefix
        assert "MeteringJobs" not in json.dumps(statements_) and "JobsBucket" not in json.dumps(statements_)


def test_metered_functions_may_only_read_the_quota_and_write_usage(built):
    """Task functions, the proxy and the batch workers get GetItem, PutItem and UpdateItem on the usage table:
    no Scan, Query, DeleteItem or batch writes."""
    template = built.service_template
    for prefix in ("Taskembeddings", "Taskclassify", "Taskrerank", "V2", "Proxyallminilml6v2fp32", "BatchS3"):
        on_usage = [s for s in policy_of_role(template, prefix) if "MeteringUsage" in text(s["Resource"])]
        actions = {a for s in on_usage for a in as_list(s["Action"])}
        assert actions == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}, (prefix, actions)


def test_layers_target_the_function_runtime_and_architecture(built):
    layers = resources(built.service_template, "AWS::Lambda::LayerVersion")
    runtime = next(v["Properties"] for k, v in layers.items() if k.startswith("LayersRuntimex8664"))
    assert runtime["CompatibleRuntimes"] == [f"python{load_config().python}"]
    assert runtime["CompatibleArchitectures"] == ["x86_64"]
    assert any(k.startswith("LayersModelallminilml6v2") for k in layers)


def test_api_and_events_invoke_the_live_alias(built):
    template = built.service_template
    aliases = resources(template, "AWS::Lambda::Alias")
    assert {a["Properties"]["Name"] for a in aliases.values()} == {ALIAS}
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    assert sorted(k.split("Alias")[0] for k in mappings) == ["Aggregator", "BatchSqs", "FailedEvents"]
    for mapping in mappings.values():
        assert "Alias" in text(mapping["Properties"]["FunctionName"])


def test_variant_snapstart_concurrency_arm64_and_s3_model(variant):
    template = variant.service_template
    functions = lambda_functions(template)
    task = next(v for k, v in functions.items() if k.startswith("Taskembeddings"))
    assert task["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert task["MemorySize"] == 2048
    assert task["Architectures"] == ["arm64"]
    source = text(task["Environment"]["Variables"][constants.ENV_MODEL_SOURCE])
    assert "s3://" in source and "models/all-minilm-l6-v2/3" in source
    # the older listed version is served beside it (latest first), by the embeddings function only
    assert "models/all-minilm-l6-v2/2" in source and source.index("/3") < source.index("/2")
    for other in ("Taskrerank", "V2"):  # the other routes of the embedding model serve both versions too
        other_source = text(function_props(template, other)["Environment"]["Variables"][constants.ENV_MODEL_SOURCE])
        assert other_source == source, other
        assert "models/all-minilm-l6-v2/2/*" in json.dumps(policy_of_role(template, other)), other
    reads = json.dumps(policy_of_role(template, "Taskembeddings"))
    assert "models/all-minilm-l6-v2/2/*" in reads and "models/all-minilm-l6-v2/3/*" in reads
    assert len(task["Layers"]) == 1  # runtime only: the model comes from the bucket
    authorizer = next(v for k, v in functions.items() if k.startswith("Authorizer"))
    assert authorizer["ReservedConcurrentExecutions"] == 5
    alias = next(v for k, v in resources(template, "AWS::Lambda::Alias").items() if k.startswith("Authorizer"))
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}
    uploads = resources(template, "Custom::CDKBucketDeployment").values()
    prefixes = sorted(u["Properties"]["DestinationBucketKeyPrefix"] for u in uploads)
    assert prefixes == ["models/all-minilm-l6-v2/2", "models/all-minilm-l6-v2/3"]  # one upload per version
    reads = [s for s in policy_of_role(template, "Taskembeddings") if "s3:GetObject*" in as_list(s["Action"])]
    assert reads and "/models/all-minilm-l6-v2/3/*" in text(reads[0]["Resource"])
    # rerank and v2 follow the embeddings model: same settings, read it from the bucket too; no classify here
    for prefix in ("Taskrerank", "V2"):
        props = function_props(template, prefix)
        assert (props["MemorySize"], props["Architectures"]) == (2048, ["arm64"]), prefix
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}, prefix

        reads = [s for s in policy_of_role(template, prefix) if "s3:GetObject*" in as_list(s["Action"])]
        assert reads and "/models/all-minilm-l6-v2/3/*" in text(reads[0]["Resource"]), prefix
    assert not [k for k in functions if k.startswith("Taskclassify")]
    assert ("POST", "/v1/classify") not in routes(template)


# --- heavy models -------------------------------------------------------------------------------------------


def test_gpu_endpoint_scales_to_zero_on_the_configured_instance(built):
    template = built.service_template
    _, config = only(template, "AWS::SageMaker::EndpointConfig")
    variant = config["Properties"]["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.g5.xlarge"
    assert variant["ManagedInstanceScaling"] == {"Status": "ENABLED", "MinInstanceCount": 0, "MaxInstanceCount": 2}
    _, component = only(template, "AWS::SageMaker::InferenceComponent")
    assert (
        component["Properties"]["Specification"]["ComputeResourceRequirements"]["NumberOfAcceleratorDevicesRequired"]
        == 1
    )
    _, target = only(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert target["Properties"]["MinCapacity"] == 0
    assert target["Properties"]["ScalableDimension"] == "sagemaker:inference-component:DesiredCopyCount"
    policies = [p["Properties"] for p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()]
    tracking = next(p for p in policies if p["PolicyType"] == "TargetTrackingScaling")
    spec = tracking["TargetTrackingScalingPolicyConfiguration"]
    assert (
        spec["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerInferenceComponentInvocationsPerCopy"
    )
    assert any(p["PolicyType"] == "StepScaling" for p in policies), "a request at zero copies must add one"
    _, model = only(template, "AWS::SageMaker::Model")
    data_url = text(model["Properties"]["PrimaryContainer"]["ModelDataUrl"])
    assert "cdk-hnb659fds-assets" in data_url and data_url.endswith('.gz"}')  # the model.tar.gz file asset


def test_classic_gpu_endpoint_with_minimum_one_and_context_instance_type(variant):
    template = variant.service_template
    _, config = only(template, "AWS::SageMaker::EndpointConfig")
    variant_ = config["Properties"]["ProductionVariants"][0]
    assert variant_["InstanceType"] == "ml.g6.xlarge"  # -c maas:gpuInstanceType
    assert variant_["InitialInstanceCount"] == 1 and variant_["VariantName"] == VARIANT
    assert not resources(template, "AWS::SageMaker::InferenceComponent")
    _, target = only(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["Properties"]["MinCapacity"], target["Properties"]["MaxCapacity"]) == (1, 3)
    assert target["Properties"]["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    _, policy = only(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    spec = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert spec["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    assert spec["TargetValue"] == 300


def test_proxy_may_invoke_only_its_endpoint(built):
    template = built.service_template
    statements_ = policy_of_role(template, "Proxyallminilml6v2fp32")
    invoke = [s for s in statements_ if "sagemaker:InvokeEndpoint" in as_list(s["Action"])]
    assert len(invoke) == 1 and as_list(invoke[0]["Action"]) == ["sagemaker:InvokeEndpoint"]
    assert "*" not in text(invoke[0]["Resource"])
    proxy = next(v for k, v in lambda_functions(template).items() if k.startswith("Proxy"))
    variables = proxy["Environment"]["Variables"]
    assert "Gpuallminilml6v2fp32Endpoint" in text(variables["MAAS_SAGEMAKER_ENDPOINT"])
    assert "MAAS_INFERENCE_COMPONENT" in variables
    assert ("POST", "/v2/models/all-minilm-l6-v2-fp32/infer") in routes(template)
    assert ("GET", "/v2/models/all-minilm-l6-v2-fp32") in routes(template)


def test_embeddings_function_forwards_the_heavy_model_to_its_endpoint_only(built):
    """POST /v1/embeddings naming the heavy model: the embeddings function knows its endpoint (and component) and
    may invoke exactly that; the other task functions may invoke nothing."""
    template = built.service_template
    variables = function_props(template, "Taskembeddings")["Environment"]["Variables"]
    forwarded = text(variables[constants.ENV_HEAVY_MODELS])
    assert "all-minilm-l6-v2-fp32" in forwarded and "Gpuallminilml6v2fp32Endpoint" in forwarded
    assert "component" in forwarded
    invoke = [
        s for s in policy_of_role(template, "Taskembeddings") if "sagemaker:InvokeEndpoint" in as_list(s["Action"])
    ]
    assert len(invoke) == 1 and "*" not in text(invoke[0]["Resource"])
    for worker in ("BatchS3", "BatchSqs"):  # heavy-model jobs and queued requests go to the endpoint too
        assert "Gpuallminilml6v2fp32Endpoint" in text(function_props(template, worker)["Environment"]["Variables"])
        assert any("sagemaker:InvokeEndpoint" in as_list(s["Action"]) for s in policy_of_role(template, worker))
    for other in ("Taskrerank", "Taskclassify", "V2"):
        assert not any("sagemaker:InvokeEndpoint" in as_list(s["Action"]) for s in policy_of_role(template, other))


# --- events -------------------------------------------------------------------------------------------------


def test_job_bucket_notifies_the_s3_worker_for_jobs_only(built):
    _, notifications = only(built.service_template, "Custom::S3BucketNotifications")
    config = notifications["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    assert len(config) == 1
    assert config[0]["Events"] == ["s3:ObjectCreated:*"]
    assert config[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "jobs/"}]
    assert "BatchS3Alias" in text(config[0]["LambdaFunctionArn"])
    assert "JobsBucket" in text(notifications["Properties"]["BucketName"])


def test_sqs_worker_reports_partial_batch_failures_and_has_a_dlq(built):
    """Every failure of the batch workers reaches the failed-events queue (the requests queue's redrive, the SQS
    worker's forwarding, the S3 worker's on-failure destination); its handler marks the job failed and parks the
    event in the dead-letter queue, which is also the failed-events queue's own redrive target."""
    template = built.service_template
    mappings = resources(template, "AWS::Lambda::EventSourceMapping")
    for prefix in ("BatchSqs", "FailedEvents"):
        [mapping] = [m for k, m in mappings.items() if k.startswith(prefix)]
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    [failure_mapping] = [m for k, m in mappings.items() if k.startswith("FailedEvents")]
    assert "BatchFailedEvents" in text(failure_mapping["Properties"]["EventSourceArn"])
    queues = resources(template, "AWS::SQS::Queue")
    requests = next(v["Properties"] for k, v in queues.items() if k.startswith("BatchRequests"))
    assert requests["RedrivePolicy"]["maxReceiveCount"] == load_config().sqs_max_receive_count
    assert "BatchFailedEvents" in text(requests["RedrivePolicy"]["deadLetterTargetArn"])
    assert requests["VisibilityTimeout"] == 6 * load_config().batch_sqs.timeout_s
    failed = next(v["Properties"] for k, v in queues.items() if k.startswith("BatchFailedEvents"))
    assert "BatchDeadLetters" in text(failed["RedrivePolicy"]["deadLetterTargetArn"])
    assert failed["RedrivePolicy"]["maxReceiveCount"] == 2 * load_config().sqs_max_receive_count
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    _, invoke_config = only(template, "AWS::Lambda::EventInvokeConfig")
    assert "BatchFailedEvents" in text(invoke_config["Properties"]["DestinationConfig"]["OnFailure"])
    functions = lambda_functions(template)
    sqs_worker = next(v for k, v in functions.items() if k.startswith("BatchSqsFunction"))
    handler = next(v for k, v in functions.items() if k.startswith("FailedEventsFunction"))
    assert "BatchFailedEvents" in text(sqs_worker["Environment"]["Variables"][constants.ENV_DLQ_URL])
    assert "BatchDeadLetters" in text(handler["Environment"]["Variables"][constants.ENV_DEAD_LETTERS_URL])


# --- operations ---------------------------------------------------------------------------------------------


def test_dashboard_shows_every_route_and_the_other_signals(built):
    _, dashboard = only(built.service_template, "AWS::CloudWatch::Dashboard")
    body = text(dashboard["Properties"]["DashboardBody"])
    for method, path in routes(built.service_template):
        assert f'\\"Method\\",\\"{method}\\",\\"Resource\\",\\"{path}\\"' in body.replace(" ", ""), (method, path)
    for needle in (
        '\\"stat\\":\\"p50\\"',
        '\\"stat\\":\\"p99\\"',
        "4XXError",
        "5XXError",
        "Throttled",
        "QuotaRejections",
        "ApproximateNumberOfMessagesVisible",
        "Invocation5XXErrors",
        "AWS/SageMaker",
        "Invocations",
    ):
        assert needle in body, needle


def test_alarms_notify_the_topic(built):
    template = built.service_template
    topic_id, _ = only(template, "AWS::SNS::Topic")
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    ours = {k: v for k, v in alarms.items() if k.startswith("Operations")}
    metrics = {v["Properties"].get("MetricName") for v in ours.values()}
    assert {"5XXError", "Latency", "Errors", "Throttles", "ApproximateNumberOfMessagesVisible"} <= metrics
    assert "Invocation5XXErrors" in metrics
    for logical_id, alarm in ours.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}], logical_id
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"
    # The cost report counts the template's alarms plus the two target tracking creates at deploy time.
    assert alarm_count(load_config()) == len(alarms) + 2


def test_alarm_email_subscription(variant):
    _, subscription = only(variant.service_template, "AWS::SNS::Subscription")
    assert subscription["Properties"] == {
        **subscription["Properties"],
        "Protocol": "email",
        "Endpoint": "ops@example.com",
    }


def test_gateway_throttles_are_read_from_the_access_log(built):
    _, metric_filter = only(built.service_template, "AWS::Logs::MetricFilter")
    props = metric_filter["Properties"]
    assert props["FilterPattern"] == '{ $.errorType = "THROTTLED" }'
    assert props["MetricTransformations"][0]["MetricName"] == "Throttled"
    assert props["MetricTransformations"][0]["Dimensions"] == [{"Key": "ApiId", "Value": "$.apiId"}]


def test_tracing_follows_config(built, variant):
    for synth, mode in ((built, "Active"), (variant, None)):
        functions = lambda_functions(synth.service_template)
        for props in (v for v in functions.values() if v.get("Handler") == "app.lambda_handler"):
            assert props.get("TracingConfig", {}).get("Mode") == mode
            traced_off = props["Environment"]["Variables"].get("POWERTOOLS_TRACE_DISABLED")
            assert traced_off == (None if mode else "true")


# --- IAM ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["built", "fresh", "variant"])
def test_no_wildcard_actions_anywhere(all_synths, scenario):
    for template in all_synths[scenario].templates.values():
        for logical_id, statement in statements(template):
            for action in as_list(statement["Action"]):
                if statement["Effect"] == "Deny":
                    continue  # the TLS-only bucket policies deny s3:* on plain HTTP
                assert action != "*" and not action.endswith(":*"), (logical_id, action)


# Actions AWS defines no resource for: the stream event source mapping's ListStreams (its reads name the stream).
UNSCOPABLE = {"dynamodb:ListStreams"}


def test_data_permissions_are_scoped_to_named_resources(built):
    """Every data action (DynamoDB, S3, SQS, SageMaker) names its resources: no bare '*'."""
    for logical_id, statement in statements(built.service_template):
        actions = [a for a in as_list(statement["Action"]) if a not in UNSCOPABLE]
        if statement["Effect"] == "Allow" and any(a.startswith(DATA_ACTIONS) for a in actions):
            for resource in as_list(statement["Resource"]):
                assert resource != "*", (logical_id, actions)


def test_authorizer_reads_tenants_and_keys_only(built):
    statements_ = policy_of_role(built.service_template, "Authorizer")
    dynamo = [s for s in statements_ if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    actions = {a for s in dynamo for a in as_list(s["Action"])}
    assert actions and not actions & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    resources_ = text([s["Resource"] for s in dynamo])
    assert "MeteringTenants" in resources_ and "MeteringApiKeys" in resources_ and "MeteringUsage" not in resources_


def test_task_function_writes_usage_reads_tenants_and_never_sees_keys(built):
    statements_ = policy_of_role(built.service_template, "Taskembeddings")
    writes = [s for s in statements_ if "dynamodb:PutItem" in as_list(s["Action"])]
    assert writes and all("MeteringUsage" in text(s["Resource"]) for s in writes)
    assert "MeteringApiKeys" not in json.dumps(statements_)
    assert any("MeteringTenants" in text(s["Resource"]) for s in statements_)


def test_the_usage_stream_feeds_the_aggregator_exactly_once_per_shard(built):
    # GIVEN the synthesized stacks
    # WHEN the usage table and the aggregator's event source mapping are read
    [usage] = [
        t for k, t in resources(built.data_template, "AWS::DynamoDB::Table").items() if k.startswith("MeteringUsage")
    ]
    [mapping] = [
        m for k, m in resources(built.service_template, "AWS::Lambda::EventSourceMapping").items() if "Aggregator" in k
    ]
    props = mapping["Properties"]
    # THEN the table streams new images; the mapping reads every record (a tumbling window gives the shard id the
    # checkpoint is keyed on), never gives up on a batch, and lets only usage events and failures through
    assert usage["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert "GlobalSecondaryIndexes" not in usage["Properties"]  # one write per call: no index copy
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert props["TumblingWindowInSeconds"] == 15
    assert props["MaximumRetryAttempts"] == -1
    [pattern] = [json.loads(f["Pattern"]) for f in props["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"sk": {"S": ["EVENT", "FAIL"]}}}}
    assert "Aggregator" in text(props["FunctionName"])
