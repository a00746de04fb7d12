"""Settings of storage and of data preparation (ingest, uploads, Hugging Face imports)."""

from __future__ import annotations

from shared.settingspec.kinds import Setting, as_int

# Storage
STORAGE: tuple[Setting, ...] = (
    Setting(
        "AzureWebJobsStorage",
        "storage_connection_string",
        "",
        "Storage connection string (UseDevelopmentStorage=true for Azurite). Leave empty in Azure and use "
        "the identity-based AzureWebJobsStorage__accountName instead.",
        secret=True,
    ),
    Setting(
        "AzureWebJobsStorage__accountName",
        "storage_account_name",
        "",
        "Storage account name for identity-based connections (DefaultAzureCredential).",
    ),
    Setting(
        "AzureWebJobsStorage__blobServiceUri",
        "storage_blob_uri",
        "",
        "Blob service URI for identity-based connections (derived from the account name when empty).",
    ),
    Setting(
        "AzureWebJobsStorage__tableServiceUri",
        "storage_table_uri",
        "",
        "Table service URI for identity-based connections (derived from the account name when empty).",
    ),
    Setting(
        "AzureWebJobsStorage__queueServiceUri",
        "storage_queue_uri",
        "",
        "Queue service URI for identity-based connections (derived from the account name when empty).",
    ),
    Setting(
        "AzureWebJobsStorage__clientId",
        "storage_client_id",
        "",
        "Client id of the user-assigned managed identity used for storage (empty: system identity).",
    ),
    Setting(
        "TRAINING_CONTAINER",
        "training_container",
        "training",
        "Blob container holding incoming/ uploads and prepared datasets/.",
    ),
    Setting(
        "LEDGER_TABLE_PREFIX",
        "ledger_table_prefix",
        "autotune",
        "Prefix of the Azure Table storage tables that hold the app's state (letters and digits).",
    ),
)

# Data preparation
DATA_PREPARATION: tuple[Setting, ...] = (
    Setting(
        "TEST_SPLIT_PERCENT",
        "test_split_percent",
        "10",
        "Share of conversations (by hash) that go to the test split.",
        as_int,
        minimum=1,
        maximum=50,
    ),
    Setting(
        "MAX_LINE_BYTES",
        "max_line_bytes",
        "1048576",
        "Longest accepted JSONL line in bytes; longer lines are rejected as line_too_long.",
        as_int,
        minimum=1024,
    ),
    Setting(
        "MAX_SEQ_LENGTH",
        "max_seq_length",
        "2048",
        "Token length the report compares examples against (and the local trainer truncates to).",
        as_int,
        minimum=16,
    ),
    Setting(
        "MAX_UPLOAD_BYTES",
        "max_upload_bytes",
        str(100 * 1024 * 1024),
        "Largest body accepted by POST /api/models/{model}/datasets (413 above).",
        as_int,
        minimum=1,
    ),
    Setting(
        "MAX_DROP_BYTES",
        "max_drop_bytes",
        str(10 * 1024**3),
        "Largest file dropped under incoming/ that is prepared; a bigger one is refused at once (too_large), "
        "because one function invocation could not prepare it within functionTimeout (README: Reliability).",
        as_int,
        minimum=1,
    ),
    Setting(
        "PREPARE_MAX_ATTEMPTS",
        "prepare_max_attempts",
        "3",
        "Times a dataset's preparation is started before a preparation that keeps dying (crash, timeout) is "
        "recorded as failed; the upload is kept.",
        as_int,
        minimum=1,
    ),
    Setting(
        "MIN_TRAIN_ROWS",
        "min_train_rows",
        "10",
        "Fewest training rows a dataset needs (Azure ML's preprocess step needs 10).",
        as_int,
        minimum=1,
    ),
    Setting(
        "HF_LOCAL_DATASETS_DIR",
        "hf_local_datasets_dir",
        "",
        "Folder of locally saved Hugging Face datasets (save_to_disk or data files), by name: an import of NAME "
        "reads NAME from here when it exists, else from the Hub (offline mirrors, tests). Empty: Hub only.",
    ),
)


__all__ = ["DATA_PREPARATION", "STORAGE"]
