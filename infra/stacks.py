"""The two stacks: stateful data (tables, buckets; retained) and the service that uses it (replaceable)."""

from __future__ import annotations

from aws_cdk import Annotations, CfnOutput, CfnRule, CfnRuleAssertion, Duration, Fn, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as lambda_event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.api import InferenceApi
from infra.assets import AssetBuilder, Placeholder
from infra.batch import FILES_PREFIX, JOBS_PREFIX, RESULTS_PREFIX, BatchJobs
from infra.budget import MAX_LAYERS
from infra.config import Config, ModelConfig, Plan
from infra.front_door import FunctionUrlFrontDoor
from infra.functions import ServiceFunction
from infra.gpu import GpuEndpoint
from infra.metering import UsageMetering
from infra.model_layers import ModelLayers
from infra.monitoring import Alarmed, Monitoring
from infra.nag import GRANT_REASON, GRANT_WILDCARDS, suppress
from infra.storage import AccessLogBucket, SecureBucket
from maas.api.routes import FUNCTION_ENV, ROUTES, FunctionEnv, Route, heavy_routes
from maas.metering.store import EVENT_SK, FAIL_SK
from maas.settings import names as constants
from maas.tables import API_KEYS, JOBS, TENANTS, USAGE


def function_routes(function: str) -> list[Route]:
    """The routes the table (maas.api.routes) gives ``function`` alone (the shared ones go to the first task)."""
    return [route for route in ROUTES if route.function == function and not route.any_task]


# Answered by every task function's resolver (the catalog, the documentation): sent to the first one deployed.
SHARED_ROUTES = [route for route in ROUTES if route.any_task]
PLACEHOLDER_RULE = "MaasAssetsBuilt"
# A metered function's rights on the usage table (maas.metering.store): the Idempotency-Key and quota reads, the
# usage event and failure puts, the lease grant and settle updates.
METERING_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
# The aggregator's: its checkpoint read, and the transaction of aggregate updates (IAM checks each item's action).
AGGREGATOR_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
# The stream's event source mapping: a tumbling window gives each invocation its shard (the exactly-once
# checkpoint's key) and bounds how late usage is visible; only usage-event and failure inserts pass its filter.
AGGREGATION_WINDOW_S = 15
AGGREGATION_BATCH = 1000


def function_folder(task: str) -> str:
    return task.replace("-", "_")


class DataStack(Stack):
    """Tables, the usage-export, model and job buckets, and their access-log bucket; everything is retained."""

    def __init__(self, scope: Construct, id: str, *, config: Config, **kwargs) -> None:
        super().__init__(scope, id, description="maas: tenants, keys, usage, models and jobs (retained)", **kwargs)
        self.access_logs = AccessLogBucket(self, "AccessLogs", retention_days=365).bucket
        self.metering = UsageMetering(self, "Metering", access_logs=self.access_logs)
        self.model_bucket = SecureBucket(self, "Models", access_logs=self.access_logs, log_prefix="models/").bucket
        expire = Duration.days(config.job_retention_days)
        self.job_bucket = SecureBucket(
            self,
            "Jobs",
            access_logs=self.access_logs,
            log_prefix="jobs/",
            lifecycle_rules=[
                s3.LifecycleRule(prefix=JOBS_PREFIX, expiration=expire),
                s3.LifecycleRule(prefix=RESULTS_PREFIX, expiration=expire),
                # parts of uploads never completed (the Uploads API); completed ones are deleted at completion
                s3.LifecycleRule(prefix=constants.UPLOADS_PREFIX, expiration=expire),
            ],
        ).bucket
        for spec in (TENANTS, API_KEYS, USAGE):
            CfnOutput(self, f"{spec.logical_name}Table", value=self.metering.table(spec).table_name)
        CfnOutput(self, "UsageExportBucket", value=self.metering.export_bucket.bucket_name)
        CfnOutput(self, "ModelBucket", value=self.model_bucket.bucket_name)
        CfnOutput(self, "JobBucket", value=self.job_bucket.bucket_name)


