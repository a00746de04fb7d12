#!/bin/sh
# azd postdeploy hook: subscribe the deployed functions to Event Grid.
#
# Why after deploy: the webhook URLs carry the Functions system keys (blobs_extension for the Event
# Grid-sourced blob trigger `ingest_blob`, eventgrid_extension for `on_ml_job_event`), and the host creates
# them only once it runs the code. This script waits for both keys to exist (it never prints or stores
# them), then deploys infra/hooks/eventgrid.bicep, which reads the keys itself with listKeys().
# Idempotent: safe to re-run by hand (`sh infra/hooks/postdeploy.sh`) after fixing whatever made it fail.
# POSIX sh on purpose: azd runs hooks with `sh`, which is dash on Debian/Ubuntu and bash 3.2 on stock macOS
# (no ${var,,}, no ${!var}, no arithmetic for loops). tests/infra checks it with shellcheck --shell=sh.
# Windows: infra/hooks/postdeploy.ps1 does the same steps (azure.yaml `windows:`).
set -eu
cd "$(dirname "$0")/../.."

fail() {
  echo "postdeploy: $*" >&2
  exit 1
}

command -v az >/dev/null 2>&1 || fail "the Azure CLI (az) is required: https://aka.ms/azure-cli, then 'az login'"

# azd exports the environment's values to hooks; when run by hand, read them from azd (KEY="value" lines).
if [ -z "${AZURE_FUNCTION_APP_NAME:-}" ] && command -v azd >/dev/null 2>&1; then
  values="$(mktemp)"
  azd env get-values >"$values" || fail "'azd env get-values' failed: select an environment with 'azd env select'"
  while IFS='=' read -r key value; do
    value="${value%\"}"
    value="${value#\"}"
    case "$key" in
      [A-Z_]*) export "$key=$value" ;;
    esac
  done <"$values"
  rm -f "$values"
fi

for name in AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME AZURE_STORAGE_ACCOUNT_NAME STORAGE_SYSTEM_TOPIC_NAME \
  TRAINING_CONTAINER DEADLETTER_CONTAINER AZUREML_RESOURCE_GROUP AZUREML_SYSTEM_TOPIC_NAME; do
  # POSIX has no indirect expansion (${!name}): read the variable named by $name through eval.
  eval "value=\${$name:-}"
  [ -n "$value" ] || fail "$name is not set: run 'azd provision' first (it writes the outputs of infra/main.bicep)"
done
if [ -n "${AZURE_SUBSCRIPTION_ID:-}" ]; then
  az account set --subscription "$AZURE_SUBSCRIPTION_ID" >/dev/null
fi

# The keys appear once the host has indexed the functions; the first call also wakes a cold app.
attempts="${AUTOTUNE_KEYS_WAIT_ATTEMPTS:-30}"
ready=""
i=1
while [ "$i" -le "$attempts" ]; do
  ready="$(az functionapp keys list -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" \
    --query "systemKeys.blobs_extension != null && systemKeys.eventgrid_extension != null" -o tsv 2>/dev/null || true)"
  ready="$(printf '%s' "$ready" | tr '[:upper:]' '[:lower:]')"
  if [ "$ready" = "true" ]; then break; fi
  echo "postdeploy: waiting for the function host's system keys ($i/$attempts)..."
  sleep 10
  i=$((i + 1))
done
[ "$ready" = "true" ] || fail "the system keys blobs_extension/eventgrid_extension never appeared on $AZURE_FUNCTION_APP_NAME.
  Check that the code deployed and the host starts: az functionapp function list -g $AZURE_RESOURCE_GROUP -n $AZURE_FUNCTION_APP_NAME
  (it must list ingest_blob and on_ml_job_event), then the host logs in Application Insights; re-run infra/hooks/postdeploy.sh."

echo "postdeploy: creating Event Grid subscriptions (the webhooks answer Event Grid's validation handshake)..."
az deployment group create \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name "autotune-eventgrid" \
  --template-file infra/hooks/eventgrid.bicep \
  --parameters \
  functionAppName="$AZURE_FUNCTION_APP_NAME" \
  storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
  storageSystemTopicName="$STORAGE_SYSTEM_TOPIC_NAME" \
  trainingContainerName="$TRAINING_CONTAINER" \
  deadLetterContainerName="$DEADLETTER_CONTAINER" \
  mlResourceGroupName="$AZUREML_RESOURCE_GROUP" \
  mlSystemTopicName="$AZUREML_SYSTEM_TOPIC_NAME" \
  --output none ||
  fail "the Event Grid deployment failed. 'Webhook validation handshake failed' means the function app did not
  answer the validation request in time: check it is running (GET ${AUTOTUNE_API_URL:-https://<app>}/api/health), then re-run
  infra/hooks/postdeploy.sh. See the README runbook, 'Event Grid handshake'."

echo "postdeploy: done. Drop a file into $TRAINING_CONTAINER/incoming/<model>/<name>.jsonl to start a run;"
echo "  the chat API is ${AUTOTUNE_API_URL:-https://<app>}/v1 (keys: az keyvault secret show --vault-name ${KEY_VAULT_NAME:-<vault>} -n gateway-api-keys)."
