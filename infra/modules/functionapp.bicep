// The Function App on Flex Consumption (Linux, Python 3.11), running as the user-assigned identity.
// Every app setting the code needs in Azure is set here from the other modules' outputs; settings the code
// reads but that keep their default in Azure are listed (with why) in scripts/settings_table.py, and
// tests/infra/test_app_settings.py checks the two lists cover shared/settings.py SPEC.
param name string
param planName string
param location string
param tags object = {}
@description('azd service name (azure.yaml) this app deploys.')
param serviceName string = 'api'
param identityId string
param identityClientId string
param storageAccountName string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param deploymentContainerName string
param trainingContainerName string
param appInsightsConnectionString string
param gatewayKeysSecretUri string
param mlResourceGroupName string
param mlWorkspaceName string
param datastoreName string
param computeClusterName string
// The host resolves %RECONCILE_SCHEDULE% / %IDLE_SWEEP_SCHEDULE% in the timer bindings from app settings
// (not from the Python defaults), so they must be set; same defaults as shared/settings.py (tested).
param reconcileSchedule string = '0 */1 * * * *'
param idleSweepSchedule string = '0 */10 * * * *'
@description('Optional settings chosen at deploy time (empty values are left out so the app default applies).')
param extraSettings object = {}
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    //checkov:skip=CKV_AZURE_211: Flex Consumption (FC1) is a serverless plan that scales to zero; dedicated SKUs would bill while idle
    //checkov:skip=CKV_AZURE_212: instance count is managed by Flex Consumption scaling, not by a fixed minimum
    //checkov:skip=CKV_AZURE_225: zone redundancy is opt-in on Flex Consumption and multiplies always-ready cost; not needed for a retraining pipeline
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    //checkov:skip=CKV_AZURE_222: the chat API and the Event Grid webhooks must be reachable from the internet; requests are authenticated (gateway API keys, Functions system keys)
    //checkov:skip=CKV_AZURE_17: clients authenticate with API keys (OpenAI-compatible), not client certificates
    //checkov:skip=CKV_AZURE_212: Flex Consumption scales instances on demand; always-ready instances would bill while idle
    //checkov:skip=CKV_AZURE_213: /api/health exists for probes, but the App Service health-check feature does not apply to Flex Consumption instances
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Deployments use Entra ID (azd / OneDeploy); basic-auth publishing stays off.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

var appSettings = {
  // Functions host storage with the managed identity (no connection string, no keys).
  AzureWebJobsStorage__accountName: storageAccountName
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: blobEndpoint
  AzureWebJobsStorage__queueServiceUri: queueEndpoint
  AzureWebJobsStorage__tableServiceUri: tableEndpoint
  // Also resolved by the host in the blob trigger path (%TRAINING_CONTAINER%/incoming/{name}).
  TRAINING_CONTAINER: trainingContainerName
  RECONCILE_SCHEDULE: reconcileSchedule
  IDLE_SWEEP_SCHEDULE: idleSweepSchedule
  // Telemetry: OpenTelemetry from the Python worker, Entra ID auth (local auth is off on App Insights).
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Newer Python workers read the first and export themselves; worker 4.34 (Python 3.11 today) reads the second
  // and leaves the exporter to the app (shared/telemetry.py configures it at start-up, keeping the worker's).
  PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
  OTEL_SERVICE_NAME: name
  // Azure ML.
  ML_BACKEND: 'azureml'
  AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
  AZURE_RESOURCE_GROUP: mlResourceGroupName
  AZUREML_WORKSPACE_NAME: mlWorkspaceName
  AZURE_CLIENT_ID: identityClientId
  AZUREML_DATASTORE: datastoreName
  COMPUTE_CLUSTER: computeClusterName
  // Secret: a Key Vault reference resolved by the platform with keyVaultReferenceIdentity.
  GATEWAY_API_KEYS: '@Microsoft.KeyVault(SecretUri=${gatewayKeysSecretUri})'
}

// checkov runs its App Service checks on this `config` child; the reasons below are for the Function App.
resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13: App Service Authentication would reject Event Grid webhook deliveries and OpenAI-style API-key clients; the app authenticates requests itself (gateway API keys, Functions system keys)
  //checkov:skip=CKV_AZURE_222: the chat API and the Event Grid webhooks must be reachable from the internet
  //checkov:skip=CKV_AZURE_88: Flex Consumption has no Azure Files content share; the package is deployed from blob storage
  //checkov:skip=CKV_AZURE_80: not a .NET app (Python 3.11)
  //checkov:skip=CKV_AZURE_63: App Service file-system HTTP logs do not exist on Flex Consumption; requests and logs go to Application Insights (OpenTelemetry)
  //checkov:skip=CKV_AZURE_65: same as CKV_AZURE_63: errors are in Application Insights, never shown to clients
  //checkov:skip=CKV_AZURE_66: same as CKV_AZURE_63: failed requests are traced in Application Insights
  parent: site
  name: 'appsettings'
  properties: union(extraSettings, appSettings)
}

output name string = site.name
output id string = site.id
output url string = 'https://${site.properties.defaultHostName}'
