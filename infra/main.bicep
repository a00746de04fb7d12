// autotune on Azure: `azd up` provisions everything below, deploys the Function App, then the postdeploy
// hook (infra/hooks/postdeploy.sh) subscribes the functions to Event Grid (the webhooks need the system
// keys that exist only once the code runs). Plain resources, no registry modules: CI parses every file
// (pycep-parser) and scans it (checkov) offline.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: prefixes the resource group and seeds unique resource names.')
param environmentName string

@minLength(1)
@description('Region of every resource this template creates (the GPU quota must be in this region).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create (default rg-<environmentName>).')
param resourceGroupName string = ''

@description('Existing Azure ML workspace to use; empty creates a new one in the app resource group.')
param mlWorkspaceName string = ''

@description('Resource group of the existing workspace (same subscription); empty means the app resource group.')
param mlWorkspaceResourceGroupName string = ''

@description('Region of the Azure ML workspace (a reused one: its region; a new one is created there). Empty: location. The compute cluster and the workspace system topic are created in this region.')
param mlWorkspaceLocation string = ''

@description('Event Grid system topic of the workspace. A resource has at most one system topic: when an existing workspace already has one (in its resource group), name it here and it is reused.')
param mlSystemTopicName string = ''

@description('Create (or update) the GPU compute cluster in the workspace. Set false to use a cluster you manage, or computeClusterName=serverless.')
param createComputeCluster bool = true

@description('Compute cluster name (COMPUTE_CLUSTER); "serverless" uses serverless compute and creates no cluster.')
param computeClusterName string = 'gpu-cluster'

@description('VM size of the fine-tuning cluster; needs GPU quota for maxNodes x its cores in the region.')
param computeVmSize string = 'Standard_NC24ads_A100_v4'

@minValue(1)
@description('Most nodes the cluster scales to (it always scales back to 0 when idle).')
param computeMaxNodes int = 1

@description('Workspace datastore name for the training container (AZUREML_DATASTORE).')
param datastoreName string = 'autotune_training'

@description('Blob container for incoming/ uploads and prepared datasets/ (TRAINING_CONTAINER).')
param trainingContainerName string = 'training'

@secure()
@description('Comma-separated gateway API keys; azd generates one on first provision and keeps it in the environment.')
@metadata({
  azd: {
    type: 'generate'
    config: {
      length: 40
      noSpecial: true
    }
  }
})
param gatewayApiKeys string

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID): may upload training data and read the gateway keys. Empty: no user role.')
param principalId string = ''

// Optional app settings; empty leaves the setting out so the app's default (shared/settings.py) applies.
param baseModel string = ''
param baseModelVersion string = ''
param deploymentInstanceType string = ''
param finetuneInstanceType string = ''
param endpointIdleMinutes string = ''
param pinnedModels string = ''
@description('ENDPOINT_NAME_SUFFIX: 1-8 lowercase letters/digits in endpoint names (unique per region); empty derives one from the subscription and workspace.')
param endpointNameSuffix string = ''
param eventsTopicEndpoint string = ''

@description('Event Grid custom topic for lifecycle notifications (EventGridSchema): the app identity gets EventGrid Data Sender on it and EVENTS_TOPIC_ENDPOINT points at it. Empty: none (or eventsTopicEndpoint, granted by hand).')
param eventsTopicName string = ''

@description('Create eventsTopicName (true) or use an existing topic of that name (false). With an empty name, true creates evgt-events-<token>.')
param createEventsTopic bool = false

@description('Resource group of an existing eventsTopicName (same subscription); empty means the app resource group.')
param eventsTopicResourceGroupName string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  app: 'autotune'
}
var createWorkspace = empty(mlWorkspaceName)
var appResourceGroupName = !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
var workspaceName = createWorkspace ? 'mlw-${resourceToken}' : mlWorkspaceName
var workspaceLocation = !empty(mlWorkspaceLocation) ? mlWorkspaceLocation : location
var workspaceResourceGroupName = createWorkspace || empty(mlWorkspaceResourceGroupName) ? appResourceGroupName : mlWorkspaceResourceGroupName
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var deadLetterContainerName = 'deadletter'
var eventsTopic = !empty(eventsTopicName) ? eventsTopicName : 'evgt-events-${resourceToken}'
var eventsTopicResourceGroup = createEventsTopic || empty(eventsTopicResourceGroupName) ? appResourceGroupName : eventsTopicResourceGroupName
var buildCluster = createComputeCluster && toLower(computeClusterName) != 'serverless'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: appResourceGroupName
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    trainingContainerName: trainingContainerName
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    systemTopicName: 'evgt-storage-${resourceToken}'
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    gatewayApiKeys: gatewayApiKeys
  }
}