class ServiceStack(Stack):
    """API, functions, layers, GPU endpoints, batch wiring and monitoring, on top of a DataStack."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: Config,
        plans: tuple[Plan, ...],
        data: DataStack,
        assets: AssetBuilder,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, description="maas: inference API, functions, GPU endpoints, monitoring", **kwargs)
        self.config, self.assets = config, assets
        tables = {spec.logical_name: data.metering.table(spec) for spec in (TENANTS, API_KEYS, USAGE)}
        # Imported, so that grants and notifications live here and the data stack never depends on this one.
        model_bucket = s3.Bucket.from_bucket_attributes(
            self, "ModelBucket", bucket_arn=data.model_bucket.bucket_arn, bucket_name=data.model_bucket.bucket_name
        )
        job_bucket = s3.Bucket.from_bucket_attributes(
            self, "JobBucket", bucket_arn=data.job_bucket.bucket_arn, bucket_name=data.job_bucket.bucket_name
        )
        self.layers = ModelLayers(self, "Layers", config=config, assets=assets, model_bucket=model_bucket)
        self.functions: dict[str, ServiceFunction] = {}

        def table_env(*specs) -> dict[str, str]:
            return {spec.env_var: tables[spec.logical_name].table_name for spec in specs}

        def function(
            id: str,
            folder: str,
            description: str,
            settings,
            model: ModelConfig | None,
            env: dict,
            extra_models: tuple[ModelConfig, ...] = (),
        ):
            fn = ServiceFunction(
                self,
                id,
                folder=folder,
                description=description,
                settings=settings,
                python=config.python,
                assets=assets,
                layers=self.layers.layers_for(settings.architecture, model, *extra_models),
                environment=env,
                log_retention_days=config.log_retention_days,
                log_level=config.log_level,
                tracing=config.tracing,
            )
            self.functions[id] = fn
            return fn

        def task_env(model: ModelConfig | None, function: str | None = None) -> dict[str, str]:
            """A function's variables, as maas.api.routes.FUNCTION_ENV says it needs them: with `all_versions`,
            MAAS_MODEL_SOURCE lists every configured version of the model, latest first (an older one keeps
            answering `name@version` until it leaves the configuration)."""
            needs = FUNCTION_ENV.get(function, FunctionEnv())
            env = {constants.ENV_MAX_BODY_BYTES: str(config.max_body_bytes)}
            if not needs.own_max_inputs:
                env[constants.ENV_MAX_INPUTS] = str(config.max_inputs)
            env.update(table_env(USAGE, TENANTS))
            if model is not None:
                served = config.versions(model) if needs.all_versions else (model,)
                env[constants.ENV_MODEL_SOURCE] = ",".join(self.layers.model_source(m) for m in served)
            return env

        def grant_metering(fn: ServiceFunction) -> None:
            """What billing does and nothing more: the quota read (GetItem), the exactly-once transaction (a Put
            and two Updates; IAM checks a transaction's items by their own actions) and the failure counter."""
            tables[USAGE.logical_name].grant(fn.role, *METERING_ACTIONS)
            tables[TENANTS.logical_name].grant_read_data(fn.role)

        authorizer = function(
            "Authorizer",
            "authorizer",
            "maas: API key -> tenant and plan (REQUEST authorizer)",
            config.authorizer,
            None,
            table_env(TENANTS, API_KEYS),
        )
        tables[TENANTS.logical_name].grant_read_data(authorizer.role)
        tables[API_KEYS.logical_name].grant_read_data(authorizer.role)

        embedding_model = config.embedding_model
        public_routes = [
            r for r in ROUTES if not r.auth and (r.any_task or (r.function == "v2" and embedding_model is not None))
        ]
        self.api = InferenceApi(
            self,
            "Inference",
            config=config,
            plans=plans,
            authorizer=authorizer.alias,
            public_paths=tuple(r.path for r in public_routes),
        )
        # Small and read-only like the authorizer, so it takes the authorizer's sizing.
        usage = function(
            "Usage", "usage", "maas: the caller's own usage (GET /v1/usage)", config.authorizer, None, table_env(USAGE)
        )
        tables[USAGE.logical_name].grant_read_data(usage.role)
        for route in function_routes("usage"):
            self.api.add_route(route, usage.alias)
        jobs_table = data.metering.table(JOBS)  # job records: the jobs API and the batch workers

        # The jobs API: records in the jobs table; the upload URL it returns is signed by its role (put under
        # jobs/, which starts the S3 worker) and the result URLs too (read under results/). Small, like usage.
        jobs = function(
            "Jobs",
            "jobs",
            "maas: batch jobs API (POST/GET /v1/jobs)",
            config.authorizer,
            None,
            {
                JOBS.env_var: jobs_table.table_name,
                constants.ENV_JOB_BUCKET: job_bucket.bucket_name,
                constants.ENV_RESULTS_PREFIX: RESULTS_PREFIX,
            },
        )
        jobs_table.grant_read_write_data(jobs.role)
        # Only what the presigned URLs need (S3-managed encryption: no key grant): the upload under jobs/, the
        # results under results/; no listing, no bucket-level read, no delete.
        jobs.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[job_bucket.arn_for_objects(f"{JOBS_PREFIX}*")])
        )
        jobs.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[job_bucket.arn_for_objects(f"{RESULTS_PREFIX}*")])
        )
        for route in function_routes("jobs"):
            self.api.add_route(route, jobs.alias)

        # OpenAI's Files, Uploads and Batch API: files under files/ and upload parts under uploads/ (put, read, list,
        # delete); a batch's input copied to jobs/{tenant}/{job}/input.jsonl, whose ObjectCreated event starts the S3
        # worker; batch items in the jobs table. Small, like jobs.
        batches = function(  # its id is not "Batch...": that names the S3/SQS workers (no URL, no throttle alarm)
            "Files",
            "batches",
            "maas: OpenAI Files, Uploads and Batch API (/v1/files, /v1/uploads, /v1/batches)",
            config.authorizer,
            None,
            {JOBS.env_var: jobs_table.table_name, constants.ENV_JOB_BUCKET: job_bucket.bucket_name},
        )
        jobs_table.grant_read_write_data(batches.role)
        for prefix in (
            FILES_PREFIX,
            constants.UPLOADS_PREFIX,
        ):  # files, and the parts of uploads (OpenAI's Uploads API)
            job_bucket.grant_read(batches.role, f"{prefix}*")
            job_bucket.grant_put(batches.role, f"{prefix}*")
            job_bucket.grant_delete(batches.role, f"{prefix}*")
        job_bucket.grant_put(batches.role, f"{JOBS_PREFIX}*")
        for route in function_routes("batches"):
            self.api.add_route(route, batches.alias)

        task_functions: dict[str, ServiceFunction] = {}

        def task_function(task: str, model: ModelConfig, *extra: ModelConfig, env: dict | None = None):
            served = ", ".join(dict.fromkeys(m.name for m in (model, *extra)))
            fn = function(
                f"Task-{task}",
                function_folder(task),
                f"maas: {task} ({served}, {model.runtime})",
                config.task_function(task),
                model,
                env if env is not None else task_env(model),
                extra,
            )
            grant_metering(fn)
            for served_model in (model, *extra):
                self.layers.bind(fn, served_model)
            task_functions[task] = fn
            for route in function_routes(function_folder(task)):
                self.api.add_route(route, fn.alias)
            return fn

        for task in config.lambda_tasks:
            if task == "classify":
                continue  # below: it needs the embeddings model as well
            model = next(m for m in config.lambda_models if m.task == task)
            folder = function_folder(task)
            served = config.versions(model) if FUNCTION_ENV.get(folder, FunctionEnv()).all_versions else (model,)
            task_function(task, *served, env=task_env(model, folder))
        if embedding_model is not None and "rerank" not in task_functions:
            # Same package as embeddings (catalog.toml `tasks_also`); metered like embeddings.
            versions = config.versions(embedding_model)
            task_function("rerank", *versions, env=task_env(embedding_model, "rerank"))
        if config.classifier_models:
            # Zero-shot on the embeddings model; the trained classifiers from their own layers (or bucket).
            env = task_env(embedding_model, "classify")
            env[constants.ENV_CLASSIFIER_SOURCES] = ",".join(
                self.layers.model_source(m) for m in config.classifier_models
            )
            task_function("classify", embedding_model, *config.classifier_models, env=env)
        if task_functions:
            first = next(iter(task_functions.values()))
            for route in SHARED_ROUTES:
                self.api.add_route(route, first.alias)
        if embedding_model is not None:
            versions = config.versions(embedding_model)
            v2 = function(
                "V2",
                "v2",
                f"maas: Open Inference Protocol /v2 ({embedding_model.name}, {embedding_model.runtime})",
                config.task_function("v2"),
                embedding_model,
                task_env(embedding_model, "v2"),
                versions[1:],
            )
            grant_metering(v2)
            for version in versions:
                self.layers.bind(v2, version)
            for route in function_routes("v2"):
                self.api.add_route(route, v2.alias)

        self.gpu: dict[str, GpuEndpoint] = {}
        for model in config.sagemaker_models:
            archive = assets.sagemaker_archive(model.package_name)
            endpoint = GpuEndpoint(
                self,
                f"Gpu-{model.name}",
                model_name=model.name,
                model_data=s3_assets.Asset(self, f"ModelData-{model.name}", path=str(archive.path)),
                settings=model.sagemaker,
            )
            env = {
                **task_env(None),
                constants.ENV_SAGEMAKER_ENDPOINT: endpoint.endpoint_name,
                constants.ENV_MODEL_NAME: model.name,
            }
            if endpoint.component_name is not None:
                env[constants.ENV_INFERENCE_COMPONENT] = endpoint.component_name
            proxy = function(
                f"Proxy-{model.name}",
                "heavy_proxy",
                f"maas: {model.task} via SageMaker ({model.name})",
                config.heavy_proxy,
                None,
                env,
            )
            grant_metering(proxy)
            endpoint.grant_invoke(proxy.role)
            for route in heavy_routes(model.name):
                self.api.add_route(route, proxy.alias)
            self.gpu[model.name] = endpoint

        heavy_tasks = {m.name: m.task for m in config.sagemaker_models}
        heavy_embeddings = {n: e for n, e in self.gpu.items() if heavy_tasks[n] == "embeddings"}
        heavy_spec = {
            name: {"endpoint": e.endpoint_name, **({"component": e.component_name} if e.component_name else {})}
            for name, e in heavy_embeddings.items()
        }

        def forward_heavy_models(fn: ServiceFunction) -> None:
            """Let ``fn`` send requests naming a heavy embeddings model to its endpoint (and nothing else)."""
            fn.function.add_environment(constants.ENV_HEAVY_MODELS, Stack.of(self).to_json_string(heavy_spec))
            for endpoint in heavy_embeddings.values():
                endpoint.grant_invoke(fn.role)

        for task, fn in task_functions.items():
            if heavy_embeddings and FUNCTION_ENV.get(function_folder(task), FunctionEnv()).forwards_heavy:
                # POST /v1/embeddings naming a heavy model goes to its endpoint from the embeddings function itself
                # (API Gateway cannot route on the body); it bills like the proxy, with the endpoint's token count.
                forward_heavy_models(fn)

        batch_model = config.lambda_models[0] if config.lambda_models else None
        # Batch API /v1/classify lines: the trained classifiers beside the embedding packages, as many as fit the
        # functions' layer limit (a line naming another one is answered 404, as by a classify function without it).
        served = config.versions(batch_model) if batch_model is not None else ()
        room = MAX_LAYERS - len(self.layers.layers_for(config.batch_s3.architecture, *served))
        batch_classifiers = config.classifier_models[: max(room, 0)] if batch_model is not None else ()
        workers = {}
        for id, folder, settings in (
            ("BatchS3", "batch_s3", config.batch_s3),
            ("BatchSqs", "batch_sqs", config.batch_sqs),
        ):
            # Jobs may name any Lambda-served embedding model: the default and its tiers, as the embeddings function.
            env = task_env(batch_model)
            if batch_model is not None:
                env[constants.ENV_MODEL_SOURCE] = ",".join(self.layers.model_source(m) for m in served)
            if batch_classifiers:
                env[constants.ENV_CLASSIFIER_SOURCES] = ",".join(self.layers.model_source(m) for m in batch_classifiers)
            workers[id] = function(
                id,
                folder,
                f"maas: batch worker ({folder})",
                settings,
                batch_model,
                env,
                (*served[1:], *batch_classifiers),
            )
            grant_metering(workers[id])
            jobs_table.grant_read_write_data(workers[id].role)
            workers[id].function.add_environment(JOBS.env_var, jobs_table.table_name)
            workers[id].function.add_environment(TENANTS.env_var, tables[TENANTS.logical_name].table_name)
            for model in (*served, *batch_classifiers):
                self.layers.bind(workers[id], model)
            if heavy_embeddings:  # jobs and queued requests for a heavy model run on its endpoint, in slices
                forward_heavy_models(workers[id])
        usage_table = tables[USAGE.logical_name]
        aggregator = function(
            "Aggregator",
            "aggregator",
            "maas: usage aggregator (the usage table's stream -> monthly and daily aggregates)",
            config.aggregator,
            None,
            table_env(USAGE),
        )
        usage_table.grant(aggregator.role, *AGGREGATOR_ACTIONS)
        aggregator.alias.add_event_source(
            lambda_event_sources.DynamoEventSource(
                usage_table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=AGGREGATION_BATCH,
                tumbling_window=Duration.seconds(AGGREGATION_WINDOW_S),
                # Retried until it succeeds: a batch is never skipped (the bill is the events); IteratorAge alarms.
                retry_attempts=-1,
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.is_equal("INSERT"),
                            "dynamodb": {"NewImage": {"sk": {"S": lambda_.FilterRule.or_(EVENT_SK, FAIL_SK)}}},
                        }
                    )
                ],
            )
        )
        suppress(
            aggregator.role,
            "IAM5",
            "dynamodb:ListStreams has no resource-level permissions (the event source mapping needs it); the stream "
            "reads themselves are scoped to the usage table's stream.",
            applies_to=["Resource::*"],
        )
        # What the batch workers give up on: the job it concerns is marked failed with the reason, then the event is
        # parked in the dead-letter queue (maas.jobs.failures). Runs once per failed event, never per call.
        failed_events = function(
            "FailedEvents",
            "failed_events",
            "maas: failed batch events (job marked failed, event parked in the DLQ)",
            config.failed_events,
            None,
            {JOBS.env_var: jobs_table.table_name},
        )
        jobs_table.grant_read_write_data(failed_events.role)
        self.batch = BatchJobs(
            self,
            "Batch",
            config=config,
            job_bucket=job_bucket,
            s3_worker=workers["BatchS3"],
            sqs_worker=workers["BatchSqs"],
            failure_handler=failed_events,
        )

        if config.front_door == "function_url":
            self.front_door = FunctionUrlFrontDoor(
                self,
                "FrontDoor",
                api=self.api,
                functions=self.functions,
                tenants=tables[TENANTS.logical_name],
                api_keys=tables[API_KEYS.logical_name],
                tracing=config.tracing,
            )

        self.monitoring = Monitoring(
            self,
            "Operations",
            api=self.api,
            functions=[
                Alarmed(id, fn, alarm_throttles=not id.startswith("Batch"), stream_consumer=id == "Aggregator")
                for id, fn in self.functions.items()
            ],
            gpu=self.gpu,
            dead_letters=self.batch.dead_letters,
            settings=config.alarms,
        )

        for fn in self.functions.values():
            suppress(fn.role, "IAM5", GRANT_REASON, applies_to=GRANT_WILDCARDS)
        self._suppress_cdk_internals()
        self._refuse_placeholders()

        CfnOutput(self, "ApiUrl", value=self.api.api.url)
        for name, plan in self.api.usage_plans.items():
            CfnOutput(self, f"UsagePlan{name.capitalize()}", value=plan.usage_plan_id, description=f"plan {name}")
        CfnOutput(
            self,
            "UsagePlanIds",
            value=self.to_json_string({name: plan.usage_plan_id for name, plan in self.api.usage_plans.items()}),
            description="export as MAAS_USAGE_PLAN_IDS for `maas tenants create` on this deployment",
        )
        CfnOutput(self, "RequestsQueueUrl", value=self.batch.requests.queue_url)
        CfnOutput(self, "AlarmTopic", value=self.monitoring.topic.topic_arn)

    @property
    def placeholders(self) -> list[Placeholder]:
        """Every asset of this stack that is a placeholder (the data stack has no assets)."""
        return list(self.assets.placeholders)

    def _refuse_placeholders(self) -> None:
        """Placeholders: a synth warning (an error under maas:requireBuiltAssets) and a rule that fails deploys."""
        if not self.placeholders:
            return
        commands = sorted({p.command for p in self.placeholders})
        what = ", ".join(sorted({p.what for p in self.placeholders}))
        message = f"placeholders instead of: {what}. Build them first: {'; '.join(commands)}"
        if self.config.require_built_assets:
            Annotations.of(self).add_error(message)
        else:
            Annotations.of(self).add_warning_v2("maas:placeholders", message + ". This template cannot be deployed.")
        # CloudFormation refuses the change set before touching any resource, whichever tool deploys it.
        CfnRule(
            self,
            PLACEHOLDER_RULE,
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_equals("placeholder-assets", "built-assets"),
                    assert_description=("maas: this template was synthesized with " + message)[:1024],
                )
            ],
        )

    def _suppress_cdk_internals(self) -> None:
        """CDK's own singleton handlers (S3 notifications, uploads) are not ours to change."""
        for child in self.node.children:
            cid = child.node.id
            if cid.startswith("BucketNotificationsHandler") or cid.startswith("Custom::CDKBucketDeployment"):
                suppress(child, "IAM4", "CDK's own custom-resource handler uses the AWS-managed basic execution role.")
                suppress(child, "IAM5", "CDK's own custom-resource handler policy (notification/upload of one bucket).")
                suppress(child, "L1", "CDK pins its custom-resource handler's runtime; it is not one of our functions.")
