"""Heavy models: a SageMaker GPU endpoint per `sagemaker` catalog entry, wrapped in one construct of our own.

Two shapes, chosen by the configured minimum capacity:
- min 0 (scale to zero): SageMaker can release every instance only for endpoints that host inference
  components with managed instance scaling. The component's copy count tracks invocations per copy; a step
  policy on NoCapacityInvocationFailures brings the first copy back when a request arrives at zero.
- min >= 1: a classic endpoint (model in the production variant) whose instance count tracks invocations per
  instance.
"""

from __future__ import annotations

import re

from aws_cdk import ArnFormat, Aws, Duration, Fn, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.config import SageMakerConfig
from infra.nag import suppress
from maas.settings import names as constants

VARIANT = "AllTraffic"
ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[^.]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>[^:@]+)")


class GpuEndpoint(Construct):
    """Model + endpoint config + endpoint (+ inference component) + autoscaling for one model package."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        model_name: str,
        model_data: s3_assets.Asset,
        settings: SageMakerConfig,
    ) -> None:
        super().__init__(scope, id)
        self.settings = settings
        self.scale_to_zero = settings.min_capacity == 0
        image = settings.image_uri.replace("{region}", Aws.REGION)

        self.role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"SageMaker execution role of {model_name}",
        )
        model_data.grant_read(self.role)
        self._grant_image_pull(settings.image_uri)
        stack = Stack.of(self)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        suppress(
            self.role,
            "IAM5",
            "SageMaker names its log groups after the generated endpoint/component (/aws/sagemaker/...), "
            "ecr:GetAuthorizationToken has no resource-level permissions, and the model data grant is CDK's "
            "read grant on one asset object.",
        )

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image,
                model_data_url=model_data.s3_object_url,
                environment={
                    constants.ENV_MODEL_SOURCE: constants.SAGEMAKER_MODEL_DIR,
                    constants.ENV_MODEL_NAME: model_name,
                    # the PyTorch inference toolkit imports code/inference.py (maas.heavy.endpoint.inference)
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": f"{constants.SAGEMAKER_MODEL_DIR}/code",
                },
            ),
        )
        # SageMaker checks the role's permissions when it creates the model: the policy must exist first.
        self.model.node.add_dependency(self.role.node.find_child("DefaultPolicy"))

        if self.scale_to_zero:
            self._inference_component_endpoint(model_name)
        else:
            self._classic_endpoint()

    def _grant_image_pull(self, image_uri: str) -> None:
        match = ECR_IMAGE.match(image_uri.replace("{region}", "region"))
        if match:
            region = Aws.REGION if "{region}" in image_uri else match["region"]
            repository = f"arn:{Aws.PARTITION}:ecr:{region}:{match['account']}:repository/{match['repo']}"
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                    resources=[repository],
                )
            )
        self.role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))

    def _classic_endpoint(self) -> None:
        s = self.settings
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=self.model.attr_model_name,
                    instance_type=s.instance_type,
                    initial_instance_count=s.min_capacity,
                    initial_variant_weight=1,
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )
        self.component = None
        self.scaling = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint.attr_endpoint_name}/variant/{VARIANT}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=s.min_capacity,
            max_capacity=s.max_capacity,
        )
        self.scaling.scale_to_track_metric(
            "InvocationsPerInstance",
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            target_value=s.target_invocations_per_minute,
            scale_in_cooldown=Duration.minutes(10),
            scale_out_cooldown=Duration.minutes(1),
        )

    def _inference_component_endpoint(self, model_name: str) -> None:
        s = self.settings
        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            execution_role_arn=self.role.role_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    instance_type=s.instance_type,
                    initial_instance_count=1,
                    managed_instance_scaling=sagemaker.CfnEndpointConfig.ManagedInstanceScalingProperty(
                        status="ENABLED", min_instance_count=0, max_instance_count=s.max_capacity
                    ),
                    routing_config=sagemaker.CfnEndpointConfig.RoutingConfigProperty(
                        routing_strategy="LEAST_OUTSTANDING_REQUESTS"
                    ),
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_config_name=self.endpoint_config.attr_endpoint_config_name
        )
        self.component = sagemaker.CfnInferenceComponent(
            self,
            "Component",
            endpoint_name=self.endpoint.attr_endpoint_name,
            variant_name=VARIANT,
            specification=sagemaker.CfnInferenceComponent.InferenceComponentSpecificationProperty(
                model_name=self.model.attr_model_name,
                compute_resource_requirements=sagemaker.CfnInferenceComponent.InferenceComponentComputeResourceRequirementsProperty(
                    number_of_accelerator_devices_required=s.accelerators,
                    min_memory_required_in_mb=s.memory_required_mb,
                ),
            ),
            runtime_config=sagemaker.CfnInferenceComponent.InferenceComponentRuntimeConfigProperty(copy_count=1),
        )
        self.scaling = appscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"inference-component/{self.component_name}",
            scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
            min_capacity=0,
            max_capacity=s.max_capacity,
        )
        self.scaling.scale_to_track_metric(
            "InvocationsPerCopy",
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_INFERENCE_COMPONENT_INVOCATIONS_PER_COPY,
            target_value=s.target_invocations_per_minute,
            scale_in_cooldown=Duration.minutes(15),
            scale_out_cooldown=Duration.minutes(1),
        )
        # Target tracking never leaves zero copies (no invocations reach them); requests refused for lack of
        # capacity add the first copy.
        self.scaling.scale_on_metric(
            "ScaleOutFromZero",
            metric=cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name="NoCapacityInvocationFailures",
                dimensions_map={"InferenceComponentName": self.component_name},
                statistic="Maximum",
                period=Duration.minutes(1),
            ),
            scaling_steps=[
                appscaling.ScalingInterval(upper=0, change=0),
                appscaling.ScalingInterval(lower=1, change=1),
            ],
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(1),
        )

    @property
    def endpoint_name(self) -> str:
        return self.endpoint.attr_endpoint_name

    @property
    def component_name(self) -> str | None:
        """The inference component's generated name (the last part of its ARN)."""
        if self.component is None:
            return None
        return Fn.select(1, Fn.split("/", self.component.attr_inference_component_arn))

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """sagemaker:InvokeEndpoint on this endpoint (and its inference component), nothing else."""
        arns = [self.endpoint.ref]  # Ref of AWS::SageMaker::Endpoint is its ARN
        if self.component is not None:
            arns.append(self.component.attr_inference_component_arn)
        return iam.Grant.add_to_principal(grantee=grantee, actions=["sagemaker:InvokeEndpoint"], resource_arns=arns)

    def metric(self, name: str, statistic: str = "Sum") -> cloudwatch.Metric:
        """A SageMaker invocation metric of this model (per component when it scales to zero)."""
        if self.component is not None:
            dimensions = {"InferenceComponentName": self.component_name}
        else:
            dimensions = {"EndpointName": self.endpoint.attr_endpoint_name, "VariantName": VARIANT}
        return cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=Duration.minutes(5),
        )