module mlWorkspace 'modules/ml-workspace.bicep' = if (createWorkspace) {
  name: 'ml-workspace'
  scope: rg
  params: {
    name: workspaceName
    location: workspaceLocation
    tags: tags
    storageAccountName: 'stml${resourceToken}'
    keyVaultName: 'kvml-${resourceToken}'
    containerRegistryName: 'crml${resourceToken}'
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

module mlWiring 'modules/ml-wiring.bicep' = {
  name: 'ml-wiring'
  scope: resourceGroup(workspaceResourceGroupName)
  dependsOn: [
    mlWorkspace
  ]
  params: {
    workspaceName: workspaceName
    location: workspaceLocation
    tags: tags
    appPrincipalId: identity.outputs.principalId
    trainingStorageAccountName: storage.outputs.name
    trainingContainerName: trainingContainerName
    datastoreName: datastoreName
    createComputeCluster: buildCluster
    computeClusterName: computeClusterName
    computeVmSize: computeVmSize
    computeMaxNodes: computeMaxNodes
    systemTopicName: !empty(mlSystemTopicName) ? mlSystemTopicName : 'evgt-ml-${resourceToken}'
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    trainingContainerName: trainingContainerName
    deadLetterContainerName: deadLetterContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.name
    gatewayKeysSecretName: keyVault.outputs.gatewayKeysSecretName
    appPrincipalId: identity.outputs.principalId
    workspacePrincipalId: mlWiring.outputs.workspacePrincipalId
    computePrincipalId: mlWiring.outputs.computePrincipalId
    topicPrincipalIds: [
      storage.outputs.systemTopicPrincipalId
      mlWiring.outputs.systemTopicPrincipalId
    ]
    userPrincipalId: principalId
  }
}

// Lifecycle notifications: a topic created here, or an existing one named by eventsTopicName; either way
// the app identity gets EventGrid Data Sender on it and EVENTS_TOPIC_ENDPOINT is set to its endpoint.
module lifecycleTopic 'modules/events-topic.bicep' = if (createEventsTopic) {
  name: 'events-topic'
  scope: rg
  params: {
    name: eventsTopic
    location: location
    tags: tags
    appPrincipalId: identity.outputs.principalId
  }
}

module lifecycleTopicSender 'modules/events-topic-sender.bicep' = if (!createEventsTopic && !empty(eventsTopicName)) {
  name: 'events-topic-sender'
  scope: resourceGroup(eventsTopicResourceGroup)
  params: {
    topicName: eventsTopic
    appPrincipalId: identity.outputs.principalId
  }
}

// Both modules are conditional (null when not deployed): read their outputs null-safely (Bicep BCP318).
var eventsEndpoint = lifecycleTopic.?outputs.?endpoint ?? lifecycleTopicSender.?outputs.?endpoint ?? eventsTopicEndpoint

var extraSettings = union(
  empty(baseModel) ? {} : { BASE_MODEL: baseModel },
  empty(baseModelVersion) ? {} : { BASE_MODEL_VERSION: baseModelVersion },
  empty(deploymentInstanceType) ? {} : { INSTANCE_TYPE: deploymentInstanceType },
  empty(finetuneInstanceType) ? {} : { INSTANCE_TYPE_FINETUNE: finetuneInstanceType },
  empty(endpointIdleMinutes) ? {} : { ENDPOINT_IDLE_MINUTES: endpointIdleMinutes },
  empty(pinnedModels) ? {} : { PINNED_MODELS: pinnedModels },
  empty(endpointNameSuffix) ? {} : { ENDPOINT_NAME_SUFFIX: endpointNameSuffix },
  empty(eventsEndpoint) ? {} : { EVENTS_TOPIC_ENDPOINT: eventsEndpoint }
)

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  // The app starts with working roles, so its first cold start does not fail on storage or Key Vault.
  dependsOn: [
    roles
  ]
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    trainingContainerName: trainingContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    gatewayKeysSecretUri: keyVault.outputs.gatewayKeysSecretUri
    mlResourceGroupName: workspaceResourceGroupName
    mlWorkspaceName: workspaceName
    datastoreName: datastoreName
    computeClusterName: computeClusterName
    extraSettings: extraSettings
  }
}

// azd stores these in .azure/<env>/.env; the postdeploy hook and the README commands read them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AUTOTUNE_API_URL string = functionApp.outputs.url
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output TRAINING_CONTAINER string = trainingContainerName
output DEADLETTER_CONTAINER string = deadLetterContainerName
output STORAGE_SYSTEM_TOPIC_NAME string = storage.outputs.systemTopicName
output AZUREML_WORKSPACE_NAME string = workspaceName
output AZUREML_LOCATION string = workspaceLocation
output AZUREML_RESOURCE_GROUP string = workspaceResourceGroupName
output AZUREML_SYSTEM_TOPIC_NAME string = mlWiring.outputs.systemTopicName
output AZUREML_DATASTORE string = datastoreName
output COMPUTE_CLUSTER string = computeClusterName
output AZURE_CLIENT_ID string = identity.outputs.clientId
output KEY_VAULT_NAME string = keyVault.outputs.name
