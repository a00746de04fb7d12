"""Settings of the ML platform: the base model, Azure ML workspace and compute, and the local backend."""

from __future__ import annotations

from shared.settingspec.kinds import Setting, as_float, as_int, as_json_object

LOCAL_WORKSPACE_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
    "/providers/Microsoft.MachineLearningServices/workspaces/local"
)

# ML platform
ML_PLATFORM: tuple[Setting, ...] = (
    Setting(
        "ML_BACKEND", "ml_backend", "local", "Which ML platform runs jobs and endpoints.", choices=("local", "azureml")
    ),
    Setting(
        "BASE_MODEL",
        "base_model",
        "Phi-4-mini-instruct",
        "Base model name in the azureml registry (ML_BACKEND=azureml); the notebook's Phi-3-mini-4k-instruct is "
        "retired for fine-tuning.",
    ),
    Setting("BASE_MODEL_VERSION", "base_model_version", "latest", "Base model version, or a label such as latest."),
    Setting("BASE_MODEL_REGISTRY", "base_model_registry", "azureml", "Registry holding the base model and pipeline."),
    Setting(
        "PIPELINE_COMPONENT_VERSION",
        "pipeline_component_version",
        "0.0.82",
        "Version of chat_completion_pipeline to use: the one whose inputs ship (backends/chat_completion_inputs.json);"
        " another version (or 'latest') is checked against its own inputs.",
    ),
    Setting(
        "FINETUNE_PARAMETERS",
        "finetune_parameters",
        "{}",
        "JSON object of chat_completion_pipeline inputs overriding the defaults.",
        as_json_object,
    ),
    Setting(
        "AZURE_SUBSCRIPTION_ID",
        "azure_subscription_id",
        "",
        "Subscription of the Azure ML workspace.",
        required_when="ML_BACKEND=azureml",
    ),
    Setting(
        "AZURE_RESOURCE_GROUP",
        "azure_resource_group",
        "",
        "Resource group of the Azure ML workspace.",
        required_when="ML_BACKEND=azureml",
    ),
    Setting(
        "AZUREML_WORKSPACE_NAME",
        "azureml_workspace_name",
        "",
        "Azure ML workspace name.",
        required_when="ML_BACKEND=azureml",
    ),
    Setting(
        "AZURE_CLIENT_ID",
        "azure_client_id",
        "",
        "Client id of the user-assigned managed identity (empty: DefaultAzureCredential's default).",
    ),
    Setting(
        "AZUREML_DATASTORE",
        "azureml_datastore",
        "autotune_training",
        "Workspace datastore that points at the training container.",
    ),
    Setting(
        "COMPUTE_CLUSTER",
        "compute_cluster",
        "gpu-cluster",
        "Compute cluster for fine-tuning, or 'serverless' to use INSTANCE_TYPE_FINETUNE.",
    ),
    Setting(
        "INSTANCE_TYPE_FINETUNE",
        "instance_type_finetune",
        "Standard_NC24ads_A100_v4",
        "VM size for serverless fine-tuning.",
    ),
    Setting("EXPERIMENT_NAME", "experiment_name", "autotune-chat-finetune", "Experiment the jobs are filed under."),
    Setting(
        "REGISTERED_MODEL_PREFIX",
        "registered_model_prefix",
        "autotune-",
        "Prefix of registered model names: {prefix}{model}.",
    ),
    Setting("INSTANCE_TYPE", "instance_type", "Standard_NC6s_v3", "VM size of online deployments."),
    Setting("INSTANCE_COUNT", "instance_count", "1", "Instances per online deployment.", as_int, minimum=1),
    Setting(
        "CANARY_PERCENT",
        "canary_percent",
        "0",
        "Traffic share given to a new deployment for one tick before 100% (0: switch at once).",
        as_int,
        minimum=0,
        maximum=99,
    ),
    Setting(
        "JOB_POLL_AFTER_MINUTES",
        "job_poll_after_minutes",
        "30",
        "Poll jobs with no event for this long (backstop for missed events).",
        as_float,
        minimum=0,
    ),
    Setting(
        "ORPHAN_GRACE_MINUTES",
        "orphan_grace_minutes",
        "30",
        "A deployment on a managed endpoint that no model references and that has no traffic is deleted once it "
        "is this old; so is a corpus build that no run uses any more, once untouched this long.",
        as_float,
        minimum=0,
    ),
    Setting("RECONCILE_SCHEDULE", "reconcile_schedule", "0 */1 * * * *", "NCRONTAB schedule of the reconciler."),
)

# Local backend
LOCAL_BACKEND: tuple[Setting, ...] = (
    Setting(
        "LOCAL_STATE_DIR",
        "local_state_dir",
        ".autotune",
        "Folder for the local backend's state: MLflow stores, job folders, scoring servers.",
    ),
    Setting(
        "LOCAL_BASE_MODEL",
        "local_base_model",
        "",
        "Path of a local Hugging Face checkpoint to fine-tune (empty: the tiny model built locally).",
    ),
    Setting(
        "LOCAL_WORKSPACE_ID",
        "local_workspace_id",
        LOCAL_WORKSPACE_ID,
        "Workspace id the local backend uses as the Event Grid topic of its job events.",
    ),
    Setting(
        "AUTOTUNE_HOST_URL",
        "host_url",
        "http://127.0.0.1:7071",
        "Base URL of the Functions host; the devhost sets it for the processes it starts.",
    ),
)


__all__ = ["LOCAL_BACKEND", "LOCAL_WORKSPACE_ID", "ML_PLATFORM"]
