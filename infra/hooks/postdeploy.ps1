# azd postdeploy hook for Windows (azure.yaml `windows:`): the same steps as infra/hooks/postdeploy.sh.
#
# Why after deploy: the webhook URLs carry the Functions system keys (blobs_extension for the Event
# Grid-sourced blob trigger `ingest_blob`, eventgrid_extension for `on_ml_job_event`), and the host creates
# them only once it runs the code. This script waits for both keys to exist (it never prints or stores
# them), then deploys infra/hooks/eventgrid.bicep, which reads the keys itself with listKeys().
# Idempotent: safe to re-run by hand (`pwsh infra/hooks/postdeploy.ps1`) after fixing whatever made it fail.
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '../..')

function Fail([string]$Message) {
  [Console]::Error.WriteLine("postdeploy: $Message")
  exit 1
}

if (-not (Get-Command az -ErrorAction SilentlyContinue)) {
  Fail "the Azure CLI (az) is required: https://aka.ms/azure-cli, then 'az login'"
}

# azd exports the environment's values to hooks; when run by hand, read them from azd (KEY="value" lines).
if (-not $env:AZURE_FUNCTION_APP_NAME -and (Get-Command azd -ErrorAction SilentlyContinue)) {
  $values = azd env get-values
  if ($LASTEXITCODE -ne 0) { Fail "'azd env get-values' failed: select an environment with 'azd env select'" }
  foreach ($line in $values) {
    if ($line -match '^([A-Z_][A-Z0-9_]*)=(.*)$') {
      [Environment]::SetEnvironmentVariable($Matches[1], $Matches[2].Trim('"'))
    }
  }
}

$required = 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'AZURE_STORAGE_ACCOUNT_NAME', 'STORAGE_SYSTEM_TOPIC_NAME',
  'TRAINING_CONTAINER', 'DEADLETTER_CONTAINER', 'AZUREML_RESOURCE_GROUP', 'AZUREML_SYSTEM_TOPIC_NAME'
foreach ($name in $required) {
  if (-not [Environment]::GetEnvironmentVariable($name)) {
    Fail "$name is not set: run 'azd provision' first (it writes the outputs of infra/main.bicep)"
  }
}
if ($env:AZURE_SUBSCRIPTION_ID) {
  az account set --subscription $env:AZURE_SUBSCRIPTION_ID | Out-Null
}

# The keys appear once the host has indexed the functions; the first call also wakes a cold app.
$attempts = if ($env:AUTOTUNE_KEYS_WAIT_ATTEMPTS) { [int]$env:AUTOTUNE_KEYS_WAIT_ATTEMPTS } else { 30 }
$ready = ''
for ($i = 1; $i -le $attempts; $i++) {
  $ready = az functionapp keys list -g $env:AZURE_RESOURCE_GROUP -n $env:AZURE_FUNCTION_APP_NAME `
    --query "systemKeys.blobs_extension != null && systemKeys.eventgrid_extension != null" -o tsv 2>$null
  if ("$ready".Trim().ToLowerInvariant() -eq 'true') { break }
  Write-Host "postdeploy: waiting for the function host's system keys ($i/$attempts)..."
  Start-Sleep -Seconds 10
}
if ("$ready".Trim().ToLowerInvariant() -ne 'true') {
  Fail ("the system keys blobs_extension/eventgrid_extension never appeared on $($env:AZURE_FUNCTION_APP_NAME).`n" +
    "  Check that the code deployed and the host starts: az functionapp function list -g $($env:AZURE_RESOURCE_GROUP) -n $($env:AZURE_FUNCTION_APP_NAME)`n" +
    "  (it must list ingest_blob and on_ml_job_event), then the host logs in Application Insights; re-run infra/hooks/postdeploy.ps1.")
}

Write-Host "postdeploy: creating Event Grid subscriptions (the webhooks answer Event Grid's validation handshake)..."
az deployment group create `
  --resource-group $env:AZURE_RESOURCE_GROUP `
  --name 'autotune-eventgrid' `
  --template-file infra/hooks/eventgrid.bicep `
  --parameters `
  functionAppName=$env:AZURE_FUNCTION_APP_NAME `
  storageAccountName=$env:AZURE_STORAGE_ACCOUNT_NAME `
  storageSystemTopicName=$env:STORAGE_SYSTEM_TOPIC_NAME `
  trainingContainerName=$env:TRAINING_CONTAINER `
  deadLetterContainerName=$env:DEADLETTER_CONTAINER `
  mlResourceGroupName=$env:AZUREML_RESOURCE_GROUP `
  mlSystemTopicName=$env:AZUREML_SYSTEM_TOPIC_NAME `
  --output none
if ($LASTEXITCODE -ne 0) {
  $api = if ($env:AUTOTUNE_API_URL) { $env:AUTOTUNE_API_URL } else { 'https://<app>' }
  Fail ("the Event Grid deployment failed. 'Webhook validation handshake failed' means the function app did not`n" +
    "  answer the validation request in time: check it is running (GET $api/api/health), then re-run`n" +
    "  infra/hooks/postdeploy.ps1. See the README runbook, 'Event Grid handshake'.")
}

$api = if ($env:AUTOTUNE_API_URL) { $env:AUTOTUNE_API_URL } else { 'https://<app>' }
$vault = if ($env:KEY_VAULT_NAME) { $env:KEY_VAULT_NAME } else { '<vault>' }
Write-Host "postdeploy: done. Drop a file into $($env:TRAINING_CONTAINER)/incoming/<model>/<name>.jsonl to start a run;"
Write-Host "  the chat API is $api/v1 (keys: az keyvault secret show --vault-name $vault -n gateway-api-keys)."
